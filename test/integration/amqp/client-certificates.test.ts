/**
 * Client certificates from issueClientCertificate on a real RabbitMQ 3.10 with the `rabbitmq_auth_mechanism_ssl`
 * plugin: amqplib logs in with EXTERNAL, and the broker user is the certificate's common name
 * (`ssl_cert_login_from = common_name`). Revocation: Erlang's TLS checks a CRL from createRevocationList when the
 * listener has `crl_check` and a `crl_cache`; rabbitmq.conf can set the first but not the second, so the TLS options
 * go in advanced.config (which replaces rabbitmq.conf's `ssl_options` as a whole), with the list in a folder named by
 * `openssl rehash`. This file starts its own node: the shared one must stay without plugins.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import * as amqplib from 'amqplib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type CertificateAuthority,
  createRevocationList,
  type IssuedClientCertificate,
  issueClientCertificate,
} from '../../../src/service/certificates.js';
import { opensslOk } from '../../support/openssl-ca.js';
import { type RabbitMQ, startRabbitMQ } from '../brokers/rabbitmq.js';
import { createTestPki, type TestPki } from '../mqtt/support/pki.js';

/** The longest identity names allow (128 + 1 + 128 characters), far over X.520's 64 for a common name. */
const LONGEST = `${'d'.repeat(128)}/${'m'.repeat(128)}`;

let pki: TestPki;
let ca: CertificateAuthority;
let crlFile: string;
let broker: RabbitMQ;
let issued: Record<'filter' | 'operator' | 'longest' | 'stranger' | 'rotatedOut' | 'otherCa', IssuedClientCertificate>;
const connections: amqplib.ChannelModel[] = [];

function writeRevocationList(revoked: readonly IssuedClientCertificate[]): void {
  writeFileSync(
    crlFile,
    createRevocationList({
      ca,
      revoked: revoked.map((c) => ({ serialNumber: c.serialNumber, revokedAt: new Date() })),
    }),
  );
}

beforeAll(async () => {
  pki = createTestPki();
  ca = { cert: pki.ca, key: readFileSync(path.join(pki.dir, 'ca.key'), 'utf8') };
  const issue = (commonName: string) => issueClientCertificate({ ca, commonName, validityDays: 1 });
  const otherCa = {
    cert: readFileSync(path.join(pki.dir, 'other-ca.pem'), 'utf8'),
    key: readFileSync(path.join(pki.dir, 'other-ca.key'), 'utf8'),
  };
  issued = {
    filter: issue('gw-1/filter'),
    operator: issue('$operator/alice'),
    longest: issue(LONGEST),
    // A valid certificate whose common name is no user of the broker.
    stranger: issue('gw-1/stranger'),
    // The filter's previous certificate, as after a rotation: same common name, revoked.
    rotatedOut: issue('gw-1/filter'),
    otherCa: issueClientCertificate({ ca: otherCa, commonName: 'gw-1/filter' }),
  };

  // Erlang's ssl_crl_hash_dir looks lists up by issuer hash: <hash>.r0, the link `openssl rehash` makes.
  const crlDir = path.join(pki.dir, 'crls');
  mkdirSync(crlDir);
  crlFile = path.join(crlDir, 'edge-ca.crl.pem');
  writeRevocationList([issued.rotatedOut]);
  opensslOk(['rehash', crlDir], crlDir);

  const text = JSON.stringify; // an Erlang string literal, for these plain paths
  const tlsOptions = [
    `{cacertfile, ${text(pki.caFile)}}`,
    `{certfile, ${text(pki.serverCertFile)}}`,
    `{keyfile, ${text(pki.serverKeyFile)}}`,
    '{verify, verify_peer}',
    '{fail_if_no_peer_cert, true}',
    // peer: the client's certificate only (its CA is the trust anchor); a missing list refuses every client.
    '{crl_check, peer}',
    `{crl_cache, {ssl_crl_hash_dir, {internal, [{dir, ${text(crlDir)}}]}}}`,
  ];
  const password = () => randomBytes(12).toString('hex'); // never used: EXTERNAL is the only mechanism
  broker = await startRabbitMQ({
    tls: {
      certFile: pki.serverCertFile,
      keyFile: pki.serverKeyFile,
      caFile: pki.caFile,
      requireClientCertificate: true,
    },
    users: { 'gw-1/filter': password(), '$operator/alice': password(), [LONGEST]: password() },
    // Only this user is confined to resources named own.*: a refusal elsewhere shows who the connection is.
    permissions: { 'gw-1/filter': { configure: '^own\\.', write: '^own\\.', read: '^own\\.' } },
    plugins: ['rabbitmq_auth_mechanism_ssl'],
    config: ['auth_mechanisms.1 = EXTERNAL', 'ssl_cert_login_from = common_name'],
    advancedConfig: `[{rabbit, [{ssl_options, [${tlsOptions.join(', ')}]}]}].\n`,
  });
});

afterAll(async () => {
  await Promise.all(connections.splice(0).map((c) => c.close().catch(() => undefined)));
  await broker?.stop();
  pki?.remove();
});

/** Connects over amqps with `certificate` and the EXTERNAL mechanism. */
async function connect(certificate: IssuedClientCertificate): Promise<amqplib.ChannelModel> {
  const connection = await amqplib.connect(
    { protocol: 'amqps', hostname: '127.0.0.1', port: broker.tlsPort, heartbeat: 0 },
    { ca: pki.ca, cert: certificate.cert, key: certificate.key, credentials: amqplib.credentials.external() },
  );
  connection.on('error', () => undefined);
  connections.push(connection);
  return connection;
}

async function refusal(certificate: IssuedClientCertificate): Promise<Error> {
  return connect(certificate).then(
    () => new Error('expected the connection to be refused'),
    (error: unknown) => error as Error,
  );
}

/** Declares a queue on a fresh channel; resolves `ok` or the broker's refusal. */
async function declare(connection: amqplib.ChannelModel, queue: string): Promise<string> {
  const channel = await connection.createChannel();
  channel.on('error', () => undefined);
  try {
    await channel.assertQueue(queue, { exclusive: true });
    await channel.close();
    return 'ok';
  } catch (error) {
    return (error as Error).message;
  }
}

describe('EXTERNAL: the certificate common name is the broker user', () => {
  it("connects as gw-1/filter, held to that user's permissions", async () => {
    const connection = await connect(issued.filter);
    expect(await declare(connection, 'own.inbox')).toBe('ok');
    expect(await declare(connection, 'theirs.inbox')).toMatch(/403 \(ACCESS-REFUSED\).*theirs\.inbox.*gw-1\/filter/);
  });

  it('an operator ($operator/alice) and the longest identity (257 characters) are users too', async () => {
    expect(await declare(await connect(issued.operator), 'theirs.operator')).toBe('ok');
    expect(await declare(await connect(issued.longest), 'theirs.longest')).toBe('ok');
  });

  it('refuses a valid certificate whose common name is no user', async () => {
    const error = await refusal(issued.stranger);
    expect(error.message).toMatch(/403 \(ACCESS-REFUSED\).*EXTERNAL/);
  });
});

describe('refusals at the TLS handshake', () => {
  it('a revoked certificate is refused (the same common name with its new certificate connects)', async () => {
    const error = await refusal(issued.rotatedOut);
    expect(error.message).toMatch(/certificate revoked/);
    expect((error as { code?: string }).code).toBe('ERR_SSL_SSLV3_ALERT_CERTIFICATE_REVOKED');
  });

  it('a certificate from another CA is refused', async () => {
    const error = await refusal(issued.otherCa);
    expect(error.message).toMatch(/unknown ca/);
  });

  it('a rewritten list takes effect at the next handshake, without a restart; open connections stay', async () => {
    const revokedNow = issueClientCertificate({ ca, commonName: 'gw-1/filter', validityDays: 1 });
    const before = await connect(revokedNow);
    writeRevocationList([issued.rotatedOut, revokedNow]);
    const error = await refusal(revokedNow);
    expect(error.message).toMatch(/certificate revoked/);
    expect(await declare(await connect(issued.filter), 'own.after')).toBe('ok');
    // Revocation is checked at the handshake only: rotation must also end the old certificate's connection.
    expect(await declare(before, 'own.before')).toBe('ok');
  });
});
