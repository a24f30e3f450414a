/**
 * Two replicas of one module on a real Mosquitto, connected with `replicaId` and `mqtt({ url, shareGroup })`: a
 * sender module's stream through a route is split between them through an MQTT 5 shared subscription, each message
 * processed once overall, each replica getting some; direct methods are answered by one replica per call.
 */
import { describe, expect, it } from 'vitest';
import { defineModule, json, method, typed } from '../../../src/index.js';
import { deployRoutes } from '../../../src/service/operations.js';
import { useModules } from './fixtures/module-clients.js';
import { transportFor, unique, useConnections, useMosquitto } from './support/fixtures.js';
import { Inbox } from './support/wait.js';

const broker = useMosquitto();
const connections = useConnections();
const modules = useModules();
const COUNT = 300;

const Sensor = defineModule({ outputs: { out: json<{ n: number }>() } });
const Worker = defineModule({
  inputs: { in: json<{ n: number }>() },
  methods: { whoami: method(typed<Record<string, never>>(), typed<{ replica: string }>()) },
});

describe('replicas of one module', () => {
  it('split one input stream: every message processed once overall, each replica gets some', async () => {
    const deviceId = unique('dev');
    const url = broker().url;
    const operator = await connections.open(transportFor(url), { clientId: `${deviceId}/operator` });
    await deployRoutes(operator, deviceId, {
      work: 'FROM /messages/modules/sensor/outputs/out INTO BrokeredEndpoint("/modules/worker/inputs/in")',
    });
    const shared = transportFor(url, { shareGroup: 'edgekit' });
    expect(shared.capabilities.sharedConsumers).toBe(true);

    const processed = new Inbox<{ replica: string; messageId: string; n: number }>();
    const replicas = [];
    for (const replicaId of ['r1', 'r2']) {
      const replica = await modules.connect(Worker, { deviceId, moduleId: 'worker', replicaId, transport: shared });
      await replica.client.onInput('in', (message) => {
        processed.push({ replica: replicaId, messageId: message.messageId, n: message.body.n });
      });
      await replica.client.handle('whoami', () => ({ replica: replicaId }));
      replicas.push(replica);
    }
    const sensor = await modules.connect(Sensor, { deviceId, moduleId: 'sensor', transport: transportFor(url) });

    const sent = new Set<string>();
    for (let n = 0; n < COUNT; n++) sent.add((await sensor.client.send('out', { n })).messageId);
    const got = await processed.take(COUNT, 15_000, `${COUNT} messages`);

    const ids = got.map((g) => g.messageId);
    expect(new Set(ids).size).toBe(COUNT); // none twice
    expect(new Set(ids)).toEqual(sent); // none missing
    const perReplica = ['r1', 'r2'].map((r) => got.filter((g) => g.replica === r).length);
    console.log(`replicas: ${COUNT} messages split ${perReplica.join(' / ')} between r1 / r2`);
    expect(perReplica[0]).toBeGreaterThan(0);
    expect(perReplica[1]).toBeGreaterThan(0);
    expect(perReplica[0]! + perReplica[1]!).toBe(COUNT);
    // Each replica handles its share in send order (concurrency 1 per replica).
    for (const replica of ['r1', 'r2']) {
      const mine = got.filter((g) => g.replica === replica).map((g) => g.n);
      expect(mine).toEqual([...mine].sort((a, b) => a - b));
    }
    expect(replicas.map((r) => r.client.stats().processed)).toEqual(perReplica);

    // Methods: one replica answers each call; across calls both take part.
    const answers = new Set<string>();
    for (let i = 0; i < 20; i++) {
      const result = await sensor.client.invoke(Worker, 'worker', 'whoami', {}, { timeoutInMs: 5_000 });
      expect(result.ok).toBe(true);
      if (result.ok) answers.add(result.payload.replica);
    }
    expect(answers).toEqual(new Set(['r1', 'r2']));
  });
});
