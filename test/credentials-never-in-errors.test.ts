/**
 * A password in a broker URL never shows in an error, whatever is wrong with the URL, and whichever entry point
 * refuses it: `mqtt()`, `amqp()` or `fromEnvironment`. Each error still says what is wrong. Library errors that quote
 * the URL or the password are redacted at the transport boundary. A `%` in a URL's password is taken literally.
 * No broker needed: the library errors come from injected libraries.
 */
import * as realMqtt from 'mqtt';
import { describe, expect, test } from 'vitest';
import { fromEnvironment } from '../src/connect.js';
import { untypedModule } from '../src/core/contract.js';
import { isEdgeKitError } from '../src/errors.js';
import { amqp } from '../src/transports/amqp/index.js';
import { resolveAmqpOptions } from '../src/transports/amqp/options.js';
import { mqtt } from '../src/transports/mqtt/index.js';
import { resolveOptions } from '../src/transports/mqtt/options.js';
import { expectNoSecret } from './support/secrets.js';

// Two halves of every password below, so a password cut in two by a malformed URL is still caught.
const SECRETS = ['Zq7', 'Wv4'];

function thrown(f: () => unknown): unknown {
  try {
    f();
  } catch (error) {
    return error;
  }
  throw new Error('expected an error');
}

/** [what is wrong, URL, what the message must say] */
type Row = readonly [string, string, RegExp];

const MQTT_URLS: readonly Row[] = [
  ['a path', 'mqtt://u:Zq7Wv4@host/path', /host\/path" must not have a path/],
  ['a query', 'mqtt://u:Zq7Wv4@host?x=1', /must not have a path, query/],
  ['a fragment', 'mqtt://u:Zq7Wv4@host#frag', /fragment/],
  ['a space in the host (unparsable)', 'mqtt://u:Zq7Wv4@ho st', /is not a valid URL/],
  ['no host after the credentials', 'mqtt://u:Zq7Wv4@', /is not a valid URL/],
  ['an empty host before the port', 'mqtt://u:Zq7Wv4@:1883', /is not a valid URL/],
  ['a port out of range', 'mqtt://u:Zq7Wv4@host:99999', /host:99999" is not a valid URL/],
  ['a port that is not a number', 'mqtt://u:Zq7Wv4@host:abc', /is not a valid URL/],
  ['no host: the password reads as a port', 'mqtt://u:Zq7Wv4', /is not a valid URL/],
  ['an unknown scheme', 'ws://u:Zq7Wv4@host', /scheme "ws:" is not supported/],
  ['a space in the password, and a path', 'mqtt://u:Zq7 Wv4@host/x', /must not have a path/],
  ['a stray % in the password, and a query', 'mqtt://u:Zq7%Wv4@host?x', /must not have a path, query/],
  ['an @ in the password, and a path', 'mqtt://u:Zq7@Wv4@host/x', /must not have a path/],
  ['a : in the password, and a path', 'mqtt://u:Zq7:Wv4@host/x', /must not have a path/],
  ['a / in the password', 'mqtt://u:Zq7/Wv4@host', /is not a valid URL \(the password is masked; .* %2F/],
  ['a # in the password', 'mqtt://u:Zq7#Wv4@host', /is not a valid URL \(the password is masked; .* %23/],
  ['IPv6 garbage', 'mqtt://u:Zq7Wv4@[::zz]:1883', /is not a valid URL/],
  ['no scheme at all', 'not a url u:Zq7Wv4@h', /"not a url u:\*\*\*@h" is not a valid URL/],
  ['an upper-case scheme and a path', 'MQTT://u:Zq7Wv4@host/x', /must not have a path/],
  ['the password as a query parameter', 'mqtt://host?username=u&password=Zq7Wv4', /password=\*\*\*" must not have/],
];

const AMQP_URLS: readonly Row[] = [
  ['a query', 'amqp://u:Zq7Wv4@host/vh?heartbeat=5', /must not have a query/],
  ['a fragment', 'amqp://u:Zq7Wv4@host#frag', /must not have a query or fragment/],
  ['a space in the host (unparsable)', 'amqp://u:Zq7Wv4@ho st', /is not a URL/],
  ['no host after the credentials', 'amqp://u:Zq7Wv4@', /is not a URL/],
  ['an empty host before the port', 'amqp://u:Zq7Wv4@:5672', /is not a URL/],
  ['a port out of range', 'amqp://u:Zq7Wv4@host:99999', /host:99999" is not a URL/],
  ['a port that is not a number', 'amqp://u:Zq7Wv4@host:abc', /is not a URL/],
  ['no host: the password reads as a port', 'amqp://u:Zq7Wv4', /is not a URL/],
  ['an unknown scheme', 'http://u:Zq7Wv4@host', /amqp: or amqps:/],
  ['a space in the password, and a query', 'amqp://u:Zq7 Wv4@host?x', /must not have a query/],
  ['a stray % in the password, and a query', 'amqp://u:Zq7%Wv4@host?x', /must not have a query/],
  ['an @ in the password, and a fragment', 'amqp://u:Zq7@Wv4@host#x', /fragment/],
  ['a / in the password', 'amqp://u:Zq7/Wv4@host', /is not a URL \(the password is masked; .* %2F/],
  ['IPv6 garbage', 'amqp://u:Zq7Wv4@[::zz]:5672', /is not a URL/],
  ['no scheme at all', 'not a url u:Zq7Wv4@h', /"not a url u:\*\*\*@h" is not a URL/],
  ['the password as a query parameter, and a space', 'amqp://ho st?password=Zq7Wv4', /password=\*\*\*" is not a URL/],
];

describe('mqtt() refuses a malformed URL without showing its password', () => {
  test.each(MQTT_URLS)('%s: %s', (_, url, says) => {
    const error = thrown(() => mqtt({ url }));
    expect(error).toSatisfy((e) => e instanceof TypeError || e instanceof RangeError);
    expect((error as Error).message).toMatch(says);
    expectNoSecret(error, SECRETS);
  });

  test('also when the URL is a URL object', () => {
    const error = thrown(() => mqtt({ url: new URL('mqtt://u:Zq7Wv4@host/x') }));
    expect((error as Error).message).toMatch(/must not have a path/);
    expectNoSecret(error, SECRETS);
  });
});

describe('amqp() refuses a malformed URL without showing its password', () => {
  test.each(AMQP_URLS)('%s: %s', (_, url, says) => {
    const error = thrown(() => amqp({ url }));
    expect(error).toSatisfy((e) => e instanceof TypeError || e instanceof RangeError);
    expect((error as Error).message).toMatch(says);
    expectNoSecret(error, SECRETS);
  });
});

describe('fromEnvironment refuses a malformed EDGEKIT_BROKER_URL without showing its password', () => {
  test.each([...MQTT_URLS, ...AMQP_URLS])('%s: %s', async (_, url) => {
    const error = await fromEnvironment(untypedModule, {
      env: { IOTEDGE_DEVICEID: 'dev', IOTEDGE_MODULEID: 'mod', EDGEKIT_BROKER_URL: url },
      transports: { mqtt, amqp },
    }).then(
      () => new Error('expected fromEnvironment to fail'),
      (e: unknown) => e,
    );
    // Either the variable is not a URL at all (invalid-configuration naming it) or the transport refuses it.
    if (isEdgeKitError(error)) {
      expect(error.code).toBe('invalid-configuration');
      expect(error.message).toMatch(
        /EDGEKIT_BROKER_URL .* is not a URL|EDGEKIT_BROKER_URL uses \w+:, which edgekit does not speak: use mqtt:\/\//,
      );
    } else {
      expect(error).toSatisfy((e) => e instanceof TypeError || e instanceof RangeError);
      expect((error as Error).message).toMatch(/url|scheme/);
    }
    expectNoSecret(error, SECRETS);
  });

  test('names the variable when it is not a URL', async () => {
    const error = await fromEnvironment(untypedModule, {
      env: { IOTEDGE_DEVICEID: 'dev', IOTEDGE_MODULEID: 'mod', EDGEKIT_BROKER_URL: 'mqtt://u:Zq7Wv4@ho st' },
      transports: { mqtt },
    }).catch((e: unknown) => e);
    expect(isEdgeKitError(error, 'invalid-configuration')).toBe(true);
    expect((error as Error).message).toContain('EDGEKIT_BROKER_URL "mqtt://u:***@ho st" is not a URL (the password');
    expectNoSecret(error, SECRETS);
  });
});

describe('a % in a URL password is taken literally unless it starts a percent-encoded byte', () => {
  test('mqtt()', () => {
    expect(resolveOptions({ url: 'mqtt://u:50%@host' }).password).toBe('50%');
    expect(resolveOptions({ url: 'mqtt://u:a%zz%4@host' }).password).toBe('a%zz%4');
    expect(resolveOptions({ url: 'mqtt://u%:p%25%40@host' })).toMatchObject({ username: 'u%', password: 'p%@' });
    expect(resolveOptions({ url: 'mqtt://u:%E2%82%AC%@host' }).password).toBe('€%');
  });

  test('amqp(), also in the vhost', () => {
    expect(resolveAmqpOptions({ url: 'amqp://u:50%@host/v%' }).connect).toMatchObject({
      username: 'u',
      password: '50%',
      vhost: 'v%',
    });
    expect(resolveAmqpOptions({ url: 'amqp://u%zz:p%2Fq@host/%2F' }).connect).toMatchObject({
      username: 'u%zz',
      password: 'p/q',
      vhost: '/',
    });
  });

  test('fromEnvironment hands the literal password to the transport', async () => {
    const seen: unknown[] = [];
    await fromEnvironment(untypedModule, {
      env: { IOTEDGE_DEVICEID: 'dev', IOTEDGE_MODULEID: 'mod', EDGEKIT_BROKER_URL: 'mqtt://u:50%@127.0.0.1:1' },
      transports: {
        mqtt: (options) => {
          seen.push(resolveOptions(options).password);
          throw new RangeError('stop here');
        },
      },
    }).catch(() => undefined);
    expect(seen).toEqual(['50%']);
  });
});

describe('library errors that quote the URL or the password are redacted at the transport boundary', () => {
  const quoting = (text: string) => Object.assign(new Error(text), { code: 'EWHATEVER', input: text });

  test('mqtt: mqtt.js throwing from connect()', async () => {
    const transport = mqtt({
      url: 'mqtt://u:Zq7Wv4@127.0.0.1:1',
      lib: {
        connect() {
          throw quoting('cannot parse mqtt://u:Zq7Wv4@127.0.0.1:1 (password Zq7Wv4)');
        },
      },
    });
    const error = await transport.connect({ clientId: 'c' }).catch((e: unknown) => e);
    expect(isEdgeKitError(error, 'connection-failed')).toBe(true);
    expect((error as Error).message).toContain('cannot parse mqtt://u:***@127.0.0.1:1 (password ***)');
    expect(((error as Error).cause as { code?: unknown }).code).toBe('EWHATEVER');
    expectNoSecret(error, SECRETS);
  });

  test('mqtt: an error event while connecting, with the password given as an option and a TLS passphrase', async () => {
    const transport = mqtt({
      url: 'mqtts://127.0.0.1:1',
      username: 'u',
      password: 'Zq7Wv4',
      tls: { passphrase: 'Wv4-phrase' },
      lib: {
        connect(options) {
          const client = realMqtt.connect(options);
          queueMicrotask(() =>
            client.emit('error', quoting('TLS says: mqtts://u:Zq7Wv4@127.0.0.1:1, passphrase Wv4-phrase')),
          );
          return client;
        },
      },
    });
    const error = await transport.connect({ clientId: 'c' }).catch((e: unknown) => e);
    expect(isEdgeKitError(error, 'connection-failed')).toBe(true);
    expect((error as Error).message).toContain('mqtts://u:***@127.0.0.1:1, passphrase ***');
    expectNoSecret(error, [...SECRETS, 'Wv4-phrase']);
  });

  test('amqp: amqplib rejecting connect()', async () => {
    const transport = amqp({
      url: 'amqp://u:Zq7Wv4@127.0.0.1:1',
      lib: { connect: () => Promise.reject(quoting('ACCESS_REFUSED for amqp://u:Zq7Wv4@127.0.0.1:1/ (Zq7Wv4)')) },
    });
    const error = await transport.connect({ clientId: 'c' }).catch((e: unknown) => e);
    expect(isEdgeKitError(error, 'connection-failed')).toBe(true);
    expect(isEdgeKitError(error) && error.details.reason).toBe('authentication');
    expect((error as Error).message).toContain('ACCESS_REFUSED for amqp://u:***@127.0.0.1:1/ (***)');
    expectNoSecret(error, SECRETS);
  });

  test('amqp: the TLS passphrase given as an option', async () => {
    const transport = amqp({
      url: 'amqps://127.0.0.1:1',
      password: 'Zq7Wv4',
      tls: { passphrase: 'Wv4-phrase' },
      lib: { connect: () => Promise.reject(quoting('bad decrypt with Wv4-phrase for Zq7Wv4')) },
    });
    const error = await transport.connect({ clientId: 'c' }).catch((e: unknown) => e);
    expect(isEdgeKitError(error, 'connection-failed')).toBe(true);
    expectNoSecret(error, [...SECRETS, 'Wv4-phrase']);
  });
});
