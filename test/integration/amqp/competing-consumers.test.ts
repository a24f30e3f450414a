/** Several connections consuming one address share its stream: each message goes to exactly one of them. */
import { afterEach, expect, it } from 'vitest';
import type { TransportConnection } from '../../../src/transport.js';
import { bytes, closeAll, open, testTransport, text, uniquePrefix, until } from './support.js';

const opened: TransportConnection[] = [];
afterEach(() => closeAll(opened));

it('splits one stream between three replicas without duplicates or losses', async () => {
  const prefix = uniquePrefix();
  const transport = testTransport({ prefix });
  expect(transport.capabilities.sharedConsumers).toBe(true);
  const address = 'inputs/d1/scaled/in';
  const perReplica: string[][] = [[], [], []];
  for (const [replica, received] of perReplica.entries()) {
    const connection = await open(transport, { clientId: `scaled-${replica}` }, opened);
    await connection.consume(address, { prefetch: 1 }, (d) => {
      received.push(text(d.bytes) ?? '');
      // Ack on a later turn so the broker sees each replica busy and spreads the stream.
      setImmediate(() => d.ack());
    });
  }
  const producer = await open(transport, {}, opened);
  const sent = Array.from({ length: 300 }, (_, i) => `m${i}`);
  await Promise.all(sent.map((body) => producer.publish(address, bytes(body))));
  await until(() => perReplica.flat().length >= 300, 10_000, '300 deliveries');
  expect(perReplica.flat().sort()).toEqual([...sent].sort());
  for (const received of perReplica) expect(received.length).toBeGreaterThan(0);
  // Each replica still sees its share in publish order.
  for (const received of perReplica) {
    const indexes = received.map((body) => Number(body.slice(1)));
    expect(indexes).toEqual([...indexes].sort((a, b) => a - b));
  }
});
