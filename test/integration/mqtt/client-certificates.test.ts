/**
 * Client certificates from issueClientCertificate on a real Mosquitto that takes the user name from the certificate
 * (`use_identity_as_username`) and checks revocation (`crlfile`, a list from createRevocationList): the common name
 * is the user its ACL names; a revoked certificate and one from another CA are refused at the TLS handshake; a new
 * list takes effect on SIGHUP.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type CertificateAuthority,
  createRevocationList,
  type IssuedClientCertificate,
  issueClientCertificate,
} from '../../../src/service/certificates.js';
import { type Mosquitto, startMosquitto } from '../brokers/mosquitto.js';
import { unique } from './support/fixtures.js';
import { createTestPki, type TestPki } from './support/pki.js';
import { Inbox } from './support/wait.js';

const DEVICE = 'gw-1';
/** The longest identity names allow (128 + 1 + 128 characters), far over X.520's 64 for a common name. */
const LONGEST = `${'d'.repeat(128)}/${'m'.repeat(128)}`;

let pki: TestPki;
let ca: CertificateAuthority;
let crlFile: string;
let broker: Mosquitto;
let issued: Record<'writer' | 'reader' | 'operator' | 'longest' | 'rotatedOut' | 'otherCa', IssuedClientCertificate>;
const clients: MqttClient[] = [];

beforeAll(async () => {
  pki = createTestPki();
  ca = { cert: pki.ca, key: readFileSync(path.join(pki.dir, 'ca.key'), 'utf8') };
  const issue = (commonName: string) => issueClientCertificate({ ca, commonName, validityDays: 1 });
  const otherCa = {
    cert: readFileSync(path.join(pki.dir, 'other-ca.pem'), 'utf8'),
    key: readFileSync(path.join(pki.dir, 'other-ca.key'), 'utf8'),
  };
  issued = {
    writer: issue(`${DEVICE}/writer`),
    reader: issue(`${DEVICE}/reader`),
    operator: issue('$operator/alice'),
    longest: issue(LONGEST),
    // The writer's previous certificate, as after a rotation: same common name, revoked.
    rotatedOut: issue(`${DEVICE}/writer`),
    otherCa: issueClientCertificate({ ca: otherCa, commonName: `${DEVICE}/writer` }),
  };

  crlFile = path.join(pki.dir, 'crl.pem');
  writeFileSync(
    crlFile,
    createRevocationList({ ca, revoked: [{ serialNumber: issued.rotatedOut.serialNumber, revokedAt: new Date() }] }),
  );
  broker = await startMosquitto({
    tls: { certFile: pki.serverCertFile, keyFile: pki.serverKeyFile, caFile: pki.caFile, requireCertificate: true },
    acl: [
      `user ${DEVICE}/writer`,
      `topic readwrite certs/${DEVICE}/#`,
      `user ${DEVICE}/reader`,
      `topic read certs/${DEVICE}/#`,
      'user $operator/alice',
      'topic readwrite #',
      `user ${LONGEST}`,
      `topic readwrite certs/${DEVICE}/#`,
    ],
    config: ['use_identity_as_username true', `crlfile ${crlFile}`],
  });
});

afterAll(async () => {
  await Promise.all(clients.splice(0).map((client) => client.endAsync(true)));
  await broker?.stop();
  pki?.remove();
});

/** Connects over mqtts with `certificate`; a refusal rejects (no retries). */
async function connect(certificate: IssuedClientCertificate): Promise<MqttClient> {
  const client = await mqtt.connectAsync(
    broker.url,
    {
      ca: pki.ca,
      cert: certificate.cert,
      key: certificate.key,
      protocolVersion: 5,
      clientId: unique('c'),
      reconnectPeriod: 0,
      connectTimeout: 5_000,
    },
    false,
  );
  clients.push(client);
  return client;
}

async function refusal(certificate: IssuedClientCertificate): Promise<Error> {
  return connect(certificate).then(
    () => new Error('expected the connection to be refused'),
    (error: unknown) => error as Error,
  );
}

/** The reason code of a QoS 1 publish: 0 when the broker took it, 135 (not authorized) when the ACL refused it. */
async function publishReason(client: MqttClient, topic: string, text: string): Promise<number> {
  return client.publishAsync(topic, text, { qos: 1 }).then(
    () => 0,
    (error: unknown) => (error as { code?: number }).code ?? -1,
  );
}

describe('the certificate common name is the broker user', () => {
  it("the ACL lets the writer's certificate publish where the reader's may only subscribe", async () => {
    const reader = await connect(issued.reader);
    const received = new Inbox<string>();
    reader.on('message', (topic, payload) => received.push(`${topic} ${payload.toString()}`));
    const granted = await reader.subscribeAsync(`certs/${DEVICE}/#`, { qos: 1 });
    expect(granted.map((g) => g.qos)).toEqual([1]);

    const writer = await connect(issued.writer);
    expect(await publishReason(writer, `certs/${DEVICE}/a`, 'from the writer')).toBe(0);
    expect(await publishReason(reader, `certs/${DEVICE}/a`, 'from the reader')).toBe(135);
    // The writer's user has no rights outside its topics.
    expect(await publishReason(writer, 'certs/gw-2/a', 'elsewhere')).toBe(135);
    await received.until((items) => items.length >= 1, 5_000, "the writer's message");
    expect(received.items).toEqual([`certs/${DEVICE}/a from the writer`]);
  });

  it('an operator ($operator/alice) and the longest identity (257 characters) are users too', async () => {
    const operator = await connect(issued.operator);
    expect(await publishReason(operator, 'anything/at/all', 'x')).toBe(0);
    const longest = await connect(issued.longest);
    expect(await publishReason(longest, `certs/${DEVICE}/b`, 'x')).toBe(0);
    expect(await publishReason(longest, 'anything/at/all', 'x')).toBe(135);
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
    expect((error as { code?: string }).code).toBe('ERR_SSL_TLSV1_ALERT_UNKNOWN_CA');
  });

  it('a new revocation list takes effect on SIGHUP; connections made before stay open', async () => {
    const revokedNow = issueClientCertificate({ ca, commonName: `${DEVICE}/writer`, validityDays: 1 });
    const before = await connect(revokedNow);
    writeFileSync(
      crlFile,
      createRevocationList({
        ca,
        revoked: [issued.rotatedOut, revokedNow].map((c) => ({ serialNumber: c.serialNumber, revokedAt: new Date() })),
      }),
    );
    // Mosquitto read the file at start: until it is told, the old list holds.
    const stillAccepted = await connect(revokedNow);
    await stillAccepted.endAsync();

    const pid = broker.pid;
    if (pid === undefined) throw new Error('mosquitto is not running');
    process.kill(pid, 'SIGHUP');
    // The reload has no event to wait on: retry until the handshake is refused.
    const deadline = Date.now() + 5_000;
    let error: Error | undefined;
    while (Date.now() < deadline) {
      error = await refusal(revokedNow);
      if (/certificate revoked/.test(error.message)) break;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    expect(error?.message).toMatch(/certificate revoked/);
    expect(await connect(issued.writer)).toBeDefined();
    // Revocation is checked at the handshake only: rotation must also end the old certificate's connection.
    expect(before.connected).toBe(true);
    expect(await publishReason(before, `certs/${DEVICE}/c`, 'still here')).toBe(0);
  });
});
