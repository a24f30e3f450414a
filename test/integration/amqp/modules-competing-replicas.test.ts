/**
 * Replicas of one module on RabbitMQ — the same device and module id, different `replicaId` — are competing
 * consumers of each of its input queues: every message routed to the module is processed by exactly one replica, and
 * with two or more replicas the broker spreads the stream over them. A replica that closes mid-stream finishes what it
 * started; what it had prefetched but not started goes back to the queue for the others.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { json } from '../../../src/codecs/codec.js';
import { connect } from '../../../src/connect.js';
import { defineModule } from '../../../src/core/contract.js';
import type { ModuleClient } from '../../../src/core/types.js';
import { addresses } from '../../../src/names.js';
import { deployRoutes } from '../../../src/service/operations.js';
import type { TransportConnection } from '../../../src/transport.js';
import { topology } from '../../../src/transports/amqp/topology.js';
import { closeAll, open, rawConnection, readyCount, testTransport, uniquePrefix, until, within } from './support.js';

const Sensor = defineModule({ outputs: { out: json<{ n: number }>() } });
const Worker = defineModule({ inputs: { in: json<{ n: number }>() } });

const opened: TransportConnection[] = [];
const clients: Array<{ close(): Promise<void> }> = [];
afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
  await closeAll(opened);
});

/** Which replica processed which message, in processing order. */
interface Tally {
  readonly byReplica: number[][];
  readonly all: number[];
}

async function setUp(deviceId: string, replicas: number) {
  const prefix = uniquePrefix();
  const transport = testTransport({ prefix });
  const operator = await open(transport, { clientId: '$operator' }, opened);
  await deployRoutes(operator, deviceId, {
    r: 'FROM /messages/modules/sensor/outputs/out INTO BrokeredEndpoint("/modules/worker/inputs/in")',
  });
  const tally: Tally = { byReplica: Array.from({ length: replicas }, () => []), all: [] };
  const workers: Array<ModuleClient<typeof Worker>> = [];
  for (let r = 0; r < replicas; r++) {
    const worker = await connect(Worker, { deviceId, moduleId: 'worker', replicaId: `r${r}`, transport });
    clients.push(worker);
    workers.push(worker);
  }
  const sensor = await connect(Sensor, { deviceId, moduleId: 'sensor', transport });
  clients.push(sensor);
  return { prefix, tally, workers, sensor };
}

/** Sends 0…total−1 with up to 50 sends in flight, each checked to reach one destination. */
async function sendAll(sensor: ModuleClient<typeof Sensor>, total: number): Promise<void> {
  for (let start = 0; start < total; start += 50) {
    const batch = Array.from({ length: Math.min(50, total - start) }, (_, i) => sensor.send('out', { n: start + i }));
    for (const result of await Promise.all(batch)) expect(result.destinations).toBe(1);
  }
}

async function inputQueueIsEmpty(prefix: string, deviceId: string): Promise<number | undefined> {
  const raw = await rawConnection();
  try {
    return await readyCount(raw, topology(prefix).messageQueue(addresses.input(deviceId, 'worker', 'in')));
  } finally {
    await raw.close();
  }
}

const range = (n: number) => Array.from({ length: n }, (_, i) => i);

describe.each([1, 2, 4])('%i replica(s) of one module', (replicas) => {
  it('process every message routed to the module exactly once, spread over the replicas', async () => {
    const deviceId = `gw-replicas-${replicas}`;
    const { prefix, tally, workers, sensor } = await setUp(deviceId, replicas);
    for (const [r, worker] of workers.entries()) {
      await worker.onInput('in', async (message) => {
        tally.byReplica[r]?.push(message.body.n);
        tally.all.push(message.body.n);
        // Finish on a later turn, as real work would: each replica is busy for a moment.
        await new Promise((resolve) => setImmediate(resolve));
      });
    }
    const total = 600;
    await sendAll(sensor, total);
    await until(() => tally.all.length >= total, 15_000, `${total} messages processed (have ${tally.all.length})`);
    // Closing drains every handler and acknowledgement: a duplicate or a message left behind would show now.
    await Promise.all(workers.map((w) => w.close()));

    expect(tally.all).toHaveLength(total);
    expect([...tally.all].sort((a, b) => a - b)).toEqual(range(total));
    expect(await inputQueueIsEmpty(prefix, deviceId)).toBe(0);
    const shares = tally.byReplica.map((ns) => ns.length);
    console.info(`${replicas} replica(s): ${total} messages split ${shares.join(' / ')}`);
    if (replicas > 1) expect(shares.filter((s) => s > 0).length).toBeGreaterThan(1);
    // Each replica's share arrives in queue order (concurrency 1 per replica).
    for (const ns of tally.byReplica) expect(ns).toEqual([...ns].sort((a, b) => a - b));
  });
});

it('a replica that closes mid-stream leaves what it had not started to the others: still exactly once', async () => {
  const deviceId = 'gw-replica-leaves';
  const { prefix, tally, workers, sensor } = await setUp(deviceId, 2);
  const total = 600;
  let leaving: Promise<void> | undefined;
  const leaver = workers[0] as ModuleClient<typeof Worker>;
  const stayer = workers[1] as ModuleClient<typeof Worker>;
  // The whole stream waits in the queue first, so each replica holds a full prefetch when the first one leaves.
  await sendAll(sensor, total);
  for (const [r, worker] of workers.entries()) {
    await worker.onInput('in', async (message) => {
      tally.byReplica[r]?.push(message.body.n);
      tally.all.push(message.body.n);
      // The first replica leaves once it has done 100 messages, while it still holds prefetched ones.
      if (r === 0 && tally.byReplica[0]?.length === 100) leaving = leaver.close();
      await new Promise((resolve) => setImmediate(resolve));
    });
  }
  await until(() => leaving !== undefined, 15_000, 'the first replica to leave');
  await within(leaving as Promise<void>, 10_000, 'the leaving replica to close');
  await until(() => tally.all.length >= total, 15_000, `${total} messages processed (have ${tally.all.length})`);
  await stayer.close();

  expect([...tally.all].sort((a, b) => a - b)).toEqual(range(total));
  expect(tally.all).toHaveLength(total);
  expect(tally.byReplica[0]?.length).toBe(100);
  expect(tally.byReplica[1]?.length).toBe(total - 100);
  // Messages the leaver had prefetched came back to the queue, flagged redelivered, and the stayer took them.
  expect(stayer.stats().redelivered).toBeGreaterThan(0);
  expect(await inputQueueIsEmpty(prefix, deviceId)).toBe(0);
});
