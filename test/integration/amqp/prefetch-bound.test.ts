/** A consumer never holds more than `prefetch` unacknowledged deliveries; each ack lets exactly one more in. */
import { afterEach, expect, it } from 'vitest';
import type { Delivery, TransportConnection } from '../../../src/transport.js';
import { bytes, closeAll, Inbox, open, rawConnection, readyCount, testTransport, text, until } from './support.js';

const opened: TransportConnection[] = [];
afterEach(() => closeAll(opened));

it('hands out at most prefetch messages until they are acknowledged', async () => {
  const prefix = `pf${Date.now().toString(36)}`;
  const connection = await open(testTransport({ prefix }), {}, opened);
  const queue = `${prefix}.msg.inputs.d1.m1.bounded`;
  const raw = await rawConnection();
  try {
    for (let i = 0; i < 10; i++) await connection.publish('inputs/d1/m1/bounded', bytes(`m${i}`));
    const inbox = new Inbox<Delivery>();
    await connection.consume('inputs/d1/m1/bounded', { prefetch: 3 }, inbox.push);
    await inbox.count(3);
    // The broker keeps the other 7: three are out, none more.
    await until(async () => (await readyCount(raw, queue)) === 7, 5_000, '7 ready messages');
    expect(inbox.items).toHaveLength(3);

    inbox.items[0]?.ack();
    await inbox.count(4);
    await until(async () => (await readyCount(raw, queue)) === 6, 5_000, '6 ready messages');
    expect(inbox.items).toHaveLength(4);
    expect(inbox.items.map((d) => text(d.bytes))).toEqual(['m0', 'm1', 'm2', 'm3']);
  } finally {
    await raw.close();
  }
});
