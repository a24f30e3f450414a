/**
 * An abrupt cut (TCP reset, no AMQP close) loses the connection: `closed` resolves with `connection-lost`, pending and
 * later operations reject, and unacknowledged deliveries come again — flagged `redelivered` — to the next consumer.
 */
import { afterEach, expect, it } from 'vitest';
import { isEdgeKitError } from '../../../src/errors.js';
import type { Delivery, TransportConnection } from '../../../src/transport.js';
import { startTcpProxy, type TcpProxy } from '../support/tcp-proxy.js';
import { bytes, closeAll, Inbox, open, sharedRabbitMQ, testTransport, text, uniquePrefix, within } from './support.js';

const opened: TransportConnection[] = [];
let proxy: TcpProxy | undefined;
afterEach(async () => {
  await closeAll(opened);
  await proxy?.close();
});

it('redelivers unacknowledged messages with the redelivered flag after a cut', async () => {
  proxy = await startTcpProxy(sharedRabbitMQ().port);
  const prefix = uniquePrefix();
  const viaProxy = testTransport({ prefix, url: `amqp://guest:guest@127.0.0.1:${proxy.port}` });
  const direct = testTransport({ prefix });
  const address = 'inputs/d1/m1/cut';

  const producer = await open(direct, {}, opened);
  for (let i = 0; i < 5; i++) await producer.publish(address, bytes(`m${i}`));

  const victim = await open(viaProxy, {}, opened);
  const first = new Inbox<Delivery>();
  await victim.consume(address, { prefetch: 4 }, first.push);
  const held = await first.count(4);
  // Acks are asynchronous: m4 arriving (prefetch 4) proves the broker has taken m0's ack. m1..m4 stay unacked.
  held[0]?.ack();
  await first.count(5);

  proxy.cut();
  const cause = await within(victim.closed, 5_000, 'closed after the cut');
  expect(isEdgeKitError(cause, 'connection-lost')).toBe(true);
  held[1]?.ack(); // too late: ignored, never a throw
  await expect(victim.publish(address, bytes('late'))).rejects.toSatisfy((e) => isEdgeKitError(e, 'connection-lost'));
  await expect(victim.getRetained('presence/d1/m1')).rejects.toSatisfy((e) => isEdgeKitError(e, 'connection-lost'));

  const successor = await open(direct, {}, opened);
  const second = new Inbox<Delivery>();
  await successor.consume(address, { prefetch: 10 }, (d) => {
    second.push(d);
    d.ack();
  });
  const again = await second.count(4);
  expect(again.map((d) => text(d.bytes))).toEqual(['m1', 'm2', 'm3', 'm4']);
  expect(again.every((d) => d.redelivered)).toBe(true);
});

it('rejects an operation in flight when the connection is cut', async () => {
  proxy = await startTcpProxy(sharedRabbitMQ().port);
  const transport = testTransport({ url: `amqp://guest:guest@127.0.0.1:${proxy.port}` });
  const victim = await open(transport, {}, opened);
  await victim.serve('methods/d1/slow', () => new Promise<Uint8Array>(() => undefined));
  const pending = victim.request('methods/d1/slow', bytes('?'), { timeoutInMs: 30_000 });
  proxy.cut();
  await expect(within(pending, 5_000, 'the request to fail')).rejects.toSatisfy((e) =>
    isEdgeKitError(e, 'connection-lost'),
  );
});
