/**
 * Each identity's own exchange, beyond the conformance suite: a connection publishes messages through
 * `<prefix>.from.<device>.<module>` (`<prefix>.anonymous` without an identity), and receivers and observers read the
 * publisher from the exchange RabbitMQ says the message was published to; a queue deleted behind the transport's back
 * is still detected (mandatory) and declared again; a queue declared by an earlier version is bound on first use; a
 * hashed queue name is never reported as an address; a hashed exchange name proves its identity through a header
 * that must hash to it; nothing else names a publisher.
 */
import { afterEach, expect, it } from 'vitest';
import type { Delivery, TransportConnection } from '../../../src/transport.js';
import { startTcpProxy, type TcpProxy } from '../support/tcp-proxy.js';
import {
  bytes,
  closeAll,
  Inbox,
  open,
  rawConnection,
  readyCount,
  sharedRabbitMQ,
  testTransport,
  text,
  uniquePrefix,
} from './support.js';

const opened: TransportConnection[] = [];
let proxy: TcpProxy | undefined;
afterEach(async () => {
  await closeAll(opened);
  await proxy?.close();
  proxy = undefined;
});

const observed = () => {
  const inbox = new Inbox<string>();
  return {
    inbox,
    onMessage: (address: string, body: Uint8Array, publisher?: string) =>
      inbox.push(`${address} ${text(body)} ${publisher ?? '-'}`),
  };
};

async function deliveries(connection: TransportConnection, address: string): Promise<Inbox<Delivery>> {
  const inbox = new Inbox<Delivery>();
  await connection.consume(address, { prefetch: 10 }, (delivery) => {
    inbox.push(delivery);
    delivery.ack();
  });
  return inbox;
}

it("publishes through the identity's exchange: a deleted queue is declared again and gets the message", async () => {
  const prefix = uniquePrefix();
  const sender = await open(testTransport({ prefix }), { identity: 'd1/sensor' }, opened);
  const raw = await rawConnection();
  try {
    await sender.publish('inputs/d1/m/in', bytes('m1'));
    const queue = `${prefix}.msg.inputs.d1.m.in`;
    expect(await readyCount(raw, queue)).toBe(1);
    const channel = await raw.createChannel();
    await channel.deleteQueue(queue);
    // Returned as unroutable (no binding left), declared and bound again, published once more.
    await sender.publish('inputs/d1/m/in', bytes('m2'));
    expect(await readyCount(raw, queue)).toBe(1);
    const got = await channel.get(queue, { noAck: true });
    expect(got === false ? undefined : got.content.toString()).toBe('m2');
    expect(got === false ? undefined : got.fields.exchange).toBe(`${prefix}.from.d1.sensor`);
    await channel.close();
  } finally {
    await raw.close();
  }
});

it('receivers and observers learn the publisher; without an identity, and through other exchanges, there is none', async () => {
  const prefix = uniquePrefix();
  const watcher = await open(testTransport({ prefix }), {}, opened);
  const seen = observed();
  await watcher.observe('inputs/d1/*/in', seen.onMessage);
  const receiver = await open(testTransport({ prefix }), { identity: 'd1/m' }, opened);
  const inbox = await deliveries(receiver, 'inputs/d1/m/in');
  const sensor = await open(testTransport({ prefix }), { identity: 'd1/sensor' }, opened);
  const operator = await open(testTransport({ prefix }), { identity: '$operator/alice' }, opened);
  const anonymous = await open(testTransport({ prefix }), {}, opened);
  await sensor.publish('inputs/d1/m/in', bytes('a'));
  await operator.publish('inputs/d1/m/in', bytes('b'));
  await anonymous.publish('inputs/d1/m/in', bytes('c'));
  const raw = await rawConnection();
  try {
    // Straight into the queue (default exchange), and through the exchange of an earlier version: no publisher,
    // whatever a header claims.
    const channel = await raw.createConfirmChannel();
    const queue = `${prefix}.msg.inputs.d1.m.in`;
    channel.sendToQueue(queue, Buffer.from('d'), { headers: { 'x-edgekit-publisher': 'd1/sensor' } });
    await channel.assertExchange(`${prefix}.messages`, 'direct', { durable: true });
    await channel.bindQueue(queue, `${prefix}.messages`, queue);
    channel.publish(`${prefix}.messages`, queue, Buffer.from('e'));
    await channel.waitForConfirms();
    await channel.close();
  } finally {
    await raw.close();
  }
  const got = (await inbox.count(5)).map((d) => `${text(d.bytes)} ${d.publisher ?? '-'}`);
  expect(got).toEqual(['a d1/sensor', 'b $operator/alice', 'c -', 'd -', 'e -']);
  expect(await seen.inbox.next()).toBe('inputs/d1/m/in a d1/sensor');
  expect(await seen.inbox.next()).toBe('inputs/d1/m/in b $operator/alice');
  expect(await seen.inbox.next()).toBe('inputs/d1/m/in c -');
});

it('an identity too long for a plain exchange name: the hashed exchange and the header that hashes to it name it', async () => {
  const prefix = uniquePrefix();
  const long = `${'d'.repeat(128)}/${'m'.repeat(128)}`;
  const receiver = await open(testTransport({ prefix }), {}, opened);
  const inbox = await deliveries(receiver, 'inputs/d1/m/in');
  const sender = await open(testTransport({ prefix }), { identity: long }, opened);
  await sender.publish('inputs/d1/m/in', bytes('long'));
  const [delivery] = await inbox.count(1);
  expect(delivery?.publisher).toBe(long);
  // The same header on another hashed exchange proves nothing.
  const impostor = `${'d'.repeat(128)}/${'x'.repeat(128)}`;
  const raw = await rawConnection();
  try {
    const channel = await raw.createConfirmChannel();
    const exchange = `${prefix}.from.=${'0'.repeat(64)}`;
    await channel.assertExchange(exchange, 'direct', { durable: false, autoDelete: true });
    const queue = `${prefix}.msg.inputs.d1.m.in`;
    await channel.bindQueue(queue, exchange, queue);
    channel.publish(exchange, queue, Buffer.from('forged'), { headers: { 'x-edgekit-publisher': impostor } });
    await channel.waitForConfirms();
    await channel.close();
  } finally {
    await raw.close();
  }
  const [, forged] = await inbox.count(2);
  expect(text(forged?.bytes)).toBe('forged');
  expect(forged?.publisher).toBeUndefined();
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
  const sender = await open(testTransport({ prefix }), { identity: 'd1/sensor' }, opened);
  await sender.publish('inputs/d1/m/in', bytes('new'));
  const receiver = await open(testTransport({ prefix }), {}, opened);
  const inbox = await deliveries(receiver, 'inputs/d1/m/in');
  expect((await inbox.count(2)).map((delivery) => text(delivery.bytes))).toEqual(['old', 'new']);
  expect(await seen.inbox.next()).toBe('inputs/d1/m/in new d1/sensor');
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
  expect(await two.inbox.next()).toBe('inputs/marker marker -');
  expect(await four.inbox.next()).toBe('inputs/d1/m/marker marker -');
  await expect(watcher.observe(`inputs/${'x'.repeat(300)}`, () => undefined)).rejects.toThrow(RangeError);
});

it('replaces a will queue of an earlier version (which dead-lettered to the retained exchange)', async () => {
  const prefix = uniquePrefix();
  const raw = await rawConnection();
  const willQueue = `${prefix}.will.d1/m`;
  try {
    const channel = await raw.createChannel();
    await channel.assertExchange(`${prefix}.retained`, 'topic', { durable: true });
    await channel.assertQueue(willQueue, {
      durable: true,
      arguments: {
        'x-dead-letter-exchange': `${prefix}.retained`,
        'x-dead-letter-routing-key': `${prefix}.retained.presence.d1.m`,
        'x-expires': 3_600_000,
      },
    });
    await channel.close();
  } finally {
    await raw.close();
  }
  proxy = await startTcpProxy(sharedRabbitMQ().port);
  await open(
    testTransport({ prefix, url: `amqp://guest:guest@127.0.0.1:${proxy.port}` }),
    { clientId: 'd1/m', identity: 'd1/m', will: { key: 'presence/d1/m', value: bytes('gone') } },
    opened,
  );
  const watcher = await open(testTransport({ prefix }), {}, opened);
  const values = new Inbox<string | undefined>();
  await watcher.watchRetained('presence/d1/m', (value) => values.push(text(value)));
  expect(await values.next()).toBeUndefined();
  // The will reaches the key through the connection's own exchange.
  proxy.cut();
  expect(await values.next(10_000, 'the will')).toBe('gone');
});
