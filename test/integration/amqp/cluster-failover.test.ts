/**
 * On a real 3-node RabbitMQ cluster, with the real core and `amqp({ urls, queueType: 'quorum' })`: a module's input
 * is a quorum queue; the node leading it is SIGKILLed during a 5,000-message stream, once with the sender connected
 * to a surviving node (and the receiver to the dying one), once with the sender connected to the dying node (and the
 * receiver to a surviving one). Every send resolves, and every message arrives while the node is still down (none
 * lost; duplicates allowed and counted); clients of the killed node reconnect to another (their presence goes
 * offline, then online), a module holding its will from a queue whose leader was killed stays online; the node,
 * started again, rejoins the cluster.
 *
 * The cluster is this file's own (about 25–45 s to form), stopped after it.
 */
import * as amqplib from 'amqplib';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { json } from '../../../src/codecs/codec.js';
import { connect } from '../../../src/connect.js';
import { defineModule } from '../../../src/core/contract.js';
import type { ModuleClient } from '../../../src/core/types.js';
import { addresses } from '../../../src/names.js';
import { deployRoutes } from '../../../src/service/operations.js';
import { amqp } from '../../../src/transports/amqp/index.js';
import { topology, willQueueArguments } from '../../../src/transports/amqp/topology.js';
import { type RabbitMQCluster, startRabbitMQCluster } from '../brokers/rabbitmq-cluster.js';
import { uniquePrefix, until } from './support.js';

const Sensor = defineModule({ outputs: { out: json<{ n: number }>() } });
const Sink = defineModule({ inputs: { in: json<{ n: number }>() } });

const TOTAL = 5_000;
/** Sends in flight at once (the sender does not wait for each confirm before the next send). */
const WINDOW = 100;
/** The leader is killed once this many sends have resolved. */
const KILL_AFTER = 1_000;

let cluster: RabbitMQCluster;
let clusterStartInMs = 0;

beforeAll(async () => {
  const started = Date.now();
  cluster = await startRabbitMQCluster();
  clusterStartInMs = Date.now() - started;
  console.info(`3-node cluster formed in ${clusterStartInMs} ms`);
}, 240_000);

afterAll(async () => {
  await cluster?.stop();
}, 120_000);

const clients: Array<{ close(): Promise<void> }> = [];
afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
});

/** The cluster's URLs starting with node `first`, then the others in order. */
function urlsFrom(first: number): string[] {
  const { urls } = cluster;
  return urls.map((_, k) => urls[(first + k) % urls.length] as string);
}

/**
 * Declares the quorum queue `queue` through node `index` (RabbitMQ places its leader on the declaring node), with the
 * arguments the transport uses for it.
 */
async function declareThrough(
  index: number,
  queue: string,
  args: Record<string, unknown> = { 'x-queue-type': 'quorum' },
): Promise<void> {
  const connection = await amqplib.connect(cluster.urls[index] as string);
  connection.on('error', () => undefined);
  try {
    const channel = await connection.createChannel();
    await channel.assertQueue(queue, { durable: true, arguments: args });
  } finally {
    await connection.close();
  }
}

interface Outcome {
  readonly resolved: number;
  readonly rejected: number;
  readonly distinct: number;
  readonly duplicates: number;
  readonly lost: number;
  /** Longest time between two resolved sends, across the kill. */
  readonly longestSendGapInMs: number;
  /** From the kill to the first message handled after it. */
  readonly firstDeliveryAfterKillInMs: number;
  /** From the kill to the last of the 5,000 messages handled (the node still down). */
  readonly allDeliveredAfterKillInMs: number;
  readonly senderReconnects: number;
  readonly receiverReconnects: number;
  /** From starting the killed node again until cluster_status lists it running. */
  readonly rejoinInMs: number;
  /** Each module's presence as the operator saw it change, in order. */
  readonly presence: Record<'sink' | 'sensor', string[]>;
}

/**
 * One run: the input queue declared through some node, the receiver on node `receiverOn(leader)`, the sender on
 * `senderOn(leader)`, the leader killed after {@link KILL_AFTER} sends resolved, then started again.
 */
async function streamAcrossLeaderKill(place: {
  sender: (leader: number) => number;
  receiver: (leader: number) => number;
  declareOn: number;
  /** Declare the receiver's will queue on the leader's node too (its holder is then on another node). */
  receiverWillOnLeader?: boolean;
}): Promise<Outcome> {
  const prefix = uniquePrefix();
  const deviceId = 'gw-cluster';
  const names = topology(prefix);
  const queue = names.messageQueue(addresses.input(deviceId, 'sink', 'in'));
  await declareThrough(place.declareOn, queue);
  const leaderName = await cluster.leaderOf(queue);
  expect(leaderName).toBeDefined();
  const leader = cluster.indexOf(leaderName as string);
  if (place.receiverWillOnLeader === true) {
    const will = names.willQueue(`${deviceId}/sink`);
    const from = names.fromExchange(`${deviceId}/sink`);
    await declareThrough(leader, will, willQueueArguments(names, from, addresses.presence(deviceId, 'sink'), 'quorum'));
    expect(await cluster.leaderOf(will)).toBe(leaderName);
  }
  const senderNode = place.sender(leader);
  const receiverNode = place.receiver(leader);

  const transportFrom = (first: number) =>
    amqp({ urls: urlsFrom(first), queueType: 'quorum', prefix, heartbeatInSeconds: 5, connectTimeoutInMs: 10_000 });
  // The operator stays on the node that is never killed, and watches both modules' presence throughout.
  const operator = transportFrom((leader + 2) % 3);
  const op = await operator.connect({ clientId: '$operator' });
  clients.push(op);
  await deployRoutes(op, deviceId, {
    r: 'FROM /messages/modules/sensor/outputs/out INTO BrokeredEndpoint("/modules/sink/inputs/in")',
  });
  const presence: Record<'sink' | 'sensor', string[]> = { sink: [], sensor: [] };
  for (const moduleId of ['sink', 'sensor'] as const) {
    await op.watchRetained(addresses.presence(deviceId, moduleId), (value) => {
      presence[moduleId].push(
        value === undefined ? 'none' : (JSON.parse(new TextDecoder().decode(value)) as { state: string }).state,
      );
    });
  }
  const common = {
    deviceId,
    reconnect: { initialDelayInMs: 50, maxDelayInMs: 500 },
    offlineQueue: { maxMessages: TOTAL },
    onError: () => undefined,
  };

  let killedAt = 0;
  let firstAfterKill = 0;
  let lastDelivery = 0;
  const received = new Map<number, number>();
  const sink: ModuleClient<typeof Sink> = await connect(Sink, {
    ...common,
    moduleId: 'sink',
    transport: transportFrom(receiverNode),
  });
  clients.push(sink);
  await sink.onInput('in', async (message) => {
    const now = Date.now();
    if (killedAt > 0 && firstAfterKill === 0) firstAfterKill = now;
    lastDelivery = now;
    received.set(message.body.n, (received.get(message.body.n) ?? 0) + 1);
  });
  const sensor = await connect(Sensor, { ...common, moduleId: 'sensor', transport: transportFrom(senderNode) });
  clients.push(sensor);

  let resolved = 0;
  let rejected = 0;
  let lastResolvedAt = Date.now();
  let longestSendGapInMs = 0;
  const confirmed = new Set<number>();
  let kill: Promise<void> | undefined;
  let inFlight = 0;
  let wake: (() => void) | undefined;
  for (let n = 0; n < TOTAL; n++) {
    while (inFlight >= WINDOW) await new Promise<void>((resolve) => (wake = resolve));
    inFlight++;
    sensor
      .send('out', { n })
      .then(
        () => {
          const now = Date.now();
          longestSendGapInMs = Math.max(longestSendGapInMs, now - lastResolvedAt);
          lastResolvedAt = now;
          confirmed.add(n);
          resolved++;
          if (resolved === KILL_AFTER && kill === undefined) {
            killedAt = Date.now();
            kill = cluster.kill(leader);
          }
        },
        () => {
          rejected++;
        },
      )
      .finally(() => {
        inFlight--;
        wake?.();
      });
  }
  await until(
    () => resolved + rejected === TOTAL,
    120_000,
    `every send settled (${resolved} resolved, ${rejected} rejected)`,
  );
  await kill;
  await until(
    () => [...confirmed].every((n) => received.has(n)),
    120_000,
    `every confirmed message delivered (have ${received.size} of ${confirmed.size})`,
  );
  // Everything arrived with the killed node still down: the survivors served the whole stream.
  expect((await cluster.runningNodes()).includes(cluster.nodes[leader]?.name as string)).toBe(false);
  const allDeliveredAfterKillInMs = lastDelivery - killedAt;

  const restarted = Date.now();
  await cluster.start(leader);
  await until(
    async () => (await cluster.runningNodes()).length === cluster.nodes.length,
    120_000,
    'the restarted node running in the cluster',
  );
  const rejoinInMs = Date.now() - restarted;
  // Whatever the will said while a module moved, both are online in the end.
  await until(
    () => presence.sink.at(-1) === 'online' && presence.sensor.at(-1) === 'online',
    30_000,
    `both modules online (sink: ${presence.sink.join(',')}; sensor: ${presence.sensor.join(',')})`,
  );

  const deliveries = [...received.values()].reduce((a, b) => a + b, 0);
  return {
    resolved,
    rejected,
    distinct: received.size,
    duplicates: deliveries - received.size,
    lost: [...confirmed].filter((n) => !received.has(n)).length,
    longestSendGapInMs,
    firstDeliveryAfterKillInMs: firstAfterKill - killedAt,
    allDeliveredAfterKillInMs,
    senderReconnects: sensor.stats().reconnects,
    receiverReconnects: sink.stats().reconnects,
    rejoinInMs,
    presence,
  };
}

describe('a quorum input queue across the death of its leader node', () => {
  it('sender on a surviving node, receiver on the dying one: nothing lost, the receiver moves on', async () => {
    const outcome = await streamAcrossLeaderKill({
      declareOn: 0,
      receiver: (leader) => leader,
      sender: (leader) => (leader + 1) % 3,
    });
    console.info('sender on a surviving node:', JSON.stringify(outcome));
    expect(outcome).toMatchObject({ resolved: TOTAL, rejected: 0, distinct: TOTAL, lost: 0 });
    expect(outcome.receiverReconnects).toBeGreaterThanOrEqual(1);
    expect(outcome.senderReconnects).toBe(0);
  }, 300_000);

  it('sender on the dying node, receiver on a surviving one: unconfirmed sends are retried, nothing lost', async () => {
    const outcome = await streamAcrossLeaderKill({
      declareOn: 1,
      receiver: (leader) => (leader + 1) % 3,
      sender: (leader) => leader,
      receiverWillOnLeader: true,
    });
    console.info('sender on the dying node:', JSON.stringify(outcome));
    expect(outcome).toMatchObject({ resolved: TOTAL, rejected: 0, distinct: TOTAL, lost: 0 });
    expect(outcome.senderReconnects).toBeGreaterThanOrEqual(1);
    // The receiver held its will from a queue whose leader died: the will stays held, the receiver never shows offline.
    expect(outcome.presence.sink).toEqual(['none', 'online']);
  }, 300_000);
});
