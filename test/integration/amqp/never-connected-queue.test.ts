/** Messages routed to a module that has never connected wait in its durable queue until it comes. */
import { afterEach, expect, it } from 'vitest';
import type { Delivery, TransportConnection } from '../../../src/transport.js';
import { bytes, closeAll, Inbox, open, testTransport, text, uniquePrefix } from './support.js';

const opened: TransportConnection[] = [];
afterEach(() => closeAll(opened));

it('keeps messages for a queue that never had a consumer', async () => {
  const prefix = uniquePrefix();
  const sender = await open(testTransport({ prefix }), {}, opened);
  expect(testTransport().capabilities.keepsMessagesBeforeFirstConsumer).toBe(true);
  for (let i = 0; i < 20; i++) await sender.publish('inputs/d1/latecomer/in', bytes(`m${i}`));
  await sender.close();

  const latecomer = await open(testTransport({ prefix }), { clientId: 'latecomer' }, opened);
  const inbox = new Inbox<Delivery>();
  await latecomer.consume('inputs/d1/latecomer/in', { prefetch: 5 }, (d) => {
    inbox.push(d);
    d.ack();
  });
  const received = await inbox.count(20);
  expect(received.map((d) => text(d.bytes))).toEqual(Array.from({ length: 20 }, (_, i) => `m${i}`));
  expect(received.some((d) => d.redelivered)).toBe(false);
});
