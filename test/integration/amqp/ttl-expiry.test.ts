/** `ttlInMs` becomes the message's AMQP expiration: the broker drops it if nobody took it in time. */
import { afterEach, expect, it } from 'vitest';
import type { Delivery, TransportConnection } from '../../../src/transport.js';
import { bytes, closeAll, Inbox, open, rawConnection, readyCount, testTransport, text, until } from './support.js';

const opened: TransportConnection[] = [];
afterEach(() => closeAll(opened));

it('drops an expired message and keeps the others', async () => {
  const prefix = `ttl${Date.now().toString(36)}`;
  const connection = await open(testTransport({ prefix }), {}, opened);
  const address = 'inputs/d1/m1/ttl';
  await connection.publish(address, bytes('short'), { ttlInMs: 100 });
  await connection.publish(address, bytes('forever'));
  await connection.publish(address, bytes('long'), { ttlInMs: 600_000 });
  const raw = await rawConnection();
  try {
    // RabbitMQ expires the head message on a timer: wait for the broker to have dropped it.
    await until(async () => (await readyCount(raw, `${prefix}.msg.inputs.d1.m1.ttl`)) === 2, 5_000, 'expiry');
  } finally {
    await raw.close();
  }
  const inbox = new Inbox<Delivery>();
  await connection.consume(address, { prefetch: 10 }, (d) => {
    inbox.push(d);
    d.ack();
  });
  expect((await inbox.count(2)).map((d) => text(d.bytes))).toEqual(['forever', 'long']);
});
