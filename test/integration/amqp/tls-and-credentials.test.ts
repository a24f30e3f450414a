/**
 * TLS and credentials against the real broker: AMQPS with the test CA and a client certificate works end to end;
 * an untrusted CA or a missing client certificate is refused; username/password and vhost options (and the same in
 * a percent-encoded URL) reach RabbitMQ; a wrong password is `authentication`. No refusal shows the password or the
 * TLS passphrase.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { isEdgeKitError } from '../../../src/errors.js';
import type { Delivery, TransportConnection } from '../../../src/transport.js';
import { amqp } from '../../../src/transports/amqp/index.js';
import { expectNoSecret } from '../../support/secrets.js';
import { freePort } from '../support/loopback.js';
import { TEST_USERS, TEST_VHOST } from './global-setup.js';
import { bytes, closeAll, Inbox, open, sharedRabbitMQ, text, uniquePrefix } from './support.js';

const opened: TransportConnection[] = [];
afterEach(() => closeAll(opened));

async function roundTrip(connection: TransportConnection): Promise<void> {
  const inbox = new Inbox<Delivery>();
  await connection.consume('inputs/d1/m1/in', { prefetch: 1 }, (d) => {
    inbox.push(d);
    d.ack();
  });
  await connection.publish('inputs/d1/m1/in', bytes('over the wire'));
  expect(text((await inbox.next()).bytes)).toBe('over the wire');
}

async function refusal(promise: Promise<TransportConnection>): Promise<unknown> {
  return promise.then(
    async (connection) => {
      await connection.close();
      throw new Error('expected the connection to be refused');
    },
    (error: unknown) => error,
  );
}

describe('TLS', () => {
  const tlsUrl = () => `amqps://127.0.0.1:${sharedRabbitMQ().tlsPort}`;

  it('connects with the CA and a client certificate', async () => {
    const { ca, clientCert, clientKey } = sharedRabbitMQ();
    const transport = amqp({ url: tlsUrl(), prefix: uniquePrefix(), tls: { ca, cert: clientCert, key: clientKey } });
    await roundTrip(await open(transport, {}, opened));
  });

  it('refuses a broker certificate from another CA (tls)', async () => {
    const { otherCa, clientCert, clientKey } = sharedRabbitMQ();
    const transport = amqp({ url: tlsUrl(), tls: { ca: otherCa, cert: clientCert, key: clientKey } });
    const error = await refusal(transport.connect({ clientId: 'untrusted' }));
    expect(isEdgeKitError(error, 'connection-failed')).toBe(true);
    expect(isEdgeKitError(error) && error.details.reason).toBe('tls');
  });

  it('is refused without a client certificate', async () => {
    const transport = amqp({ url: tlsUrl(), tls: { ca: sharedRabbitMQ().ca }, connectTimeoutInMs: 5_000 });
    const error = await refusal(transport.connect({ clientId: 'anonymous' }));
    expect(isEdgeKitError(error, 'connection-failed')).toBe(true);
  });
});

describe('credentials and vhost', () => {
  const port = () => sharedRabbitMQ().port;

  it('uses username, password and vhost options', async () => {
    const transport = amqp({
      url: `amqp://127.0.0.1:${port()}`,
      username: 'filter',
      password: 's3cret',
      vhost: TEST_VHOST,
      prefix: uniquePrefix(),
    });
    await roundTrip(await open(transport, {}, opened));
  });

  it('reads percent-encoded credentials and vhost from the URL', async () => {
    const url = `amqp://${encodeURIComponent('user with space')}:${encodeURIComponent('p@ss/w:rd')}@127.0.0.1:${port()}/${TEST_VHOST}`;
    await roundTrip(await open(amqp({ url, prefix: uniquePrefix() }), {}, opened));
  });

  it('refuses a wrong password (authentication)', async () => {
    const transport = amqp({ url: `amqp://127.0.0.1:${port()}`, username: 'filter', password: 'nope' });
    const error = await refusal(transport.connect({ clientId: 'wrong' }));
    expect(isEdgeKitError(error) && error.details.reason).toBe('authentication');
  });
});

describe('no refusal shows the password', () => {
  // Two halves, so a password cut in two is still caught; the @ and : must be percent-encoded in a URL.
  const SECRETS = ['Zq7', 'Wv4'];
  const password = 'Zq7@Wv4:x';
  const inUrl = (port: number, scheme = 'amqp') =>
    `${scheme}://filter:${encodeURIComponent(password)}@127.0.0.1:${port}`;

  it('a wrong password in the URL or as an option (authentication)', async () => {
    expect(TEST_USERS.filter).not.toBe(password);
    for (const transport of [
      amqp({ url: inUrl(sharedRabbitMQ().port) }),
      amqp({ url: `amqp://127.0.0.1:${sharedRabbitMQ().port}`, username: 'filter', password }),
    ]) {
      const error = await refusal(transport.connect({ clientId: 'wrong' }));
      expect(isEdgeKitError(error, 'connection-failed')).toBe(true);
      expect(isEdgeKitError(error) && error.details.reason).toBe('authentication');
      expectNoSecret(error, SECRETS);
    }
  });

  it('a TLS passphrase and a password to a broker with an untrusted certificate', async () => {
    const { otherCa, clientCert, clientKey } = sharedRabbitMQ();
    const transport = amqp({
      url: inUrl(sharedRabbitMQ().tlsPort, 'amqps'),
      tls: { ca: otherCa, cert: clientCert, key: clientKey, passphrase: 'Wv4-phrase' },
    });
    const error = await refusal(transport.connect({ clientId: 'untrusted' }));
    expect(isEdgeKitError(error, 'connection-failed')).toBe(true);
    expectNoSecret(error, [...SECRETS, 'Wv4-phrase']);
  });

  it('an unreachable broker (refused)', async () => {
    const error = await refusal(amqp({ url: inUrl(await freePort()) }).connect({ clientId: 'nobody' }));
    expect(isEdgeKitError(error) && error.details.reason).toBe('refused');
    expectNoSecret(error, SECRETS);
  });
});
