/**
 * Options of `mqtt()`: each bad value is refused when the transport is created with a TypeError/RangeError naming it;
 * `lib` injection is used instead of importing; a missing `mqtt` package gives `missing-dependency` saying exactly
 * `npm install mqtt` — checked in a child process where Node cannot resolve the package.
 */
import { execFile } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import * as realMqtt from 'mqtt';
import { describe, expect, it } from 'vitest';
import { isEdgeKitError } from '../../../src/errors.js';
import { mqtt } from '../../../src/transports/mqtt/index.js';
import { importMqtt } from '../../../src/transports/mqtt/load-mqtt.js';
import type { MqttLibrary, MqttTransportOptions } from '../../../src/transports/mqtt/options.js';
import { transportFor, unique, useConnections, useMosquitto } from './support/fixtures.js';

const broker = useMosquitto();
const connections = useConnections();
const here = path.dirname(fileURLToPath(import.meta.url));
const run = promisify(execFile);

const url = 'mqtt://127.0.0.1:1883';
const bad = (options: unknown) => () => mqtt(options as MqttTransportOptions);

describe('option validation', () => {
  it('accepts the documented forms', () => {
    expect(mqtt({ url }).name).toBe('mqtt');
    expect(() => mqtt({ url: new URL(url) })).not.toThrow();
    expect(() => mqtt({ url: 'tcp://localhost' })).not.toThrow();
    expect(() => mqtt({ url: 'ssl://broker.local:8883', tls: { rejectUnauthorized: false } })).not.toThrow();
    expect(() =>
      mqtt({
        url: 'mqtts://[::1]:8883',
        tls: { ca: 'PEM', cert: Buffer.from('PEM'), key: ['PEM'] },
        username: 'u',
        password: 'p',
        keepaliveInSeconds: 0,
        connectTimeoutInMs: 1_000,
        sessionExpiryInSeconds: 0xffff_ffff,
        queueSessionExpiryInSeconds: 0,
        topicPrefix: '',
        clientIdPrefix: 'site-a:',
        shareGroup: 'edgekit',
      }),
    ).not.toThrow();
  });

  it('refuses missing or malformed urls and unsupported schemes', () => {
    expect(bad(undefined)).toThrow(TypeError);
    expect(bad({})).toThrow(/url is required/);
    expect(bad({ url: 42 })).toThrow(TypeError);
    expect(bad({ url: 'not a url' })).toThrow(/not a valid URL/);
    expect(bad({ url: 'ws://127.0.0.1' })).toThrow(RangeError);
    expect(bad({ url: 'mqtt://127.0.0.1/some/path' })).toThrow(/path/);
  });

  it('refuses unknown options, naming them (typos do not pass silently)', () => {
    expect(bad({ url, keepAlive: 10 })).toThrow(/unknown option "keepAlive"/);
    expect(bad({ url: 'mqtts://h', tls: { cafile: 'x' } })).toThrow(/unknown option "cafile"/);
  });

  it('refuses out-of-range numbers', () => {
    expect(bad({ url, keepaliveInSeconds: -1 })).toThrow(RangeError);
    expect(bad({ url, keepaliveInSeconds: 70_000 })).toThrow(RangeError);
    expect(bad({ url, keepaliveInSeconds: 1.5 })).toThrow(RangeError);
    expect(bad({ url, keepaliveInSeconds: '30' })).toThrow(TypeError);
    expect(bad({ url, sessionExpiryInSeconds: 2 ** 32 })).toThrow(RangeError);
    expect(bad({ url, queueSessionExpiryInSeconds: -1 })).toThrow(RangeError);
    expect(bad({ url, connectTimeoutInMs: 0 })).toThrow(RangeError);
    expect(bad({ url, connectTimeoutInMs: Number.POSITIVE_INFINITY })).toThrow(RangeError);
  });

  it('refuses TLS options on a plain url and half a client certificate', () => {
    expect(bad({ url, tls: { ca: 'PEM' } })).toThrow(/mqtts/);
    expect(bad({ url: 'mqtts://h', tls: { cert: 'PEM' } })).toThrow(/together/);
    expect(bad({ url: 'mqtts://h', tls: { ca: 42 } })).toThrow(TypeError);
    expect(bad({ url: 'mqtts://h', tls: { ca: [] } })).toThrow(RangeError);
    expect(bad({ url: 'mqtts://h', tls: { rejectUnauthorized: 'no' } })).toThrow(TypeError);
  });

  it('refuses bad credentials, client ids, prefixes and share groups', () => {
    expect(bad({ url, password: 'p' })).toThrow(/needs a username/);
    expect(bad({ url, username: 7 })).toThrow(TypeError);
    expect(bad({ url, clientId: 'a+b' })).toThrow(RangeError);
    expect(bad({ url, clientId: 'a', clientIdPrefix: 'b' })).toThrow(/not both/);
    expect(bad({ url, topicPrefix: 'edgekit' })).toThrow(/end with \//);
    expect(bad({ url, topicPrefix: 'a/#/' })).toThrow(RangeError);
    expect(bad({ url, topicPrefix: '$SYS/' })).toThrow(RangeError);
    expect(bad({ url, topicPrefix: '/edgekit/' })).toThrow(RangeError);
    expect(bad({ url, shareGroup: '' })).toThrow(RangeError);
    expect(bad({ url, shareGroup: 'a/b' })).toThrow(RangeError);
    expect(bad({ url, shareGroup: false })).toThrow(TypeError);
    expect(bad({ url, lib: {} })).toThrow(/connect/);
  });
});

describe('the mqtt library', () => {
  it('uses an injected lib instead of importing one', async () => {
    const calls: string[] = [];
    const lib: MqttLibrary = {
      connect(options) {
        calls.push(String(options.clientId));
        return realMqtt.connect(options);
      },
    };
    const clientId = unique('injected');
    const connection = await connections.open(transportFor(broker().url, { lib }), { clientId });
    expect(calls).toEqual([clientId]);
    expect(await connection.getRetained(`twin/${unique('d')}/m/desired`)).toBeUndefined();
  });

  it('applies clientIdPrefix and the topic prefix on the wire', async () => {
    const seen: string[] = [];
    const lib: MqttLibrary = {
      connect(options) {
        seen.push(String(options.clientId));
        return realMqtt.connect(options);
      },
    };
    const device = unique('d');
    const connection = await connections.open(
      transportFor(broker().url, { lib, clientIdPrefix: 'site-a:', topicPrefix: 'plant/7/' }),
      { clientId: `${device}/m` },
    );
    expect(seen).toEqual([`site-a:${device}/m`]);
    // A raw client sees the value under the prefixed topic.
    await connection.setRetained(`twin/${device}/m/reported`, new TextEncoder().encode('v'));
    const raw = await realMqtt.connectAsync(broker().url, { protocolVersion: 5, clientId: unique('raw') });
    try {
      const message = new Promise<string>((resolve) => raw.on('message', (topic) => resolve(topic)));
      await raw.subscribeAsync(`plant/7/twin/${device}/m/reported`, { qos: 1 });
      expect(await message).toBe(`plant/7/twin/${device}/m/reported`);
    } finally {
      await raw.endAsync();
    }
  });

  it('reports a missing mqtt package as missing-dependency with the install command', async () => {
    const missing = Object.assign(new Error("Cannot find package 'mqtt' imported from /app/index.js"), {
      code: 'ERR_MODULE_NOT_FOUND',
    });
    const error = await importMqtt(() => Promise.reject(missing)).catch((e: unknown) => e);
    expect(isEdgeKitError(error, 'missing-dependency')).toBe(true);
    expect((error as Error).message).toContain('npm install mqtt');
    expect((error as Error).cause).toBe(missing);
    // Another failure inside mqtt is not mistaken for a missing package.
    const broken = await importMqtt(() => Promise.reject(new Error('boom'))).catch((e: unknown) => e);
    expect(isEdgeKitError(broken, 'transport-error')).toBe(true);
  });

  it('says `npm install mqtt` when Node cannot resolve the package (child process)', async () => {
    const { stdout } = await run(
      process.execPath,
      ['--import', 'tsx', '--import', './fixtures/hide-mqtt.mjs', './fixtures/connect-without-mqtt.ts'],
      { cwd: here, timeout: 30_000 },
    );
    const result = JSON.parse(stdout.trim().split('\n').at(-1)!);
    expect(result).toMatchObject({ name: 'EdgeKitError', code: 'missing-dependency' });
    expect(result.message).toContain('npm install mqtt');
  });
});
