/**
 * A Mosquitto restart (persistence on) in the middle of a 5,000-message stream, at the transport level: producer and
 * consumer reconnect with their client ids the way the core does, the producer republishes what was not PUBACKed,
 * and every message arrives — duplicates allowed (at-least-once) and counted, none lost.
 */
import { describe, expect, it } from 'vitest';
import type { Transport, TransportConnection } from '../../../src/transport.js';
import { transportFor, unique, useMosquitto } from './support/fixtures.js';
import { signal, withTimeout } from './support/wait.js';

const broker = useMosquitto({ persistence: true });
const TOTAL = 5_000;

/** Connects with `clientId`, retrying every 50 ms until `deadline` (the core's reconnect, simplified). */
async function connectRetrying(transport: Transport, clientId: string, deadline: number): Promise<TransportConnection> {
  for (;;) {
    try {
      return await transport.connect({ clientId, timeoutInMs: 2_000 });
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
}

describe('broker restart during a stream', () => {
  it(`delivers all ${TOTAL} messages across a restart, counting duplicates`, { timeout: 60_000 }, async () => {
    const transport = transportFor(broker().url);
    const device = unique('dev');
    const address = `inputs/${device}/sink/in`;
    const deadline = Date.now() + 60_000;
    const seen = new Map<number, number>();
    const halfway = signal();
    const complete = signal();
    let stopped = false;
    let consumerReconnects = 0;
    let producerReconnects = 0;

    // Consumer: consume, ack after "handling", and on a lost connection reconnect and consume again.
    const consumerId = `${device}/sink`;
    let current: TransportConnection | undefined;
    const runConsumer = async () => {
      let first = true;
      while (!stopped) {
        const connection = await connectRetrying(transport, consumerId, deadline);
        current = connection;
        if (!first) consumerReconnects += 1;
        first = false;
        await connection.consume(address, { prefetch: 10 }, (delivery) => {
          const n = Number(new TextDecoder().decode(delivery.bytes));
          seen.set(n, (seen.get(n) ?? 0) + 1);
          delivery.ack();
          if (seen.size === TOTAL / 2) halfway.resolve();
          if (seen.size === TOTAL) complete.resolve();
        });
        const cause = await connection.closed;
        if (cause === undefined) return;
      }
    };
    const consumer = runConsumer();

    // Producer: publish in order; a publish that fails is repeated on a new connection.
    const producerId = `${device}/producer`;
    let producer = await connectRetrying(transport, producerId, deadline);
    const restarted = halfway.promise.then(() => broker().restart());
    for (let n = 0; n < TOTAL; n++) {
      for (;;) {
        try {
          await producer.publish(address, new TextEncoder().encode(String(n)));
          break;
        } catch {
          producer = await connectRetrying(transport, producerId, deadline);
          producerReconnects += 1;
        }
      }
    }
    await restarted;
    const missingNow = () => Array.from({ length: TOTAL }, (_, n) => n).filter((n) => !seen.has(n));
    await withTimeout(complete.promise, 15_000, 'all messages').catch((error: unknown) => {
      throw new Error(`${(error as Error).message}; missing: ${missingNow().slice(0, 20).join(', ')}`);
    });
    stopped = true;
    await producer.close();
    await current?.close();
    await consumer;

    const missing = missingNow();
    const duplicates = [...seen.values()].reduce((sum, count) => sum + count - 1, 0);
    console.info(
      `broker restart: ${TOTAL} sent, ${seen.size} distinct received, ${duplicates} duplicates, ` +
        `${consumerReconnects} consumer and ${producerReconnects} producer reconnects`,
    );
    expect(missing).toEqual([]);
    expect(consumerReconnects).toBeGreaterThanOrEqual(1);
  });
});
