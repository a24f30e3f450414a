/**
 * The operator's queues on a real Mosquitto: upstream consumed at-least-once, shared by competing consumers, dead
 * letters listed, replayed and purged — the same scenarios as memory and RabbitMQ (test/cli/queue-scenarios.ts).
 * Here the queues keep messages only because applyDeployment made them keep in sessions of their own; the last case
 * shows that session survives a broker restart with persistence on.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, expect, test } from 'vitest';
import { json } from '../../../src/codecs/codec.js';
import { connect } from '../../../src/connect.js';
import { defineModule } from '../../../src/core/contract.js';
import { isEdgeKitError } from '../../../src/errors.js';
import { connectService } from '../../../src/service/client.js';
import { mqtt } from '../../../src/transports/mqtt/index.js';
import { manifest, runQueueScenarios } from '../../cli/queue-scenarios.js';
import { type Mosquitto, startMosquitto } from '../brokers/mosquitto.js';
import { Inbox, withTimeout } from './support/wait.js';

let broker: Promise<Mosquitto> | undefined;
const mosquitto = () => (broker ??= startMosquitto());
afterAll(async () => {
  await (await broker)?.stop();
});

runQueueScenarios({
  name: 'Mosquitto',
  brokerUrl: async () => (await mosquitto()).url,
  transport: async () => mqtt({ url: (await mosquitto()).url }),
  competingClients: false,
});

test('without a deployment no session keeps upstream messages (the reason applyDeployment makes one)', async () => {
  const url = (await mosquitto()).url;
  const deviceId = `q-${randomUUID().slice(0, 8)}`;
  const service = await connectService({ transport: mqtt({ url }) });
  const raw = await mqtt({ url }).connect({ clientId: `raw-${deviceId}` });
  try {
    await raw.publish(`upstream/${deviceId}`, new Uint8Array([1])); // no deployment, no consumer: nobody keeps it
    const consumer = await service.upstream(deviceId);
    await raw.publish(`upstream/${deviceId}`, new Uint8Array([2]));
    const first = await withTimeout(consumer.next(), 10_000, 'the message published after consuming began');
    expect(first.value?.type).toBe('undecodable');
    if (first.value?.type === 'undecodable') expect([...first.value.bytes]).toEqual([2]);
    await consumer.close();
  } finally {
    await raw.close();
    await service.close();
  }
});

test('dead letters kept before any operator consumed them survive a broker restart (persistence on)', async () => {
  const persistent = await startMosquitto({ persistence: true });
  const url = persistent.url;
  const deviceId = `q-${randomUUID().slice(0, 8)}`;
  const Filter = defineModule({ inputs: { input1: json<{ n: number }>() } });
  const Sensor = defineModule({ outputs: { out: json<{ n: number }>() } });
  try {
    const service = await connectService({ transport: mqtt({ url }) });
    await service.applyDeployment(deviceId, manifest);
    const seen = new Inbox<string>();
    const monitor = await service.monitor({ deviceId, kinds: ['deadletter'] });
    const watching = (async () => {
      for await (const event of monitor) seen.push(event.type);
    })();
    const transport = mqtt({ url });
    const filter = await connect(Filter, {
      deviceId,
      moduleId: 'filter',
      transport,
      maxAttempts: 1,
      onError: () => undefined,
    });
    const sensor = await connect(Sensor, { deviceId, moduleId: 'sensor', transport });
    await filter.onInput('input1', async () => {
      throw new Error('no');
    });
    await sensor.send('out', { n: 100 });
    await sensor.send('out', { n: 101 });
    await seen.take(2, 10_000, 'both dead letters');
    await monitor.close();
    await watching;
    await Promise.all([filter.close(), sensor.close(), service.close()]);
    await persistent.restart();
    const after = await connectService({ transport: mqtt({ url }) });
    try {
      const listing = await after.deadLetters(deviceId, 'filter').list({ idleInMs: 500 });
      expect(listing.entries.map((e) => (e.type === 'message' ? e.deadLetter.reason : e.type))).toEqual([
        'handler-failed',
        'handler-failed',
      ]);
    } finally {
      await after.close();
    }
  } finally {
    await persistent.stop();
  }
}, 60_000);

test('a second client consuming the same queue takes its session over: the first ends with connection-lost, nothing is lost', async () => {
  const url = (await mosquitto()).url;
  const deviceId = `q-${randomUUID().slice(0, 8)}`;
  const first = await connectService({ transport: mqtt({ url }) });
  const second = await connectService({ transport: mqtt({ url }) });
  const raw = await mqtt({ url }).connect({ clientId: `raw-${deviceId}` });
  try {
    await first.applyDeployment(deviceId, manifest);
    await raw.publish(`upstream/${deviceId}`, new Uint8Array([1]));
    const a = await first.upstream(deviceId, { prefetch: 1 });
    expect((await withTimeout(a.next(), 10_000, 'the message, to the first client')).value).toMatchObject({
      type: 'undecodable',
    });
    // Not acknowledged by the first; the second client attaches to the same session.
    const b = await second.upstream(deviceId, { prefetch: 1 });
    const ended = await a.next().then(
      () => undefined,
      (error: unknown) => error,
    );
    expect(isEdgeKitError(ended, 'connection-lost')).toBe(true);
    const again = await withTimeout(b.next(), 10_000, 'the message, redelivered to the second client');
    expect(again.value).toMatchObject({ type: 'undecodable', redelivered: true });
    await b.close();
  } finally {
    await raw.close();
    await Promise.all([first.close(), second.close()]);
  }
});

test('closing the client ends a dead-letter operation under way and the queue session it held', async () => {
  const url = (await mosquitto()).url;
  const deviceId = `q-${randomUUID().slice(0, 8)}`;
  const service = await connectService({ transport: mqtt({ url }) });
  await service.applyDeployment(deviceId, manifest);
  const listing = service.deadLetters(deviceId, 'filter').list({ idleInMs: 30_000 });
  const outcome = listing.then(
    () => 'resolved',
    (error: unknown) => (isEdgeKitError(error) ? error.code : String(error)),
  );
  await service.close();
  // The listing's session was closed with the client: it ends now, not after its 30 s of idling.
  expect(await withTimeout(outcome, 5_000, 'the listing to end')).toMatch(/^(connection-lost|closed)$/);
});
