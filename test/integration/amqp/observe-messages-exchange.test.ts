/**
 * Observing on RabbitMQ, beyond the conformance suite: messages go through the direct exchange `<prefix>.messages`
 * (routing key = queue name), which copies them to the topic exchange `<prefix>.observe`; a queue deleted behind the
 * transport's back is still detected (mandatory) and declared again; a queue declared by an earlier version, without
 * the bindings, is bound on first use; a hashed queue name is never reported as an address.
 */
import { afterEach, expect, it } from 'vitest';
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
} from './support.js';

const opened: TransportConnection[] = [];
afterEach(() => closeAll(opened));

const observed = () => {
  const inbox = new Inbox<string>();
  return { inbox, onMessage: (address: string, body: Uint8Array) => inbox.push(`${address} ${text(body)}`) };
};

it('publishes through <prefix>.messages: a deleted queue is declared again and gets the message', async () => {
  const prefix = uniquePrefix();
  const sender = await open(testTransport({ prefix }), {}, opened);
  const raw = await rawConnection();
  try {
    await sender.publish('inputs/d1/m/in', bytes('m1'));
    const queue = `${prefix}.msg.inputs.d1.m.in`;
    expect(await readyCount(raw, queue)).toBe(1);
    const channel = await raw.createChannel();
    await channel.deleteQueue(queue);
    // Returned as unroutable (no binding left), declared again, published once more.
    await sender.publish('inputs/d1/m/in', bytes('m2'));
    expect(await readyCount(raw, queue)).toBe(1);
    const got = await channel.get(queue, { noAck: true });
    expect(got === false ? undefined : got.content.toString()).toBe('m2');
    expect(got === false ? undefined : got.fields.exchange).toBe(`${prefix}.messages`);
    await channel.close();
  } finally {
    await raw.close();
  }
});

it('binds a queue declared by an earlier version (no bindings) on first use, and observes its messages', async () => {
  const prefix = uniquePrefix();
  const queue = `${prefix}.msg.inputs.d1.m.in`;
  const raw = await rawConnection();
  try {
    const channel = await raw.createChannel();
    await channel.assertQueue(queue, { durable: true });
    channel.sendToQueue(queue, Buffer.from('old'), { persistent: true });
    await channel.close();
  } finally {
    await raw.close();
  }
  const watcher = await open(testTransport({ prefix }), {}, opened);
  const seen = observed();
  await watcher.observe('inputs/d1/*/in', seen.onMessage);
  const sender = await open(testTransport({ prefix }), {}, opened);
  await sender.publish('inputs/d1/m/in', bytes('new'));
  const receiver = await open(testTransport({ prefix }), {}, opened);
  const inbox = new Inbox<Delivery>();
  await receiver.consume('inputs/d1/m/in', { prefetch: 5 }, (delivery) => {
    inbox.push(delivery);
    delivery.ack();
  });
  expect((await inbox.count(2)).map((delivery) => text(delivery.bytes))).toEqual(['old', 'new']);
  expect(await seen.inbox.next()).toBe('inputs/d1/m/in new');
});

it('never reports a hashed queue name (an address over 255 bytes) as an address', async () => {
  const prefix = uniquePrefix();
  const watcher = await open(testTransport({ prefix }), {}, opened);
  const two = observed();
  const four = observed();
  // A hashed name is `<prefix>.msg.inputs.=<sha-256>`: two words after `msg`, so `inputs/*` matches its routing key.
  await watcher.observe('inputs/*', two.onMessage);
  await watcher.observe('inputs/*/*/*', four.onMessage);
  const sender = await open(testTransport({ prefix }), {}, opened);
  const long = `inputs/d1/${'m'.repeat(120)}/${'i'.repeat(120)}`;
  await sender.publish(long, bytes('long'));
  await sender.publish('inputs/marker', bytes('marker'));
  await sender.publish('inputs/d1/m/marker', bytes('marker'));
  // One publishing channel, one observer queue per pattern: the long one would have come before the markers.
  expect(await two.inbox.next()).toBe('inputs/marker marker');
  expect(await four.inbox.next()).toBe('inputs/d1/m/marker marker');
  await expect(watcher.observe(`inputs/${'x'.repeat(300)}`, () => undefined)).rejects.toThrow(RangeError);
});
