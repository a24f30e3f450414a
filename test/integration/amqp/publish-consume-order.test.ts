/**
 * Messages go from publish to consume in order; publish resolves only once the broker has the message (publisher
 * confirm), which is visible as a ready message in the durable queue; manual acks remove them.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { Delivery, TransportConnection } from '../../../src/transport.js';
import {
  bytes,
  closeAll,
  Inbox,
  open,
  rawConnection,
  readyCount,
  testTransport,
  text,
  uniquePrefix,
  until,
} from './support.js';

const opened: TransportConnection[] = [];
afterEach(() => closeAll(opened));

describe('publish and consume', () => {
  it('delivers 500 messages in publish order, each acknowledged once', async () => {
    const transport = testTransport();
    const connection = await open(transport, {}, opened);
    const inbox = new Inbox<Delivery>();
    await connection.consume('inputs/d1/m1/in', { prefetch: 50 }, (delivery) => {
      inbox.push(delivery);
      delivery.ack();
    });
    const sent = Array.from({ length: 500 }, (_, i) => `m${i}`);
    await Promise.all(sent.map((body) => connection.publish('inputs/d1/m1/in', bytes(body))));
    const received = await inbox.count(500, 10_000);
    expect(received.map((d) => text(d.bytes))).toEqual(sent);
    expect(received.every((d) => d.redelivered === false)).toBe(true);
    expect(received[0]?.bytes).toBeInstanceOf(Uint8Array);
  });

  it('resolves publish only when the message is in the durable queue', async () => {
    const prefix = `p${Date.now().toString(36)}`;
    const transport = testTransport({ prefix });
    const connection = await open(transport, {}, opened);
    const raw = await rawConnection();
    try {
      for (let i = 1; i <= 3; i++) {
        await connection.publish('inputs/d1/m1/confirmed', bytes(`c${i}`));
        // No waiting: the confirm means the broker has routed (and persisted) it.
        expect(await readyCount(raw, `${prefix}.msg.inputs.d1.m1.confirmed`)).toBe(i);
      }
    } finally {
      await raw.close();
    }
  });

  it('stops deliveries on subscription close but still takes acks of those handed out', async () => {
    const prefix = uniquePrefix();
    const transport = testTransport({ prefix });
    const connection = await open(transport, {}, opened);
    const queue = `${prefix}.msg.inputs.d1.m1.acks`;
    const raw = await rawConnection();
    try {
      const inbox = new Inbox<Delivery>();
      const subscription = await connection.consume('inputs/d1/m1/acks', { prefetch: 5 }, inbox.push);
      await connection.publish('inputs/d1/m1/acks', bytes('a'));
      const first = await inbox.next();
      await subscription.close();
      await subscription.close(); // idempotent
      await connection.publish('inputs/d1/m1/acks', bytes('b'));
      // 'b' stays in the queue: the closed subscription gets nothing new.
      expect(await readyCount(raw, queue)).toBe(1);
      expect(inbox.items).toHaveLength(1);
      first.ack(); // the in-flight message is still acknowledged (a drain after close)
      first.ack(); // exactly once reaches the broker; a second call is ignored
      await connection.close();

      const next = await open(transport, {}, opened);
      const later = new Inbox<Delivery>();
      await next.consume('inputs/d1/m1/acks', { prefetch: 5 }, later.push);
      const only = await later.next();
      expect(text(only.bytes)).toBe('b');
      expect(only.redelivered).toBe(false);
      // Never acknowledged: it goes back when the connection ends, flagged redelivered.
      await next.close();
      const third = await open(transport, {}, opened);
      const again = new Inbox<Delivery>();
      await third.consume('inputs/d1/m1/acks', { prefetch: 5 }, again.push);
      const back = await again.next();
      expect([text(back.bytes), back.redelivered]).toEqual(['b', true]);
      back.ack();
      await until(async () => (await readyCount(raw, queue)) === 0, 5_000, 'an empty queue');
    } finally {
      await raw.close();
    }
  });

  it('with priorities on, delivers lower priority numbers first', async () => {
    const transport = testTransport({ priorities: true });
    const connection = await open(transport, {}, opened);
    const address = 'inputs/d1/m1/prio';
    for (const [body, priority] of [
      ['low', 9],
      ['high', 0],
      ['mid', 5],
    ] as const) {
      await connection.publish(address, bytes(body), { priority });
    }
    const inbox = new Inbox<Delivery>();
    await connection.consume(address, { prefetch: 1 }, (d) => {
      inbox.push(d);
      d.ack();
    });
    const received = await inbox.count(3);
    expect(received.map((d) => text(d.bytes))).toEqual(['high', 'mid', 'low']);
  });

  it('rejects bad arguments at the call', async () => {
    const connection = await open(testTransport(), {}, opened);
    expect(() => connection.publish('inputs/a.b/m/in', bytes('x'))).toThrow(RangeError);
    expect(() => connection.publish('inputs//m/in', bytes('x'))).toThrow(RangeError);
    expect(() => connection.publish('inputs/d/m/in', 'x' as unknown as Uint8Array)).toThrow(TypeError);
    expect(() => connection.publish('inputs/d/m/in', bytes('x'), { priority: 10 })).toThrow(RangeError);
    expect(() => connection.publish('inputs/d/m/in', bytes('x'), { ttlInMs: -1 })).toThrow(RangeError);
    expect(() => connection.consume('inputs/d/m/in', { prefetch: 0 }, () => undefined)).toThrow(RangeError);
  });
});
