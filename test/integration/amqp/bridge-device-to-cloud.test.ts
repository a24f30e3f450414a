/**
 * A device behind the shovels `rabbitmqBridge` renders, on two real RabbitMQ nodes on loopback: the device's node
 * (its own, with `rabbitmq_shovel`) has the rendered device definitions loaded with `rabbitmqctl import_definitions`
 * and reaches the cloud's node (the shared test node) through a TCP proxy that can cut the link. Everything the
 * operator does goes to the cloud broker only — the ServiceClient and the `edgekit` CLI — and the modules connect to
 * the device's broker only.
 *
 * The link is cut for 20 s in the middle of a 5,000-message upstream stream: every message arrives once the link
 * heals, messages whose route time to live ended while they waited never arrive, a method call during the cut answers
 * 404 at once, and a desired change made during the cut reaches the module after it.
 */
import { randomUUID } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import * as amqplib from 'amqplib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeEnvelope } from '../../../src/core/envelope.js';
import { connect, connectService, type ModuleClient, type ServiceClient } from '../../../src/index.js';
import { addresses } from '../../../src/names.js';
import type { TransportConnection } from '../../../src/transport.js';
import { amqp, type RabbitBridgeDefinitions, rabbitmqBridge } from '../../../src/transports/amqp/index.js';
import { cli } from '../../cli/scenarios.js';
import { type RabbitMQ, startRabbitMQ } from '../brokers/rabbitmq.js';
import { Inbox } from '../mqtt/support/wait.js';
import { CUT_MS, Filter, manifest, Sensor, STREAM, streamAcrossCut } from '../support/bridge-scenario.js';
import { startTcpProxy, type TcpProxy } from '../support/tcp-proxy.js';
import { rawConnection, sharedRabbitMQ, until } from './support.js';

const deviceId = `gw-${randomUUID().slice(0, 8)}`;

let cloudUrl: string;
let device: RabbitMQ;
let link: TcpProxy;
let service: ServiceClient;
/** A plain connection to the cloud broker: the upstream reader. */
let reader: TransportConnection;
const upstream = new Inbox<{ output: string; n: number }>();
const deadLetters = new Inbox<{ n: number; reason: string | undefined }>();
const modules: ModuleClient[] = [];

/**
 * Declares one side's exchanges, queues and bindings through amqplib, as `rabbitmqctl import_definitions` would: the
 * cloud here is the shared test node, which this file may not run `rabbitmqctl` against.
 */
async function declare(url: string, definitions: RabbitBridgeDefinitions): Promise<void> {
  const connection = await amqplib.connect(url);
  try {
    const channel = await connection.createChannel();
    for (const e of definitions.exchanges) await channel.assertExchange(e.name, e.type, { durable: true });
    for (const q of definitions.queues) await channel.assertQueue(q.name, { durable: true, arguments: q.arguments });
    for (const b of definitions.bindings) {
      if (b.destination_type === 'queue') await channel.bindQueue(b.destination, b.source, b.routing_key);
      else await channel.bindExchange(b.destination, b.source, b.routing_key);
    }
  } finally {
    await connection.close();
  }
}

beforeAll(async () => {
  const cloud = sharedRabbitMQ();
  cloudUrl = cloud.url;
  link = await startTcpProxy(cloud.port);
  device = await startRabbitMQ({ plugins: ['rabbitmq_shovel'] });
  const bridge = rabbitmqBridge({
    deviceId,
    modules: ['sensor', 'filter'],
    cloudUrl: `amqp://127.0.0.1:${link.port}`,
    username: 'guest',
    password: 'guest',
    heartbeatInSeconds: 5,
    reconnectDelayInSeconds: 1,
  });
  await declare(cloudUrl, bridge.cloud);
  const file = path.join(device.dir, 'bridge-device.json');
  await writeFile(file, JSON.stringify(bridge.device), { mode: 0o600 });
  await device.rabbitmqctl(['import_definitions', file]);

  reader = await amqp({ url: cloudUrl }).connect({ clientId: `upstream-reader-${deviceId}` });
  await reader.consume(addresses.upstream(deviceId), { prefetch: 500 }, (delivery) => {
    const envelope = decodeEnvelope(delivery.bytes);
    const body = JSON.parse(new TextDecoder().decode(envelope.body)) as { n: number };
    upstream.push({ output: envelope.header.sourceOutput ?? '', n: body.n });
    delivery.ack();
  });
  await reader.consume(addresses.deadLetter(deviceId, 'filter'), { prefetch: 10 }, (delivery) => {
    const envelope = decodeEnvelope(delivery.bytes);
    const body = JSON.parse(new TextDecoder().decode(envelope.body)) as { n: number };
    deadLetters.push({ n: body.n, reason: envelope.header.deadLetter?.reason });
    delivery.ack();
  });
  service = await connectService({ transport: amqp({ url: cloudUrl }) });
}, 90_000);

afterAll(async () => {
  await Promise.allSettled(modules.map((m) => m.close()));
  await service?.close();
  await reader?.close();
  await device?.stop();
  await link?.close();
});

/** Consumers of the cloud queue the down shovel reads: 1 while the link is up, 0 while it is down. */
async function downConsumers(): Promise<number> {
  const connection = await rawConnection(cloudUrl);
  try {
    const channel = await connection.createChannel();
    return (await channel.checkQueue(`edgekit.bridge.${deviceId}.down`)).consumerCount;
  } finally {
    await connection.close();
  }
}

/** Resolves once the device's broker holds the route table the cloud deployed. */
async function routesOnDevice(): Promise<void> {
  const local = await amqp({ url: device.url }).connect({ clientId: `routes-check-${deviceId}` });
  try {
    const seen = new Inbox<boolean>();
    await local.watchRetained(addresses.routes(deviceId), (v) => seen.push(v !== undefined));
    await seen.until((s) => s.at(-1) === true, 20_000, 'the routes to come down the shovel');
  } finally {
    await local.close();
  }
}

describe('a device bridged to a RabbitMQ cloud by the generated shovels', () => {
  let sensor: ModuleClient<typeof Sensor>;
  let filter: ModuleClient<typeof Filter>;
  const desired = new Inbox<number | undefined>();

  it('takes its deployment from the cloud; desired changes and method calls reach the device module', async () => {
    const applied = await service.applyDeployment(deviceId, manifest);
    expect([...applied.modules].sort()).toEqual(['filter', 'sensor']);
    await routesOnDevice();
    const transport = amqp({ url: device.url });
    sensor = await connect(Sensor, { deviceId, moduleId: 'sensor', transport, onError: () => undefined });
    filter = await connect(Filter, {
      deviceId,
      moduleId: 'filter',
      transport,
      maxAttempts: 2,
      retryDelayInMs: 5,
      onError: () => undefined,
    });
    modules.push(sensor, filter);
    await filter.onDesired(async (d) => {
      desired.push(d.threshold);
      if (d.threshold !== undefined) await filter.report({ threshold: d.threshold });
    });
    await filter.handle('ping', async ({ n }) => ({ pong: n + 1 }));
    await filter.onInput('in', async ({ body }) => {
      throw new Error(`reading ${body.n} is poison`);
    });
    await desired.until((d) => d.includes(1), 10_000, 'the deployed desired properties');

    await service.updateDesired(deviceId, 'filter', { threshold: 2 });
    await desired.until((d) => d.includes(2), 10_000, 'the desired change made in the cloud');
    // The reported answer crosses back: the operator reads it from the cloud broker.
    await expect
      .poll(async () => (await service.getTwin(deviceId, 'filter')).reported.properties, { timeout: 10_000 })
      .toEqual({ threshold: 2 });

    // Presence crossed up (the caller reads it first), the request down and the reply up.
    await expect
      .poll(async () => (await service.modules(deviceId)).find((m) => m.moduleId === 'filter')?.state, {
        timeout: 10_000,
      })
      .toBe('online');
    const answer = await service.invoke(deviceId, 'filter', 'ping', { n: 41 }, { timeoutInMs: 10_000 });
    expect(answer).toMatchObject({ ok: true, status: 200, payload: { pong: 42 } });
    // A message the device's module could not handle is dead-lettered on the device and moves to the cloud.
    await sensor.send('poison', { n: 7 });
    expect(await deadLetters.until((d) => d.length > 0, 10_000, 'the dead letter in the cloud')).toEqual([
      { n: 7, reason: 'handler-failed' },
    ]);

    // RabbitMQ cannot write the link state: the cloud has none for this device.
    expect(await service.link(deviceId)).toBeUndefined();
  });

  it('the CLI against the cloud broker alone: status shows the modules, invoke and twin set reach the device', async () => {
    const broker = ['--broker', cloudUrl];
    const status = await cli(['status', deviceId, ...broker]);
    expect(status).toMatchObject({ code: 0, stderr: '' });
    expect(status.stdout).toMatch(new RegExp(`${deviceId}\\s+filter\\s+online`));
    expect(status.stdout).toMatch(new RegExp(`${deviceId}\\s+sensor\\s+online`));
    expect(status.stdout).not.toContain('cloud link of');

    const invoke = await cli(['invoke', `${deviceId}/filter`, 'ping', '{"n": 1}', ...broker]);
    expect(invoke).toMatchObject({ code: 0, stderr: '' });
    expect(invoke.stdout).toContain('"pong": 2');

    const set = await cli(['twin', 'set', `${deviceId}/filter`, '{"threshold": 3}', ...broker]);
    expect(set).toMatchObject({ code: 0, stderr: '' });
    await desired.until((d) => d.includes(3), 10_000, 'the twin set from the CLI');
  });

  it(`${STREAM} upstream messages with the link cut for ${CUT_MS / 1000} s: all arrive after it heals, none after its time to live`, async () => {
    await streamAcrossCut({
      sensor,
      link,
      upstream,
      // What the cloud can see of the link: whether the down shovel consumes its queue there.
      whenDown: () => until(async () => (await downConsumers()) === 0, 5_000, 'the down shovel to leave the cloud'),
      duringCut: async () => {
        // The request finds no route on the cloud (the calls shovel's queue went with its connection): 404 at once.
        const asked = Date.now();
        const duringCut = await service.invoke(deviceId, 'filter', 'ping', { n: 0 }, { timeoutInMs: 10_000 });
        expect(duringCut).toMatchObject({ ok: false, status: 404 });
        expect(duringCut.ok ? '' : duringCut.message).toContain(`module ${deviceId}/filter is not serving methods`);
        expect(Date.now() - asked).toBeLessThan(2_000);
        const invoke = await cli(['invoke', `${deviceId}/filter`, 'ping', '{"n": 1}', '--broker', cloudUrl]);
        expect(invoke.code).toBe(1);
        expect(invoke.stderr).toContain('404');
        await service.updateDesired(deviceId, 'filter', { threshold: 4 });
      },
      whenUp: () => until(async () => (await downConsumers()) === 1, 15_000, 'the down shovel to come back'),
    });

    await desired.until((d) => d.includes(4), 15_000, 'the desired change made during the cut');
    const after = await service.invoke(deviceId, 'filter', 'ping', { n: 9 }, { timeoutInMs: 10_000 });
    expect(after).toMatchObject({ ok: true, payload: { pong: 10 } });

    // A module that goes away: its presence crosses up like any other write.
    await filter.close();
    await expect
      .poll(async () => (await service.modules(deviceId)).find((m) => m.moduleId === 'filter')?.state, {
        timeout: 10_000,
      })
      .toBe('offline');
  }, 120_000);
});
