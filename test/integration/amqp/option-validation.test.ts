/**
 * `amqp(options)` checks every option when it is called: a wrong type is a TypeError, a wrong value a RangeError,
 * each naming the option. Valid options become the connection settings amqplib gets. No broker needed.
 */
import { describe, expect, it } from 'vitest';
import type { TransportFactory } from '../../../src/connect.js';
import { amqp } from '../../../src/transports/amqp/index.js';
import { resolveAmqpOptions } from '../../../src/transports/amqp/options.js';
import { checkAddress, topology } from '../../../src/transports/amqp/topology.js';

describe('amqp() option validation', () => {
  const url = 'amqp://localhost';
  it.each([
    ['no options', undefined, TypeError, /options object/],
    ['url not a string', { url: 5672 }, TypeError, /url must be a string/],
    ['url not a URL', { url: 'localhost:5672' }, RangeError, /amqp: or amqps:|not a URL/],
    ['mqtt url', { url: 'mqtt://localhost' }, RangeError, /amqp: or amqps:/],
    ['query in url', { url: 'amqp://localhost?heartbeat=5' }, RangeError, /query/],
    ['unknown option', { url, heartbeat: 5 }, TypeError, /unknown amqp option "heartbeat"/],
    ['prefetch 0', { url, prefetch: 0 }, RangeError, /prefetch/],
    ['prefetch fractional', { url, prefetch: 1.5 }, RangeError, /prefetch/],
    ['prefetch string', { url, prefetch: '10' }, TypeError, /prefetch must be a number/],
    ['heartbeat negative', { url, heartbeatInSeconds: -1 }, RangeError, /heartbeatInSeconds/],
    ['connect timeout 0', { url, connectTimeoutInMs: 0 }, RangeError, /connectTimeoutInMs/],
    ['prefix with space', { url, prefix: 'my app' }, RangeError, /prefix/],
    ['prefix amq.', { url, prefix: 'amq.edge' }, RangeError, /reserved/],
    ['prefix empty', { url, prefix: '' }, RangeError, /prefix/],
    ['priorities not boolean', { url, priorities: 'yes' }, TypeError, /priorities/],
    ['lib without connect', { url, lib: {} }, TypeError, /lib must be the amqplib module/],
    ['tls on amqp:', { url, tls: {} }, RangeError, /amqps:/],
    ['tls unknown key', { url: 'amqps://h', tls: { verify: false } }, TypeError, /unknown tls option/],
    ['tls cert without key', { url: 'amqps://h', tls: { cert: 'PEM' } }, TypeError, /cert and tls.key/],
    ['tls ca number', { url: 'amqps://h', tls: { ca: 1 } }, TypeError, /tls.ca/],
    ['vhost empty', { url, vhost: '' }, RangeError, /vhost/],
    ['username number', { url, username: 1 }, TypeError, /username/],
    ['maxMessageBytes 0', { url, maxMessageBytes: 0 }, RangeError, /maxMessageBytes must be an integer from 1/],
    ['maxMessageBytes fractional', { url, maxMessageBytes: 1.5 }, RangeError, /maxMessageBytes/],
    ['maxMessageBytes over 512 MiB', { url, maxMessageBytes: 2 ** 29 + 1 }, RangeError, /536870912/],
    ['maxMessageBytes string', { url, maxMessageBytes: '512k' }, TypeError, /maxMessageBytes must be a number/],
  ])('%s', (_, options, type, message) => {
    expect(() => amqp(options as never)).toThrow(type);
    expect(() => amqp(options as never)).toThrow(message);
  });

  it('maps a URL with credentials and a vhost, options overriding the URL', () => {
    const resolved = resolveAmqpOptions({
      url: 'amqps://u%40x:p%3Aw@broker.example:5999/prod%2Fa',
      heartbeatInSeconds: 0,
    });
    expect(resolved.connect).toMatchObject({
      protocol: 'amqps',
      hostname: 'broker.example',
      port: 5999,
      username: 'u@x',
      password: 'p:w',
      vhost: 'prod/a',
      heartbeat: 0,
    });
    expect(resolved.target).not.toContain('p:w');
    const overridden = resolveAmqpOptions({ url: 'amqp://a:b@h/v', username: 'c', password: 'd', vhost: '/' });
    expect(overridden.connect).toMatchObject({ username: 'c', password: 'd', vhost: '/', port: 5672 });
    expect(resolveAmqpOptions({ url: 'amqp://h' }).connect).toMatchObject({
      username: 'guest',
      vhost: '/',
      heartbeat: 10,
    });
    expect(resolveAmqpOptions({ url: 'amqps://h' }).connect.port).toBe(5671);
    expect(resolveAmqpOptions({ url: 'amqp://h' }).maxMessageBytes).toBeUndefined();
    expect(resolveAmqpOptions({ url: 'amqp://h', maxMessageBytes: 524_288 }).maxMessageBytes).toBe(524_288);
    expect(resolveAmqpOptions({ url: 'amqp://[::1]:5673' }).connect).toMatchObject({ hostname: '::1', port: 5673 });
    const tls = resolveAmqpOptions({
      url: 'amqps://h',
      tls: { ca: 'CA', cert: 'C', key: 'K', rejectUnauthorized: false },
    });
    expect(tls.socket).toMatchObject({ ca: 'CA', cert: 'C', key: 'K', rejectUnauthorized: false });
  });

  it('fits fromEnvironment as the factory of amqp: and amqps: URLs', () => {
    const factory: TransportFactory = amqp;
    expect(factory({ url: 'amqps://rabbit:5671', username: 'u', password: 'p', tls: { ca: 'PEM' } }).name).toBe('amqp');
  });

  it('describes itself', () => {
    const transport = amqp({ url });
    expect(transport.name).toBe('amqp');
    expect(transport.capabilities).toEqual({
      keepsMessagesBeforeFirstConsumer: true,
      sharedConsumers: true,
      listsRetained: false,
    });
  });

  it('checks connect options before touching the network', async () => {
    const transport = amqp({ url: 'amqp://127.0.0.1:1' });
    await expect(transport.connect({ clientId: '' })).rejects.toThrow(TypeError);
    await expect(transport.connect({ clientId: 'c', timeoutInMs: -5 })).rejects.toThrow(RangeError);
    await expect(
      transport.connect({ clientId: 'c', will: { key: 'presence/a.b', value: new Uint8Array() } }),
    ).rejects.toThrow(RangeError);
    await expect(transport.connect({ clientId: 'c', identity: 'not an identity' })).rejects.toThrow(RangeError);
    await expect(transport.connect({ clientId: 'c', identity: 'gw-1/filter/extra' })).rejects.toThrow(RangeError);
  });
});

describe('topology names', () => {
  const names = topology('edgekit');
  it('maps addresses one-to-one to documented names', () => {
    expect(names.messageQueue('inputs/dev-1/filter/in1')).toBe('edgekit.msg.inputs.dev-1.filter.in1');
    expect(names.retainedQueue('twin/dev-1/filter/desired')).toBe('edgekit.retained.twin.dev-1.filter.desired');
    expect(names.requestQueue('methods/dev-1/filter')).toBe('edgekit.rpc.methods.dev-1.filter');
    expect(names.willQueue('dev-1/filter')).toBe('edgekit.will.dev-1/filter');
    expect(names.willQueue('has space')).toMatch(/^edgekit\.will\.=[0-9a-f]{64}$/);
    expect(names.viewQueue('dev-1/filter', 'routes/dev-1')).toBe('edgekit.view.dev-1.filter.routes.dev-1');
    expect(names.updatesExchange('twin/dev-1/filter/desired')).toBe('edgekit.updates.twin.dev-1.filter.desired');
    expect(names.callsExchange('methods/dev-1/filter')).toBe('edgekit.calls.methods.dev-1.filter');
    expect(names.observeExchange).toBe('edgekit.observe');
    expect(names.repliesExchange).toBe('edgekit.replies');
    expect(names.legacyMessagesExchange).toBe('edgekit.messages');
    expect(names.legacyRetainedExchange).toBe('edgekit.retained');
  });

  it("names each identity's exchange, and reads the publisher back from it (garbage gives none)", () => {
    expect(names.fromExchange('dev-1/filter')).toBe('edgekit.from.dev-1.filter');
    expect(names.fromExchange('$operator/alice')).toBe('edgekit.from.$operator.alice');
    expect(names.fromExchange(undefined)).toBe('edgekit.anonymous');
    expect(names.publisherOf('edgekit.from.dev-1.filter', undefined)).toBe('dev-1/filter');
    expect(names.publisherOf('edgekit.from.$operator.alice', undefined)).toBe('$operator/alice');
    // A header never overrides what the exchange says.
    expect(names.publisherOf('edgekit.from.dev-1.filter', 'dev-1/other')).toBe('dev-1/filter');
    for (const exchange of [
      '',
      'edgekit.anonymous',
      'edgekit.messages',
      'edgekit.from',
      'edgekit.from.',
      'edgekit.from.dev-1',
      'edgekit.from.dev-1.filter.extra',
      'edgekit.from.dev 1.filter',
      'edgekit.from.$other.alice',
      'edgekit.from..filter',
      'other.from.dev-1.filter',
      'edgekit.from.=0000',
    ]) {
      expect(names.publisherOf(exchange, 'dev-1/filter'), exchange).toBeUndefined();
    }
  });

  it('hashes an exchange name that would be too long; the identity header is believed only when it hashes to it', () => {
    const long = `${'d'.repeat(128)}/${'m'.repeat(128)}`;
    const exchange = names.fromExchange(long);
    expect(exchange).toMatch(/^edgekit\.from\.=[0-9a-f]{64}$/);
    expect(names.fromExchangeHashed(long)).toBe(true);
    expect(names.fromExchangeHashed('dev-1/filter')).toBe(false);
    expect(names.publisherOf(exchange, long)).toBe(long);
    expect(names.publisherOf(exchange, `${'d'.repeat(128)}/${'x'.repeat(128)}`)).toBeUndefined();
    expect(names.publisherOf(exchange, undefined)).toBeUndefined();
    expect(names.publisherOf(exchange, 42)).toBeUndefined();
  });

  it('reply keys start with the identity, so a topic permission can confine who binds them', () => {
    expect(names.replyKey('dev-1/filter', 'abc')).toBe('dev-1.filter.abc');
    expect(names.replyKey('$operator/alice', 'abc')).toBe('$operator.alice.abc');
    expect(names.replyKey(undefined, 'abc')).toBe('anonymous.abc');
    const long = `${'d'.repeat(128)}/${'m'.repeat(128)}`;
    expect(names.replyKeyStem(long)).toMatch(/^=[0-9a-f]{64}$/);
    expect(Buffer.byteLength(names.replyKey(long, 'x'.repeat(36)))).toBeLessThanOrEqual(255);
  });

  it('maps observe patterns to binding keys, and routing keys back to addresses', () => {
    expect(names.observeBindingKey(['inputs', 'gw-1', '*', '*'])).toBe('edgekit.msg.inputs.gw-1.*.*');
    expect(names.observeBindingKey(['upstream', 'x'.repeat(300)])).toBeUndefined();
    expect(names.addressOfMessageQueue('edgekit.msg.inputs.gw-1.filter.in1')).toBe('inputs/gw-1/filter/in1');
    expect(names.addressOfMessageQueue(names.messageQueue(`inputs/${'d'.repeat(128)}/${'m'.repeat(128)}/in`))).toBe(
      undefined,
    );
    expect(names.addressOfMessageQueue('edgekit.retained.presence.gw-1.m')).toBeUndefined();
    expect(names.addressOfMessageQueue('other.msg.upstream.gw-1')).toBeUndefined();
  });

  it('hashes names longer than AMQP allows, still one-to-one', () => {
    const long = `inputs/${'d'.repeat(128)}/${'m'.repeat(128)}/in`;
    const other = `inputs/${'d'.repeat(128)}/${'m'.repeat(128)}/in2`;
    const a = names.messageQueue(long);
    expect(Buffer.byteLength(a)).toBeLessThanOrEqual(255);
    expect(a).toMatch(/^edgekit\.msg\.inputs\.=[0-9a-f]{64}$/);
    expect(names.messageQueue(other)).not.toBe(a);
  });

  it('rejects segments with AMQP or MQTT wildcards, dots, spaces or empty segments', () => {
    for (const bad of ['a.b', 'a/*', 'a/#', 'a/+', 'a b', 'a//b', '/a', 'a/', '', 'a/\u0000']) {
      expect(() => checkAddress('address', bad), bad).toThrow(RangeError);
    }
    expect(checkAddress('key', 'twin/d:1@x~y!z_-/m/desired')).toBe('twin/d:1@x~y!z_-/m/desired');
  });
});
