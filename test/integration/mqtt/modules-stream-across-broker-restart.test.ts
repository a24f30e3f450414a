/**
 * A 5,000-message stream from a sender module to a receiver module through a deployed route, on a real Mosquitto
 * with persistence, with the broker stopped and started again in the middle: both modules reconnect by themselves
 * (core backoff), sends caught by the restart wait in the sender's offline queue and go out again, the receiver's
 * unacknowledged inputs come back from its persistent session — so all 5,000 are processed and none is lost. The
 * duplicates that at-least-once allows are counted by messageId and printed.
 */
import { describe, expect, it } from 'vitest';
import { defineModule, json } from '../../../src/index.js';
import { deployRoutes } from '../../../src/service/operations.js';
import { useModules } from './fixtures/module-clients.js';
import { transportFor, unique, useConnections, useMosquitto } from './support/fixtures.js';
import { signal, withTimeout } from './support/wait.js';

const broker = useMosquitto({ persistence: true });
const connections = useConnections();
const modules = useModules();
const TOTAL = 5_000;
/** Sends in flight at once, as a sensor flushing a backlog would have. */
const WINDOW = 100;

const Sender = defineModule({ outputs: { out: json<{ n: number }>() } });
const Receiver = defineModule({ inputs: { in: json<{ n: number }>() } });

describe('a module stream across a broker restart', () => {
  it(`processes all ${TOTAL} messages, none lost, and counts the duplicates`, { timeout: 60_000 }, async () => {
    const deviceId = unique('dev');
    const url = broker().url;
    const operator = await connections.open(transportFor(url), { clientId: `${deviceId}/operator` });
    await deployRoutes(operator, deviceId, {
      stream: 'FROM /messages/modules/sender/outputs/out INTO BrokeredEndpoint("/modules/receiver/inputs/in")',
    });
    await operator.close();

    const offlineQueue = { maxMessages: TOTAL };
    const receiver = await modules.connect(Receiver, { deviceId, moduleId: 'receiver', transport: transportFor(url) });
    const sender = await modules.connect(Sender, {
      deviceId,
      moduleId: 'sender',
      transport: transportFor(url),
      offlineQueue,
    });

    const handled = new Map<string, number>(); // messageId → handler runs
    const numbers = new Set<number>();
    const complete = signal();
    await receiver.client.onInput('in', (message) => {
      handled.set(message.messageId, (handled.get(message.messageId) ?? 0) + 1);
      numbers.add(message.body.n);
      if (handled.size === TOTAL) complete.resolve();
    });

    const halfway = signal();
    const failures: unknown[] = [];
    let acknowledged = 0;
    const restarted = halfway.promise.then(() => broker().restart());
    const inFlight = new Set<Promise<void>>();
    for (let n = 0; n < TOTAL; n++) {
      const sent: Promise<void> = sender.client.send('out', { n }).then(
        (result) => {
          if (result.destinations !== 1) failures.push(new Error(`message ${n} went to ${result.destinations}`));
          acknowledged += 1;
          if (acknowledged === TOTAL / 2) halfway.resolve();
        },
        (error: unknown) => {
          failures.push(error);
        },
      );
      inFlight.add(sent);
      void sent.finally(() => inFlight.delete(sent));
      if (inFlight.size >= WINDOW) await Promise.race(inFlight);
    }
    await Promise.all(inFlight);
    await withTimeout(restarted, 15_000, 'the broker restart');
    expect(failures).toEqual([]);

    const missing = () => Array.from({ length: TOTAL }, (_, n) => n).filter((n) => !numbers.has(n));
    await withTimeout(complete.promise, 30_000, `all ${TOTAL} messages`).catch((error: unknown) => {
      throw new Error(`${(error as Error).message}; missing: ${missing().slice(0, 20).join(', ')}…`);
    });

    const lost = missing().length;
    const duplicates = [...handled.values()].reduce((sum, runs) => sum + runs - 1, 0);
    const r = receiver.client.stats();
    const s = sender.client.stats();
    console.log(
      `module stream across a broker restart: ${TOTAL} sent, ${handled.size} processed, ${lost} lost, ` +
        `${duplicates} duplicates by messageId (${r.redelivered} redelivered by the broker); ` +
        `reconnects: sender ${s.reconnects}, receiver ${r.reconnects}`,
    );
    expect(lost).toBe(0);
    expect(handled.size).toBe(TOTAL);
    // The duplicate count agrees with the receiver's own statistics: every handler run beyond the first is one.
    expect(r.processed).toBe(TOTAL + duplicates);
    expect(s.sent).toBe(TOTAL);
    expect(s.reconnects).toBeGreaterThanOrEqual(1);
    expect(r.reconnects).toBeGreaterThanOrEqual(1);
    expect(receiver.errors.items).toEqual([]);
  });
});
