/**
 * Queues on a real Mosquitto: publish/consume order, the prefetch bound, PUBACK only after the core's ack (so an
 * unacked message comes back after an abrupt cut), and inputs that wait in the persistent session while a module is
 * offline.
 */
import * as realMqtt from 'mqtt';
import { describe, expect, it } from 'vitest';
import { isEdgeKitError } from '../../../src/errors.js';
import type { Delivery, TransportConnection } from '../../../src/transport.js';
import { text, transportFor, unique, useConnections, useMosquitto, useProxies, utf8 } from './support/fixtures.js';
import { Inbox, withTimeout } from './support/wait.js';

const broker = useMosquitto();
const connections = useConnections();
const proxies = useProxies();

/**
 * Resolves once every message the broker had queued for `connection` before this call has reached it: a retained
 * read waits for a sentinel that travels behind them.
 */
async function drained(connection: TransportConnection): Promise<void> {
  await connection.getRetained(`barrier/${unique('b')}`);
}

function names() {
  const device = unique('dev');
  return { device, address: `inputs/${device}/mod/in1`, clientId: `${device}/mod` };
}

describe('publish and consume', () => {
  it('delivers messages in publish order', async () => {
    const { address, clientId } = names();
    const transport = transportFor(broker().url);
    const consumer = await connections.open(transport, { clientId });
    const producer = await connections.open(transport, { clientId: `${clientId}-producer` });
    const inbox = new Inbox<string>();
    await consumer.consume(address, { prefetch: 1 }, (delivery) => {
      inbox.push(text(delivery.bytes)!);
      delivery.ack();
    });
    const sent = Array.from({ length: 200 }, (_, i) => `m${i}`);
    await Promise.all(sent.map((body) => producer.publish(address, utf8(body))));
    expect(await inbox.take(200, 10_000)).toEqual(sent);
  });

  it('hands out at most `prefetch` unacknowledged deliveries', async () => {
    const { address, clientId } = names();
    const transport = transportFor(broker().url);
    const consumer = await connections.open(transport, { clientId });
    const producer = await connections.open(transport, { clientId: `${clientId}-producer` });
    const inbox = new Inbox<Delivery>();
    let autoAck = false;
    await consumer.consume(address, { prefetch: 3 }, (delivery) => {
      inbox.push(delivery);
      if (autoAck) delivery.ack();
    });
    for (let i = 0; i < 10; i++) await producer.publish(address, utf8(`m${i}`));
    await drained(consumer); // all ten are now on the consumer's side
    expect(inbox.items.map((d) => text(d.bytes))).toEqual(['m0', 'm1', 'm2']);

    inbox.items[1]!.ack();
    await inbox.take(4, 5_000);
    await drained(consumer);
    expect(inbox.items.map((d) => text(d.bytes))).toEqual(['m0', 'm1', 'm2', 'm3']);
    autoAck = true;
    for (const delivery of inbox.items) delivery.ack();
    const all = await inbox.take(10, 5_000);
    expect(all.map((d) => text(d.bytes))).toEqual(Array.from({ length: 10 }, (_, i) => `m${i}`));
    expect(all.every((d) => !d.redelivered)).toBe(true);
  });

  it('redelivers an unacknowledged message after an abrupt cut and a reconnect with the same client id', async () => {
    const { address, clientId } = names();
    const proxy = await proxies.start(broker().port);
    const viaProxy = transportFor(`mqtt://127.0.0.1:${proxy.port}`);
    const direct = transportFor(broker().url);
    const producer = await connections.open(direct, { clientId: `${clientId}-producer` });

    const first = await connections.open(viaProxy, { clientId });
    const firstInbox = new Inbox<Delivery>();
    await first.consume(address, { prefetch: 1 }, firstInbox.push); // the handler never finishes: no ack
    await producer.publish(address, utf8('a'));
    await producer.publish(address, utf8('b'));
    expect(text((await firstInbox.take(1, 5_000))[0]!.bytes)).toBe('a');
    // Whatever the consumer sent so far (a premature PUBACK would be a bug) has reached the broker before the cut.
    await drained(first);

    proxy.cut();
    const cause = await withTimeout(first.closed, 5_000, 'the cut to be noticed');
    expect(isEdgeKitError(cause, 'connection-lost')).toBe(true);
    firstInbox.items[0]!.ack(); // too late: the connection that received it is gone

    const second = await connections.open(direct, { clientId });
    const secondInbox = new Inbox<Delivery>();
    await second.consume(address, { prefetch: 1 }, (delivery) => {
      secondInbox.push(delivery);
      delivery.ack();
    });
    const again = await secondInbox.take(2, 5_000);
    expect(again.map((d) => text(d.bytes))).toEqual(['a', 'b']);
    expect(again[0]!.redelivered).toBe(true);

    // Acked on the second connection: a third connection gets only what is new.
    await second.close();
    await producer.publish(address, utf8('c'));
    const third = await connections.open(direct, { clientId });
    const thirdInbox = new Inbox<string>();
    await third.consume(address, { prefetch: 1 }, (delivery) => {
      thirdInbox.push(text(delivery.bytes)!);
      delivery.ack();
    });
    await thirdInbox.take(1, 5_000);
    await drained(third);
    expect(thirdInbox.items).toEqual(['c']);
  });

  it('keeps inputs in the session while the module is offline and delivers them on return', async () => {
    const { address, clientId } = names();
    const transport = transportFor(broker().url);
    const module = await connections.open(transport, { clientId });
    await module.consume(address, { prefetch: 1 }, (delivery) => delivery.ack());
    await module.close();

    const producer = await connections.open(transport, { clientId: `${clientId}-producer` });
    const sent = Array.from({ length: 50 }, (_, i) => `offline-${i}`);
    for (const body of sent) await producer.publish(address, utf8(body));

    const back = await connections.open(transport, { clientId });
    // The resumed session delivers before consume() is called again: the transport must hold them, unacked.
    await drained(back);
    const inbox = new Inbox<Delivery>();
    await back.consume(address, { prefetch: 5 }, (delivery) => {
      inbox.push(delivery);
      delivery.ack();
    });
    const got = await inbox.take(50, 10_000);
    expect(got.map((d) => text(d.bytes))).toEqual(sent);
    expect(got.some((d) => d.redelivered)).toBe(false);
  });

  it('keeps messages that arrived for a closed consumer for the next consumer of the address', async () => {
    const { address, clientId } = names();
    const transport = transportFor(broker().url);
    const consumer = await connections.open(transport, { clientId });
    const producer = await connections.open(transport, { clientId: `${clientId}-producer` });
    const early = new Inbox<string>();
    const subscription = await consumer.consume(address, { prefetch: 10 }, (d) => {
      early.push(text(d.bytes)!);
      d.ack();
    });
    await subscription.close();
    await subscription.close(); // idempotent
    for (let i = 0; i < 3; i++) await producer.publish(address, utf8(`late-${i}`));
    await drained(consumer);
    expect(early.items).toEqual([]);

    const late = new Inbox<string>();
    await consumer.consume(address, { prefetch: 10 }, (d) => {
      late.push(text(d.bytes)!);
      d.ack();
    });
    expect(await late.take(3, 5_000)).toEqual(['late-0', 'late-1', 'late-2']);
  });

  it('does not keep messages for an address nobody ever consumed (keepsMessagesBeforeFirstConsumer: false)', async () => {
    const { address, clientId } = names();
    const transport = transportFor(broker().url);
    expect(transport.capabilities.keepsMessagesBeforeFirstConsumer).toBe(false);
    const producer = await connections.open(transport, { clientId: `${clientId}-producer` });
    await producer.publish(address, utf8('before'));
    const consumer = await connections.open(transport, { clientId });
    const inbox = new Inbox<string>();
    await consumer.consume(address, { prefetch: 1 }, (d) => {
      inbox.push(text(d.bytes)!);
      d.ack();
    });
    await producer.publish(address, utf8('after'));
    await inbox.take(1, 5_000);
    await drained(consumer);
    expect(inbox.items).toEqual(['after']);
  });

  it('drops a message whose ttl passed while the consumer was offline, to the millisecond rather than the second', async () => {
    const { address, clientId } = names();
    const transport = transportFor(broker().url);
    const module = await connections.open(transport, { clientId });
    await module.consume(address, { prefetch: 1 }, (d) => d.ack());
    await module.close();
    const producer = await connections.open(transport, { clientId: `${clientId}-producer` });
    // Just after a wall-clock second begins: Mosquitto alone (whole seconds) would keep a 1 s message for ~1.95 s.
    await new Promise((resolve) => setTimeout(resolve, (1_050 - (Date.now() % 1_000)) % 1_000));
    await producer.publish(address, utf8('short-lived'), { ttlInMs: 1_000 });
    await producer.publish(address, utf8('kept'), { ttlInMs: 60_000 });
    // The expiry is what is under test, so time has to pass.
    await new Promise((resolve) => setTimeout(resolve, 1_300));
    const back = await connections.open(transport, { clientId });
    const inbox = new Inbox<string>();
    await back.consume(address, { prefetch: 1 }, (d) => {
      inbox.push(text(d.bytes)!);
      d.ack();
    });
    await inbox.take(1, 5_000);
    await drained(back);
    expect(inbox.items).toEqual(['kept']);
  });

  it('never drops a message early because of a publisher clock that is ahead', async () => {
    const { address, clientId } = names();
    const transport = transportFor(broker().url);
    const consumer = await connections.open(transport, { clientId });
    const inbox = new Inbox<string>();
    await consumer.consume(address, { prefetch: 1 }, (d) => {
      inbox.push(text(d.bytes)!);
      d.ack();
    });
    // A raw publisher whose deadline claims the message is long expired, while the broker gives it a minute.
    const raw = await realMqtt.connectAsync(broker().url, { protocolVersion: 5, clientId: unique('raw') });
    try {
      await raw.publishAsync(`edgekit/v1/${address}`, Buffer.from('skewed'), {
        qos: 1,
        properties: {
          messageExpiryInterval: 60,
          userProperties: { 'edgekit-expires-at': String(Date.now() - 3_600_000) },
        },
      });
    } finally {
      await raw.endAsync();
    }
    expect(await inbox.take(1, 5_000)).toEqual(['skewed']);
  });

  it('rejects bad arguments with TypeError/RangeError', async () => {
    const { address, clientId } = names();
    const connection = await connections.open(transportFor(broker().url), { clientId });
    await expect(connection.publish('inputs/+/x', utf8('x'))).rejects.toThrow(RangeError);
    await expect(connection.publish('inputs//x', utf8('x'))).rejects.toThrow(RangeError);
    await expect(connection.publish(address, 'text' as unknown as Uint8Array)).rejects.toThrow(TypeError);
    await expect(connection.publish(address, utf8('x'), { ttlInMs: 0 })).rejects.toThrow(RangeError);
    await expect(connection.publish(address, utf8('x'), { priority: 10 })).rejects.toThrow(RangeError);
    await expect(connection.consume(address, { prefetch: 0 }, () => {})).rejects.toThrow(RangeError);
    await expect(connection.consume('#', { prefetch: 1 }, () => {})).rejects.toThrow(RangeError);
  });
});
