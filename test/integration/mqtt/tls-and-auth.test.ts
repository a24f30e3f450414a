/**
 * TLS and authentication against a real Mosquitto: a test CA made with openssl, a broker that requires a client
 * certificate and a username/password; the right credentials work end to end, each wrong one is refused with
 * `connection-failed` and a reason, and no refusal shows the password or the TLS passphrase.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isEdgeKitError } from '../../../src/errors.js';
import { expectNoSecret } from '../../support/secrets.js';
import { type Mosquitto, startMosquitto } from '../brokers/mosquitto.js';
import { freePort } from '../support/loopback.js';
import { text, transportFor, unique, useConnections, utf8 } from './support/fixtures.js';
import { createTestPki, type TestPki } from './support/pki.js';
import { Inbox } from './support/wait.js';

let pki: TestPki;
let tlsBroker: Mosquitto;
let authBroker: Mosquitto;
const connections = useConnections();

beforeAll(async () => {
  pki = createTestPki();
  tlsBroker = await startMosquitto({
    tls: { certFile: pki.serverCertFile, keyFile: pki.serverKeyFile, caFile: pki.caFile, requireCertificate: true },
    users: { filter: 's3cret' },
  });
  authBroker = await startMosquitto({ users: { filter: 's3cret', 'user with space': 'p@ss/w:rd' } });
});

afterAll(async () => {
  await tlsBroker?.stop();
  await authBroker?.stop();
  pki?.remove();
});

async function failure(promise: Promise<unknown>): Promise<Error> {
  const error = await promise.then(
    () => new Error('expected the connection to fail'),
    (e: unknown) => e as Error,
  );
  expect(isEdgeKitError(error, 'connection-failed')).toBe(true);
  return error;
}

describe('TLS with a client certificate and a password', () => {
  it('works end to end with the test CA, a client certificate and the right password', async () => {
    const transport = transportFor(tlsBroker.url, {
      tls: { ca: pki.ca, cert: pki.clientCert, key: pki.clientKey },
      username: 'filter',
      password: 's3cret',
    });
    const device = unique('dev');
    const consumer = await connections.open(transport, { clientId: `${device}/mod` });
    const producer = await connections.open(transport, { clientId: `${device}/producer` });
    const inbox = new Inbox<string>();
    await consumer.consume(`inputs/${device}/mod/in`, { prefetch: 1 }, (d) => {
      inbox.push(text(d.bytes)!);
      d.ack();
    });
    await producer.publish(`inputs/${device}/mod/in`, utf8('over tls'));
    expect(await inbox.take(1, 5_000)).toEqual(['over tls']);
  });

  it('refuses a wrong password', async () => {
    const transport = transportFor(tlsBroker.url, {
      tls: { ca: pki.ca, cert: pki.clientCert, key: pki.clientKey },
      username: 'filter',
      password: 'wrong',
    });
    const error = await failure(transport.connect({ clientId: unique('c') }));
    expect(error.message).toMatch(/user name or password|not authorized/);
  });

  it('refuses a client without a certificate', async () => {
    const transport = transportFor(tlsBroker.url, { tls: { ca: pki.ca }, username: 'filter', password: 's3cret' });
    await failure(transport.connect({ clientId: unique('c') }));
  });

  it('refuses a broker whose certificate is not signed by the trusted CA', async () => {
    const transport = transportFor(tlsBroker.url, {
      tls: { ca: pki.otherCa, cert: pki.clientCert, key: pki.clientKey },
      username: 'filter',
      password: 's3cret',
    });
    const error = await failure(transport.connect({ clientId: unique('c') }));
    expect(error.message).toMatch(/TLS|certificate/i);
  });
});

describe('username and password', () => {
  it('accepts the right credentials, also from the URL (percent-encoded)', async () => {
    const port = authBroker.port;
    const fromOptions = transportFor(authBroker.url, { username: 'filter', password: 's3cret' });
    const a = await connections.open(fromOptions, { clientId: unique('c') });
    expect(await a.getRetained(`twin/${unique('d')}/m/desired`)).toBeUndefined();
    const fromUrl = transportFor(`mqtt://user%20with%20space:p%40ss%2Fw%3Ard@127.0.0.1:${port}`);
    const b = await connections.open(fromUrl, { clientId: unique('c') });
    expect(await b.getRetained(`twin/${unique('d')}/m/desired`)).toBeUndefined();
  });

  it('refuses anonymous clients and wrong passwords with connection-failed', async () => {
    const anonymous = await failure(transportFor(authBroker.url).connect({ clientId: unique('c') }));
    expect(anonymous.message).toMatch(/not authorized|user name or password/);
    await failure(
      transportFor(authBroker.url, { username: 'filter', password: 'nope' }).connect({ clientId: unique('c') }),
    );
  });
});

describe('no refusal shows the password', () => {
  // Two halves, so a password cut in two is still caught; the @ and : must be percent-encoded in a URL.
  const SECRETS = ['Zq7', 'Wv4'];
  const password = 'Zq7@Wv4:x';
  const inUrl = (port: number, scheme = 'mqtt') =>
    `${scheme}://filter:${encodeURIComponent(password)}@127.0.0.1:${port}`;

  it('a wrong password in the URL or as an option', async () => {
    for (const transport of [
      transportFor(inUrl(authBroker.port)),
      transportFor(authBroker.url, { username: 'filter', password }),
    ]) {
      const error = await failure(transport.connect({ clientId: unique('c') }));
      expect(error.message).toMatch(/user name or password|not authorized/);
      expectNoSecret(error, SECRETS);
    }
  });

  it('a wrong password and a TLS passphrase over TLS, and an untrusted broker certificate', async () => {
    for (const ca of [pki.ca, pki.otherCa]) {
      const transport = transportFor(inUrl(tlsBroker.port, 'mqtts'), {
        tls: { ca, cert: pki.clientCert, key: pki.clientKey, passphrase: 'Wv4-phrase' },
      });
      const error = await failure(transport.connect({ clientId: unique('c') }));
      expectNoSecret(error, [...SECRETS, 'Wv4-phrase']);
    }
  });

  it('an unreachable broker', async () => {
    const error = await failure(transportFor(inUrl(await freePort())).connect({ clientId: unique('c') }));
    expect(error.message).toMatch(/ECONNREFUSED/);
    expectNoSecret(error, SECRETS);
  });
});
