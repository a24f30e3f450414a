/**
 * `queueType: 'quorum'` and `urls` on the shared single node (a quorum queue works on one node too): the queues the
 * transport declares have the type and arguments docs/transports/amqp.md lists; retained values, per-message TTL
 * and the will behave as on classic queues; a client with the other `queueType` fails with `invalid-configuration`,
 * saying so; `urls` with a dead node first still connects.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { isEdgeKitError } from '../../../src/errors.js';
import type { Delivery, TransportConnection } from '../../../src/transport.js';
import { amqp } from '../../../src/transports/amqp/index.js';
import { freePort } from '../support/loopback.js';
import { startTcpProxy, type TcpProxy } from '../support/tcp-proxy.js';
import {
  bytes,
  closeAll,
  Inbox,
  open,
  rawConnection,
  sharedRabbitMQ,
  testTransport,
  text,
  uniquePrefix,
  until,
} from './support.js';

const opened: TransportConnection[] = [];
let proxy: TcpProxy | undefined;
afterEach(async () => {
  await closeAll(opened);
  await proxy?.close();
  proxy = undefined;
});

/**
 * Whether queue `name` exists with exactly these arguments: RabbitMQ accepts a re-declaration only with equivalent
 * ones (406 otherwise), as `rabbitmqctl list_queues` would show them, without needing its environment.
 */
async function declaredWith(name: string, args: Record<string, unknown>): Promise<boolean> {
  const raw = await rawConnection();
  try {
    const channel = await raw.createChannel();
    channel.on('error', () => undefined);
    await channel.assertQueue(name, { durable: true, arguments: args });
    return true;
  } catch {
    return false;
  } finally {
    await raw.close().catch(() => undefined);
  }
}

describe("queueType: 'quorum'", () => {
  it('declares message, retained and will queues as quorum queues, with the arguments documented', async () => {
    const prefix = uniquePrefix();
    const connection = await open(
      testTransport({ prefix, queueType: 'quorum' }),
      { clientId: 'gw-1/f', identity: 'gw-1/f', will: { key: 'presence/gw-1/f', value: bytes('gone') } },
      opened,
    );
    const inbox = new Inbox<Delivery>();
    await connection.consume('inputs/gw-1/f/in', { prefetch: 10 }, (delivery) => {
      inbox.push(delivery);
      delivery.ack();
    });
    await connection.publish('inputs/gw-1/f/in', bytes('one'));
    expect(text((await inbox.next()).bytes)).toBe('one');
    await connection.setRetained('twin/gw-1/f/reported', bytes('v1'));
    const quorum = { 'x-queue-type': 'quorum' };
    expect(await declaredWith(`${prefix}.msg.inputs.gw-1.f.in`, quorum)).toBe(true);
    expect(await declaredWith(`${prefix}.msg.inputs.gw-1.f.in`, {})).toBe(false);
    const lastValue = { ...quorum, 'x-max-length': 1, 'x-overflow': 'drop-head' };
    for (const retained of [`${prefix}.retained.twin.gw-1.f.reported`, `${prefix}.retained.presence.gw-1.f`]) {
      expect(await declaredWith(retained, lastValue)).toBe(true);
      expect(await declaredWith(retained, { 'x-max-length': 1, 'x-overflow': 'drop-head' })).toBe(false);
    }
    const will = {
      ...quorum,
      'x-dead-letter-exchange': `${prefix}.from.gw-1.f`,
      'x-dead-letter-routing-key': `${prefix}.retained.presence.gw-1.f`,
      'x-expires': 3_600_000,
      'x-dead-letter-strategy': 'at-least-once',
      'x-overflow': 'reject-publish',
    };
    expect(await declaredWith(`${prefix}.will.gw-1/f`, will)).toBe(true);
    expect(await declaredWith(`${prefix}.will.gw-1/f`, { ...will, 'x-overflow': 'drop-head' })).toBe(false);
  });

  it('keeps the newest retained value across reads and writes', async () => {
    const connection = await open(testTransport({ queueType: 'quorum' }), {}, opened);
    expect(await connection.getRetained('k/a')).toBeUndefined();
    for (let i = 0; i < 30; i++) {
      await connection.setRetained('k/a', bytes(`v${i}`));
      expect(text(await connection.getRetained('k/a'))).toBe(`v${i}`);
      expect(text(await connection.getRetained('k/a'))).toBe(`v${i}`);
    }
  });

  it('drops a message whose TTL ran out and delivers the others', async () => {
    const connection = await open(testTransport({ queueType: 'quorum' }), {}, opened);
    const sentAt = Date.now();
    await connection.publish('inputs/d/m/in', bytes('short'), { ttlInMs: 50 });
    await connection.publish('inputs/d/m/in', bytes('long'), { ttlInMs: 60_000 });
    // Not a guess: the condition is that the first message's TTL has passed.
    await until(() => Date.now() - sentAt > 200, 1_000, 'the short TTL to pass');
    const inbox = new Inbox<Delivery>();
    await connection.consume('inputs/d/m/in', { prefetch: 10 }, (delivery) => {
      inbox.push(delivery);
      delivery.ack();
    });
    expect(text((await inbox.next()).bytes)).toBe('long');
    await expect(inbox.next(300)).rejects.toThrow(/timed out/);
  });

  it('fires the will of a connection cut abruptly', async () => {
    proxy = await startTcpProxy(sharedRabbitMQ().port);
    const prefix = uniquePrefix();
    const will = { key: 'presence/d1/m1', value: bytes('offline') };
    const module = await open(
      testTransport({ prefix, queueType: 'quorum', url: `amqp://guest:guest@127.0.0.1:${proxy.port}` }),
      { clientId: 'd1/m1', will },
      opened,
    );
    await module.setRetained(will.key, bytes('online'));
    const observer = await open(testTransport({ prefix, queueType: 'quorum' }), {}, opened);
    const seen = new Inbox<string | undefined>();
    await observer.watchRetained(will.key, (v) => seen.push(text(v)));
    expect(await seen.next()).toBe('online');
    proxy.cut();
    expect(await seen.next(5_000, 'the will')).toBe('offline');
    expect(text(await observer.getRetained(will.key))).toBe('offline');
  });

  it('refuses a queue another client declared with the other type: invalid-configuration, naming queueType', async () => {
    const prefix = uniquePrefix();
    const classic = await open(testTransport({ prefix }), {}, opened);
    await classic.publish('inputs/d/m/in', bytes('x'));
    const quorum = await open(testTransport({ prefix, queueType: 'quorum' }), {}, opened);
    const failure = await quorum.publish('inputs/d/m/in', bytes('y')).catch((error: unknown) => error);
    expect(isEdgeKitError(failure, 'invalid-configuration')).toBe(true);
    expect((failure as Error).message).toMatch(/x-queue-type.*same edgekit\/amqp `queueType`/s);
  });
});

describe('urls', () => {
  it('connects to the next node when the first does not answer, and starts after it next time', async () => {
    const dead = `amqp://guest:guest@127.0.0.1:${await freePort()}`;
    const transport = amqp({ urls: [dead, sharedRabbitMQ().url], prefix: uniquePrefix(), connectTimeoutInMs: 5_000 });
    const first = await open(transport, {}, opened);
    await first.setRetained('k/a', bytes('1'));
    await first.close();
    // The live node worked last; with two nodes the next connect tries the dead one first, then the live one.
    const started = Date.now();
    const second = await open(transport, {}, opened);
    expect(text(await second.getRetained('k/a'))).toBe('1');
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it('fails with every node named when none answers', async () => {
    const urls = [`amqp://127.0.0.1:${await freePort()}`, `amqp://127.0.0.1:${await freePort()}`];
    const failure = await amqp({ urls })
      .connect({ clientId: 'c', timeoutInMs: 3_000 })
      .catch((e: unknown) => e);
    expect(isEdgeKitError(failure, 'connection-failed')).toBe(true);
    expect((failure as Error).message).toMatch(/any of 2 RabbitMQ nodes/);
    for (const url of urls) expect((failure as Error).message).toContain(url.replace('amqp://', ''));
  });
});
