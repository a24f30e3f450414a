/**
 * Least privilege on RabbitMQ, enforced by the broker (issue 11): the access plan of examples/deployment.json for
 * device gw-1 — SimulatedTemperatureSensor routed to filter's input1, filter routed to $upstream, filter with a
 * replica r1 — rendered by rabbitmqDefinitions and loaded into a node of this file's own at boot (without `guest`).
 * The legit paths work with the real core; every rogue attempt, with another module's credentials or none, fails with
 * a typed error and changes nothing the operator can read back. The raw attempts (amqplib) are what a hostile module
 * could send on the wire: other exchanges, forged routing keys, CC/BCC headers, dead-letter and alternate exchanges.
 */
import { readFileSync } from 'node:fs';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import * as amqplib from 'amqplib';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { json } from '../../../src/codecs/codec.js';
import { typed } from '../../../src/codecs/schema.js';
import { connect } from '../../../src/connect.js';
import { defineModule, method } from '../../../src/core/contract.js';
import { decodeEnvelope, encodeEnvelope } from '../../../src/core/envelope.js';
import type { ModuleClient } from '../../../src/core/types.js';
import { type EdgeKitError, isEdgeKitError } from '../../../src/errors.js';
import { planAccess } from '../../../src/service/access.js';
import { connectService, type ServiceClient } from '../../../src/service/client.js';
import { readDeployment } from '../../../src/service/deployment.js';
import type { TransportConnection, TransportConnectOptions } from '../../../src/transport.js';
import {
  declareRabbitAccess,
  hashRabbitPassword,
  type RabbitDefinitions,
  rabbitmqDefinitions,
} from '../../../src/transports/amqp/authorization.js';
import { amqp } from '../../../src/transports/amqp/index.js';
import { type RabbitMQ, startRabbitMQ } from '../brokers/rabbitmq.js';
import { startTcpProxy, type TcpProxy } from '../support/tcp-proxy.js';
import { bytes, Inbox, text, until, within } from './support.js';

const DEVICE = 'gw-1';
const SENSOR = 'SimulatedTemperatureSensor';
const FILTER = 'filter';
const OPERATOR = '$operator/operator';
const manifest = JSON.parse(
  readFileSync(new URL('../../../examples/deployment.json', import.meta.url), 'utf8'),
) as Record<string, unknown>;
const plan = planAccess(readDeployment(manifest), DEVICE, { replicas: { [FILTER]: ['r1'] } });
const passwordOf = (user: string) => `${user}-secret`;

/** The names the rules are about (prefix `edgekit`). */
const q = {
  input1: 'edgekit.msg.inputs.gw-1.filter.input1',
  upstream: 'edgekit.msg.upstream.gw-1',
  filterDeadLetters: 'edgekit.msg.deadletter.gw-1.filter',
  sensorDeadLetters: 'edgekit.msg.deadletter.gw-1.SimulatedTemperatureSensor',
  routes: 'edgekit.retained.routes.gw-1',
  deployment: 'edgekit.retained.deployment.gw-1',
  filterDesired: 'edgekit.retained.twin.gw-1.filter.desired',
  sensorDesired: 'edgekit.retained.twin.gw-1.SimulatedTemperatureSensor.desired',
  sensorReported: 'edgekit.retained.twin.gw-1.SimulatedTemperatureSensor.reported',
  sensorPresence: 'edgekit.retained.presence.gw-1.SimulatedTemperatureSensor',
  filterRoutesView: 'edgekit.view.gw-1.filter.routes.gw-1',
  sensorRoutesView: 'edgekit.view.gw-1.SimulatedTemperatureSensor.routes.gw-1',
  filterRpc: 'edgekit.rpc.methods.gw-1.filter',
  sensorRpc: 'edgekit.rpc.methods.gw-1.SimulatedTemperatureSensor',
  routesUpdates: 'edgekit.updates.routes.gw-1',
  sensorDesiredUpdates: 'edgekit.updates.twin.gw-1.SimulatedTemperatureSensor.desired',
  sensorPresenceUpdates: 'edgekit.updates.presence.gw-1.SimulatedTemperatureSensor',
  sensorCalls: 'edgekit.calls.methods.gw-1.SimulatedTemperatureSensor',
  fromFilter: 'edgekit.from.gw-1.filter',
  fromSensor: 'edgekit.from.gw-1.SimulatedTemperatureSensor',
  filterWill: 'edgekit.will.gw-1/filter',
  sensorWill: 'edgekit.will.gw-1/SimulatedTemperatureSensor',
} as const;

type Reading = { t: number };
const Sensor = defineModule({
  outputs: { temperatureOutput: json<Reading>() },
  desired: typed<{ SendInterval?: number }>(),
  reported: typed<{ sent?: number }>(),
  methods: { ping: method(typed<{ n: number }>(), typed<{ n: number }>()) },
});
const Filter = defineModule({
  inputs: { input1: json<Reading>() },
  outputs: { output1: json<Reading>() },
  desired: typed<{ TemperatureThreshold?: number }>(),
  reported: typed<{ threshold?: number }>(),
  methods: { reset: method(typed<{ hard?: boolean }>(), typed<{ ok: boolean }>()) },
});

let broker: RabbitMQ;
let definitions: RabbitDefinitions;
let service: ServiceClient;
let operatorRaw: amqplib.ChannelModel;
const cleanups: Array<() => Promise<unknown>> = [];

const urlOf = (user?: string, password = user === undefined ? undefined : passwordOf(user)) => {
  const url = new URL(`amqp://127.0.0.1:${broker.port}`);
  if (user !== undefined) url.username = user;
  if (password !== undefined) url.password = password;
  return url.toString();
};
const transportOf = (user?: string, password?: string) =>
  amqp({
    url: `amqp://127.0.0.1:${broker.port}`,
    connectTimeoutInMs: 5_000,
    ...(user === undefined ? {} : { username: user, password: password ?? passwordOf(user) }),
  });

async function openAs(user: string, options: Partial<TransportConnectOptions> = {}): Promise<TransportConnection> {
  const connection = await transportOf(user).connect({ clientId: `probe-${Math.random()}`, ...options });
  cleanups.push(() => connection.close());
  return connection;
}

async function rawAs(user: string): Promise<amqplib.ChannelModel> {
  const connection = await amqplib.connect(urlOf(user));
  connection.on('error', () => undefined);
  cleanups.push(() => connection.close().catch(() => undefined));
  return connection;
}

async function moduleOf<C extends typeof Sensor | typeof Filter>(
  contract: C,
  moduleId: string,
  user = `${DEVICE}/${moduleId}`,
  extra: { replicaId?: string } = {},
): Promise<ModuleClient<C>> {
  const client = await connect(contract, {
    deviceId: DEVICE,
    moduleId,
    transport: transportOf(user),
    reconnect: { initialDelayInMs: 20, maxDelayInMs: 200 },
    connectTimeoutInMs: 10_000,
    ...extra,
  });
  cleanups.push(() => client.close());
  return client;
}

/** What a raw AMQP operation did: `ok`, or the reply code RabbitMQ closed the channel with. */
async function attempt(
  connection: amqplib.ChannelModel,
  operation: (channel: amqplib.ConfirmChannel) => Promise<unknown>,
): Promise<'ok' | number> {
  const channel = await connection.createConfirmChannel();
  let code: number | undefined;
  channel.on('error', (error: { code?: number }) => {
    code = error.code;
  });
  try {
    await operation(channel);
    await channel.waitForConfirms();
    await new Promise((resolve) => setTimeout(resolve, 50));
  } catch (error) {
    code ??= (error as { code?: number }).code ?? -1;
  }
  await channel.close().catch(() => undefined);
  return code ?? 'ok';
}

/** A raw publish that waits for the broker's confirm. */
function publish(
  channel: amqplib.ConfirmChannel,
  exchange: string,
  key: string,
  body: string,
  options: amqplib.Options.Publish = {},
): Promise<void> {
  return new Promise((resolve, reject) => {
    channel.publish(exchange, key, Buffer.from(body), options, (error: unknown) =>
      error === null || error === undefined ? resolve() : reject(error),
    );
  });
}

/** Ready messages in a queue, as the operator sees them. */
async function count(queue: string): Promise<number> {
  const channel = await operatorRaw.createChannel();
  try {
    return (await channel.checkQueue(queue)).messageCount;
  } finally {
    await channel.close();
  }
}

/** A retained value as the operator reads it (get, then requeue). */
async function peek(queue: string): Promise<string | undefined> {
  const channel = await operatorRaw.createChannel();
  try {
    const message = await channel.get(queue, { noAck: false });
    if (message === false) return undefined;
    channel.nack(message, false, true);
    return message.content.toString();
  } finally {
    await channel.close();
  }
}

async function rejection(promise: Promise<unknown>): Promise<EdgeKitError> {
  const outcome = await promise.then(
    () => new Error('resolved, expected a rejection'),
    (error: unknown) => error,
  );
  if (!isEdgeKitError(outcome)) throw outcome;
  return outcome;
}

beforeAll(async () => {
  const passwords = new Map(plan.principals.map((p) => [p.username, hashRabbitPassword(passwordOf(p.username))]));
  definitions = rabbitmqDefinitions(plan.principals, passwords);
  broker = await startRabbitMQ({ definitionsFile: JSON.stringify(definitions) });
  // A deployment has no guest: "no credentials" must mean no access.
  await broker.rabbitmqctl(['delete_user', 'guest']);
  operatorRaw = await amqplib.connect(urlOf(OPERATOR));
  operatorRaw.on('error', () => undefined);
  service = await connectService({ transport: transportOf(OPERATOR), identity: OPERATOR });
  await service.applyDeployment(DEVICE, manifest);
}, 120_000);

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => undefined);
});

afterAll(async () => {
  await service?.close();
  await operatorRaw?.close().catch(() => undefined);
  await broker?.stop();
});

describe('the rendered definitions', () => {
  it('a user per principal, no tags; modules write only their own exchange and the replies exchange', () => {
    expect(definitions.users.map((u) => u.name)).toEqual([
      `${DEVICE}/${SENSOR}`,
      `${DEVICE}/${FILTER}`,
      `${DEVICE}/${FILTER}/r1`,
      OPERATOR,
    ]);
    expect(definitions.users.every((u) => u.tags.length === 0)).toBe(true);
    const filter = definitions.permissions.find((p) => p.user === `${DEVICE}/${FILTER}`);
    const write = new RegExp(filter?.write ?? '$^');
    expect(write.test(q.fromFilter)).toBe(true);
    expect(write.test('edgekit.replies')).toBe(true);
    for (const name of [q.fromSensor, q.routesUpdates, q.sensorCalls, 'edgekit.observe', 'amq.default']) {
      expect(write.test(name), name).toBe(false);
    }
    const configure = new RegExp(filter?.configure ?? '$^');
    expect(configure.test(q.fromFilter)).toBe(false);
    expect(configure.test(q.filterWill)).toBe(true);
    expect(configure.test(`${q.filterWill}/r1`)).toBe(false);
    const operator = definitions.permissions.find((p) => p.user === OPERATOR);
    expect(operator).toMatchObject({ configure: '^(?:edgekit\\..*|amq\\.gen-.*)$' });
    expect(definitions.bindings).toContainEqual(
      expect.objectContaining({ source: q.fromSensor, destination: q.input1, routing_key: q.input1 }),
    );
    expect(definitions.bindings).not.toContainEqual(
      expect.objectContaining({ source: q.fromFilter, destination: q.input1 }),
    );
  });
});

describe('the legit paths, with the real core', () => {
  it('a message waits for a module that never connected; routes deliver it with the publisher the broker proved', async () => {
    const sensor = await moduleOf(Sensor, SENSOR);
    const sent = await sensor.send('temperatureOutput', { t: 31 });
    expect(sent.destinations).toBe(1);
    const filter = await moduleOf(Filter, FILTER);
    const inbox = new Inbox<{ t: number; publisher: string | undefined; source: string }>();
    await filter.onInput('input1', (msg) => {
      inbox.push({ t: msg.body.t, publisher: msg.publisher, source: msg.source.moduleId });
    });
    expect(await inbox.next(10_000)).toEqual({ t: 31, publisher: `${DEVICE}/${SENSOR}`, source: SENSOR });
    // filter → $upstream: the operator takes it from the queue the plan declared.
    expect((await filter.send('output1', { t: 31 })).destinations).toBe(1);
    const channel = await operatorRaw.createChannel();
    await until(async () => (await channel.checkQueue(q.upstream)).messageCount > 0, 5_000, 'the upstream message');
    const message = await channel.get(q.upstream, { noAck: true });
    await channel.close();
    expect(message === false ? undefined : message.fields.exchange).toBe(q.fromFilter);
    expect(message === false ? undefined : decodeEnvelope(message.content).header.sourceModuleId).toBe(FILTER);
  });

  it('the operator consumes upstream and a module’s dead letters through the service client, as permitted', async () => {
    const filter = await moduleOf(Filter, FILTER);
    expect((await filter.send('output1', { t: 42 })).destinations).toBe(1);
    const upstream = await service.upstream(DEVICE, { prefetch: 1 });
    try {
      // Earlier cases may have left upstream messages: take them until this one.
      for (;;) {
        const next = await within(upstream.next(), 10_000, 'the upstream message');
        if (next.done || next.value.type !== 'message') throw new Error('expected a message');
        expect(next.value.publisher).toBe(`${DEVICE}/${FILTER}`);
        if ((await next.value.decode(json<{ t: number }>())).t !== 42) continue;
        upstream.ack(); // done with it: a break alone would give it back
        break;
      }
    } finally {
      await upstream.close();
    }
    const module = await openAs(`${DEVICE}/${FILTER}`, { identity: `${DEVICE}/${FILTER}` });
    await module.publish(`deadletter/${DEVICE}/${FILTER}`, new TextEncoder().encode('garbage'));
    const dead = service.deadLetters(DEVICE, FILTER);
    const listing = await dead.list({ idleInMs: 500 });
    expect(listing.entries).toMatchObject([{ type: 'undecodable', publisher: `${DEVICE}/${FILTER}` }]);
    expect(await dead.purge({ idleInMs: 500 })).toEqual({ purged: 1, undecodable: 1 });
  });

  it('methods answer, and each handler learns its caller from the broker', async () => {
    const sensor = await moduleOf(Sensor, SENSOR);
    const filter = await moduleOf(Filter, FILTER);
    const callers: unknown[] = [];
    await sensor.handle('ping', (req, { caller }) => {
      callers.push(caller);
      return { n: req.n };
    });
    await filter.handle('reset', (_req, { caller }) => {
      callers.push(caller);
      return { ok: true };
    });
    expect(await filter.invoke(Sensor, SENSOR, 'ping', { n: 7 })).toMatchObject({ status: 200, payload: { n: 7 } });
    expect(await service.invoke(DEVICE, FILTER, 'reset', {})).toMatchObject({ status: 200, payload: { ok: true } });
    expect(callers).toEqual([
      { deviceId: DEVICE, moduleId: FILTER, authenticated: true },
      { operator: 'operator', authenticated: true },
    ]);
  });

  it('the twin: desired read through the module’s view and its changes; reported and presence written', async () => {
    const filter = await moduleOf(Filter, FILTER);
    expect(filter.desired().properties).toEqual({ TemperatureThreshold: 25 });
    const seen = new Inbox<number | undefined>();
    await filter.onDesired((desired) => seen.push(desired.TemperatureThreshold));
    expect(await seen.next()).toBe(25);
    await service.updateDesired(DEVICE, FILTER, { TemperatureThreshold: 30 });
    expect(await seen.next(10_000)).toBe(30);
    await filter.report({ threshold: 30 });
    expect((await service.getTwin(DEVICE, FILTER)).reported.properties).toMatchObject({ threshold: 30 });
    const modules = await service.modules(DEVICE);
    expect(modules.find((m) => m.moduleId === FILTER)?.state).toBe('online');
    await service.updateDesired(DEVICE, FILTER, { TemperatureThreshold: 25 });
  });

  it('a replica has its own user and client id, and shares its module’s input', async () => {
    const sensor = await moduleOf(Sensor, SENSOR);
    const replica = await moduleOf(Filter, FILTER, `${DEVICE}/${FILTER}/r1`, { replicaId: 'r1' });
    const inbox = new Inbox<number>();
    await replica.onInput('input1', (msg) => inbox.push(msg.body.t));
    await sensor.send('temperatureOutput', { t: 12 });
    expect(await inbox.next(10_000)).toBe(12);
  });
});

describe('rogue attempts fail with a typed error and change nothing', () => {
  it('no credentials, a wrong password, a user that is not in the plan: refused at login', async () => {
    for (const transport of [
      transportOf(),
      transportOf(`${DEVICE}/${FILTER}`, 'wrong'),
      transportOf('guest', 'guest'),
      transportOf(`${DEVICE}/intruder`, 'x'),
    ]) {
      const error = await rejection(transport.connect({ clientId: 'rogue' }));
      expect(error.code).toBe('connection-failed');
      expect(error.details.reason).toBe('authentication');
    }
  });

  it("consuming another module's input queue is refused; nothing is taken", async () => {
    const operator = await openAs(OPERATOR, { identity: OPERATOR });
    const header = { messageId: 'for-filter', createdAt: Date.now(), properties: {}, contentType: 'application/json' };
    const envelope = encodeEnvelope({ ...header, sourceDeviceId: DEVICE, sourceModuleId: SENSOR }, bytes('{"t":5}'));
    await operator.publish(`inputs/${DEVICE}/${FILTER}/input1`, envelope);
    expect(await count(q.input1)).toBe(1);
    // The sensor, with its own credentials and identity, through the transport…
    const sensor = await openAs(`${DEVICE}/${SENSOR}`, { identity: `${DEVICE}/${SENSOR}` });
    const refused = await rejection(sensor.consume(`inputs/${DEVICE}/${FILTER}/input1`, { prefetch: 1 }, () => {}));
    expect(refused.code).toBe('not-authorized');
    // …and on the wire: get, consume, purge, delete, declare, bind.
    const raw = await rawAs(`${DEVICE}/${SENSOR}`);
    expect(await attempt(raw, (c) => c.get(q.input1, { noAck: true }))).toBe(403);
    expect(await attempt(raw, (c) => c.consume(q.input1, () => undefined, { exclusive: true }))).toBe(403);
    expect(await attempt(raw, (c) => c.purgeQueue(q.input1))).toBe(403);
    expect(await attempt(raw, (c) => c.deleteQueue(q.input1))).toBe(403);
    expect(await attempt(raw, (c) => c.assertQueue(q.input1, { durable: true }))).toBe(403);
    expect(
      await attempt(raw, async (c) => {
        const { queue } = await c.assertQueue('', { exclusive: true });
        await c.bindQueue(queue, q.fromFilter, q.upstream);
      }),
    ).toBe(403);
    // Another replica's credentials are no better.
    const replica = await rawAs(`${DEVICE}/${FILTER}/r1`);
    expect(await attempt(replica, (c) => c.get(q.sensorDeadLetters, { noAck: true }))).toBe(403);
    expect(await count(q.input1)).toBe(1);
    const filter = await moduleOf(Filter, FILTER);
    const inbox = new Inbox<number>();
    await filter.onInput('input1', (msg) => {
      inbox.push(msg.body.t);
    });
    expect(await inbox.next(10_000)).toBe(5);
  });

  it("publishing into another module's input under another identity, or with forged keys and headers, reaches nothing", async () => {
    // filter's credentials, claiming the sensor's identity: its exchange is the sensor's, which filter may not write.
    const claiming = await openAs(`${DEVICE}/${FILTER}`, { identity: `${DEVICE}/${SENSOR}` });
    const refused = await rejection(claiming.publish(`inputs/${DEVICE}/${FILTER}/input1`, bytes('forged')));
    expect(refused).toMatchObject({ code: 'not-authorized', details: { amqpReplyCode: 403, exchange: q.fromSensor } });
    // The same with the core: its will cannot go through the sensor's exchange either, so it never connects.
    const core = await rejection(
      connect(Sensor, {
        deviceId: DEVICE,
        moduleId: SENSOR,
        transport: transportOf(`${DEVICE}/${FILTER}`),
        connectTimeoutInMs: 2_000,
      }),
    );
    expect(core.code).toBe('not-authorized');

    const raw = await rawAs(`${DEVICE}/${FILTER}`);
    for (const exchange of [
      q.fromSensor,
      q.routesUpdates,
      'edgekit.observe',
      q.sensorCalls,
      'edgekit.replies',
      'edgekit.anonymous',
      '',
    ]) {
      if (exchange === 'edgekit.replies') {
        // Writable (servers answer there), but only reply queues are bound to it: nothing reaches the input.
        expect(await attempt(raw, (c) => publish(c, exchange, q.input1, 'forged', { CC: [q.input1] }))).toBe('ok');
        continue;
      }
      expect(await attempt(raw, (c) => publish(c, exchange, q.input1, 'forged')), exchange || 'default').toBe(403);
    }
    // Its own exchange, with keys and headers naming queues it may not reach: RabbitMQ routes them nowhere.
    expect(
      await attempt(raw, async (c) => {
        await publish(c, q.fromFilter, q.input1, 'forged key');
        await publish(c, q.fromFilter, q.upstream, 'allowed', { CC: [q.input1, q.sensorDeadLetters], BCC: [q.routes] });
        await publish(c, q.fromFilter, 'anything', 'x', { CC: [q.input1] });
      }),
    ).toBe('ok');
    expect(await count(q.input1)).toBe(0);
    expect(await count(q.sensorDeadLetters)).toBe(0);
    expect(await count(q.upstream)).toBe(1);
    const drain = await operatorRaw.createChannel();
    await drain.purgeQueue(q.upstream);
    await drain.close();
  });

  it('publishing to an input its routes do not reach is refused (routed nowhere)', async () => {
    const sensor = await openAs(`${DEVICE}/${SENSOR}`, { identity: `${DEVICE}/${SENSOR}` });
    for (const address of [
      `upstream/${DEVICE}`,
      `inputs/${DEVICE}/${FILTER}/other`,
      `deadletter/${DEVICE}/${FILTER}`,
    ]) {
      const error = await rejection(sensor.publish(address, bytes('not routed')));
      expect(error.code, address).toBe('not-authorized');
      expect(error.message).toMatch(/routed .* nowhere/);
    }
    expect(await count(q.upstream)).toBe(0);
    expect(await count(q.filterDeadLetters)).toBe(0);
    // The connection is fine: what it may do still works.
    await sensor.publish(`inputs/${DEVICE}/${FILTER}/input1`, bytes('routed'));
    expect(await count(q.input1)).toBe(1);
    const drain = await operatorRaw.createChannel();
    await drain.purgeQueue(q.input1);
    await drain.close();
  });

  it("writing another module's reported or presence, or desired, routes, the deployment record: refused, unchanged", async () => {
    const sensor = await moduleOf(Sensor, SENSOR);
    await sensor.report({ sent: 1 });
    await until(async () => (await peek(q.sensorReported)) !== undefined, 5_000, 'the reported document');
    // Closed, so nothing but the rogue writes while the values are compared.
    await sensor.close();
    await until(async () => (await peek(q.sensorPresence))?.includes('offline') === true, 5_000, 'offline');
    const before = await Promise.all(
      [q.sensorReported, q.sensorPresence, q.filterDesired, q.routes, q.deployment].map(peek),
    );
    const filter = await openAs(`${DEVICE}/${FILTER}`, { identity: `${DEVICE}/${FILTER}` });
    for (const key of [
      `twin/${DEVICE}/${SENSOR}/reported`,
      `presence/${DEVICE}/${SENSOR}`,
      `twin/${DEVICE}/${FILTER}/desired`,
      `routes/${DEVICE}`,
      `deployment/${DEVICE}`,
    ]) {
      const error = await rejection(filter.setRetained(key, bytes('{"forged":true}')));
      expect(error.code, key).toBe('not-authorized');
      const deleted = await rejection(filter.setRetained(key, null));
      expect(deleted.code, key).toBe('not-authorized');
    }
    const raw = await rawAs(`${DEVICE}/${FILTER}`);
    expect(
      await attempt(raw, async (c) => {
        await publish(c, q.fromFilter, q.routes, 'forged', { CC: [q.filterDesired, q.deployment] });
        await publish(c, q.fromFilter, 'edgekit.retained.presence.gw-1.filter', 'x', { CC: [q.sensorPresence] });
      }),
    ).toBe('ok');
    expect(await attempt(raw, (c) => publish(c, q.routesUpdates, '', 'forged'))).toBe(403);
    const after = await Promise.all(
      [q.sensorReported, q.sensorPresence, q.filterDesired, q.routes, q.deployment].map(peek),
    );
    expect(after).toEqual(before);
    expect((await service.getTwin(DEVICE, FILTER)).desired.properties).toEqual({ TemperatureThreshold: 25 });
    expect((await service.deployment(DEVICE))?.state).toBe('applied');
  });

  it("reading or watching another module's desired properties is refused", async () => {
    const filter = await openAs(`${DEVICE}/${FILTER}`, { identity: `${DEVICE}/${FILTER}` });
    expect((await rejection(filter.getRetained(`twin/${DEVICE}/${SENSOR}/desired`))).code).toBe('not-authorized');
    expect((await rejection(filter.watchRetained(`twin/${DEVICE}/${SENSOR}/desired`, () => {}))).code).toBe(
      'not-authorized',
    );
    const raw = await rawAs(`${DEVICE}/${FILTER}`);
    expect(await attempt(raw, (c) => c.get(q.sensorDesired, { noAck: false }))).toBe(403);
    expect(await attempt(raw, (c) => c.get(q.routes, { noAck: false }))).toBe(403);
    for (const exchange of [q.sensorDesiredUpdates, 'edgekit.observe']) {
      expect(
        await attempt(raw, async (c) => {
          const { queue } = await c.assertQueue('', { exclusive: true });
          await c.bindQueue(queue, exchange, '#');
        }),
        exchange,
      ).toBe(403);
    }
    // The replies exchange it may read, but only its own reply keys.
    expect(
      await attempt(raw, async (c) => {
        const { queue } = await c.assertQueue('', { exclusive: true });
        await c.bindQueue(queue, 'edgekit.replies', '#');
      }),
    ).toBe(403);
    // Nor can it watch the messages that flow, or another module's exchange.
    expect((await rejection(filter.observe(`inputs/${DEVICE}/*/*`, () => {}))).code).toBe('not-authorized');
    expect(
      await attempt(raw, async (c) => {
        const { queue } = await c.assertQueue('', { exclusive: true });
        await c.bindQueue(queue, q.fromSensor, q.input1);
      }),
    ).toBe(403);
  });

  it('a module that consumes its view of the routes empties only its own copy; declareRabbitAccess restores it', async () => {
    const routes = await peek(q.routes);
    expect(routes).toBeDefined();
    const raw = await rawAs(`${DEVICE}/${FILTER}`);
    // RabbitMQ's read permission includes get + ack: the filter can take the value out of its view…
    expect(
      await attempt(raw, async (c) => {
        const message = await c.get(q.filterRoutesView, { noAck: false });
        if (message === false) throw new Error('the view is empty');
        c.ack(message);
      }),
    ).toBe('ok');
    expect(await count(q.filterRoutesView)).toBe(0);
    // …which harms nobody else: the route table and the sensor's view are as they were.
    expect(await peek(q.routes)).toBe(routes);
    expect(await peek(q.sensorRoutesView)).toBe(routes);
    const operator = await openAs(OPERATOR, { identity: OPERATOR });
    const declared = await declareRabbitAccess(operator, plan.principals);
    expect(declared.seededViews).toEqual([q.filterRoutesView]);
    expect(await peek(q.filterRoutesView)).toBe(routes);
    expect((await declareRabbitAccess(operator, plan.principals)).seededViews).toEqual([]);
  });

  it('invoking a method under another identity is refused', async () => {
    const sensor = await moduleOf(Sensor, SENSOR);
    const calls: unknown[] = [];
    await sensor.handle('ping', (req) => {
      calls.push(req);
      return req;
    });
    const claiming = await openAs(`${DEVICE}/${FILTER}`, { identity: `${DEVICE}/${SENSOR}` });
    const request = JSON.stringify({ method: 'ping', payload: { n: 1 }, timeoutInMs: 5_000 });
    const error = await rejection(
      claiming.request(`methods/${DEVICE}/${SENSOR}`, bytes(request), { timeoutInMs: 5_000 }),
    );
    // Refused before anything is sent: its reply queue would be bound with the sensor's reply key.
    expect(error).toMatchObject({ code: 'not-authorized', details: { amqpReplyCode: 403 } });
    const raw = await rawAs(`${DEVICE}/${FILTER}`);
    for (const exchange of [q.fromSensor, q.sensorCalls, '']) {
      expect(
        await attempt(raw, (c) => publish(c, exchange, `edgekit.rpc.methods.gw-1.${SENSOR}`, request)),
        exchange || 'default',
      ).toBe(403);
    }
    expect(calls).toEqual([]);
  });

  it("pointing a method's reply at another module's input: the answer lands nowhere", async () => {
    const filter = await moduleOf(Filter, FILTER);
    const inputs: unknown[] = [];
    await filter.onInput('input1', (msg) => {
      inputs.push(msg.body);
    });
    const answered = new Inbox<string>();
    await filter.handle('reset', () => {
      answered.push('reset');
      return { ok: true };
    });
    const raw = await rawAs(`${DEVICE}/${SENSOR}`);
    const request = JSON.stringify({ method: 'reset', payload: {}, timeoutInMs: 5_000 });
    for (const replyTo of [q.input1, 'amq.rabbitmq.reply-to.g1h2AA9yZXBseUAx', q.filterDeadLetters]) {
      expect(
        await attempt(raw, (c) =>
          publish(c, q.fromSensor, q.filterRpc, request, { replyTo, correlationId: 'c1', expiration: '5000' }),
        ),
      ).toBe('ok');
      await answered.next(5_000, `the request with reply-to ${replyTo}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(inputs).toEqual([]);
    expect(await count(q.filterDeadLetters)).toBe(0);
    // The server goes on answering everyone else.
    expect(await service.invoke(DEVICE, FILTER, 'reset', {})).toMatchObject({ status: 200 });
  });

  it("forging another module's presence through a will: the will reaches nothing, or the declaration is refused", async () => {
    const before = await peek(q.sensorPresence);
    const raw = await rawAs(`${DEVICE}/${FILTER}`);
    // Its own will queue, dead-lettering through its own exchange under the sensor's presence key: routed nowhere.
    expect(
      await attempt(raw, async (c) => {
        await c.assertQueue(q.filterWill, {
          durable: true,
          arguments: {
            'x-dead-letter-exchange': q.fromFilter,
            'x-dead-letter-routing-key': q.sensorPresence,
            'x-message-ttl': 0,
          },
        });
        await c.bindQueue(q.filterWill, q.fromFilter, q.filterWill);
        await publish(c, q.fromFilter, q.filterWill, '{"state":"offline","sdk":"forged"}');
      }),
    ).toBe('ok');
    // Dead-lettering straight to the retained exchange, or an alternate exchange there: refused at declaration.
    expect(
      await attempt(raw, (c) =>
        c.assertQueue('', { exclusive: true, arguments: { 'x-dead-letter-exchange': q.sensorPresenceUpdates } }),
      ),
    ).toBe(403);
    expect(
      await attempt(raw, (c) =>
        c.assertExchange(q.filterWill, 'direct', {
          durable: false,
          arguments: { 'alternate-exchange': q.sensorPresenceUpdates },
        }),
      ),
    ).toBe(403);
    // Through the transport: a will for the sensor's presence key, fired by a cut connection, lands nowhere.
    const proxy: TcpProxy = await startTcpProxy(broker.port);
    cleanups.push(() => proxy.close());
    const forger = await amqp({
      url: `amqp://127.0.0.1:${proxy.port}`,
      username: `${DEVICE}/${FILTER}`,
      password: passwordOf(`${DEVICE}/${FILTER}`),
    }).connect({
      clientId: `${DEVICE}/${FILTER}`,
      identity: `${DEVICE}/${FILTER}`,
      will: { key: `presence/${DEVICE}/${SENSOR}`, value: bytes('{"state":"offline","sdk":"forged"}') },
    });
    proxy.cut();
    await within(forger.closed, 5_000, 'the cut');
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(await peek(q.sensorPresence)).toBe(before);
    const cleanup = await operatorRaw.createChannel();
    await cleanup.deleteQueue(q.filterWill);
    await cleanup.close();
  });

  it("taking another module's client id (its will queue) is refused", async () => {
    const sensor = await moduleOf(Sensor, SENSOR);
    expect(sensor.status().next).toBeDefined();
    const stealing = await rejection(
      transportOf(`${DEVICE}/${FILTER}`).connect({
        clientId: `${DEVICE}/${SENSOR}`,
        identity: `${DEVICE}/${FILTER}`,
        will: { key: `presence/${DEVICE}/${FILTER}`, value: bytes('{}') },
      }),
    );
    expect(stealing.code).toBe('not-authorized');
    // A replica's credentials cannot take its module's own client id either.
    const replica = await rejection(
      transportOf(`${DEVICE}/${FILTER}/r1`).connect({
        clientId: `${DEVICE}/${FILTER}`,
        identity: `${DEVICE}/${FILTER}`,
        will: { key: `presence/${DEVICE}/${FILTER}`, value: bytes('{}') },
      }),
    );
    expect(replica.code).toBe('not-authorized');
    const raw = await rawAs(`${DEVICE}/${FILTER}`);
    expect(await attempt(raw, (c) => c.consume(q.sensorWill, () => undefined, { exclusive: true }))).toBe(403);
    expect(await attempt(raw, (c) => c.deleteQueue(q.sensorWill))).toBe(403);
    expect(await attempt(raw, (c) => c.get(q.sensorWill, { noAck: true }))).toBe(403);
    // The sensor is still online, its will still armed.
    const modules = await service.modules(DEVICE);
    expect(modules.find((m) => m.moduleId === SENSOR)?.state).toBe('online');
  });
});

describe('definitions imported at run time (rabbitmqctl import_definitions)', () => {
  it('a module added to a running deployment reads the current values once declareRabbitAccess copied them', async () => {
    const grown = structuredClone(manifest) as {
      modulesContent: { $edgeAgent: { 'properties.desired': { modules: Record<string, unknown> } } };
    };
    grown.modulesContent.$edgeAgent['properties.desired'].modules.extra = { type: 'docker', settings: {} };
    const next = planAccess(readDeployment(grown), DEVICE);
    const passwords = new Map(next.principals.map((p) => [p.username, hashRabbitPassword(passwordOf(p.username))]));
    const file = path.join(await mkdtemp(path.join(tmpdir(), 'edgekit-definitions-')), 'definitions.json');
    await writeFile(file, JSON.stringify(rabbitmqDefinitions(next.principals, passwords)));
    await broker.rabbitmqctl(['import_definitions', file]);
    // The import is asynchronous: wait until the new user may log in.
    let extra: TransportConnection | undefined;
    await until(
      async () => {
        extra = await transportOf(`${DEVICE}/extra`)
          .connect({ clientId: `${DEVICE}/extra`, identity: `${DEVICE}/extra` })
          .catch(() => undefined);
        return extra !== undefined;
      },
      20_000,
      'the imported user',
    );
    cleanups.push(() => extra?.close() ?? Promise.resolve());
    const connection = extra as TransportConnection;
    // Its view of the routes was created after the routes were written: empty until copied.
    expect(await connection.getRetained(`routes/${DEVICE}`)).toBeUndefined();
    const operator = await openAs(OPERATOR, { identity: OPERATOR });
    const declared = await declareRabbitAccess(operator, next.principals);
    expect(declared.seededViews).toContain('edgekit.view.gw-1.extra.routes.gw-1');
    expect(text(await connection.getRetained(`routes/${DEVICE}`))).toBe(await peek(q.routes));
    // And the old modules keep working.
    const sensor = await moduleOf(Sensor, SENSOR);
    expect((await sensor.send('temperatureOutput', { t: 1 })).destinations).toBe(1);
  });

  it('a route removed: declareRabbitAccess with the previous plan removes the binding, and the sender is refused', async () => {
    const narrowed = structuredClone(manifest) as {
      modulesContent: { $edgeHub: { 'properties.desired': { routes: Record<string, unknown> } } };
    };
    delete narrowed.modulesContent.$edgeHub['properties.desired'].routes.sensorToFilter;
    const next = planAccess(readDeployment(narrowed), DEVICE, { replicas: { [FILTER]: ['r1'] } });
    const operator = await openAs(OPERATOR, { identity: OPERATOR });
    const purge = await operatorRaw.createChannel();
    await purge.purgeQueue(q.input1);
    await purge.close();
    const declared = await declareRabbitAccess(operator, next.principals, { previous: plan.principals });
    // The sensor's binding to filter's input1, and the observe exchange's copy of it.
    expect(declared.unbound).toBe(2);
    const sensor = await openAs(`${DEVICE}/${SENSOR}`, { identity: `${DEVICE}/${SENSOR}` });
    const refused = await rejection(sensor.publish(`inputs/${DEVICE}/${FILTER}/input1`, bytes('no longer routed')));
    expect(refused.code).toBe('not-authorized');
    expect(await count(q.input1)).toBe(0);
    // Back to the plan as it was.
    expect((await declareRabbitAccess(operator, plan.principals, { previous: next.principals })).unbound).toBe(0);
    await sensor.publish(`inputs/${DEVICE}/${FILTER}/input1`, bytes('routed again'));
    expect(await count(q.input1)).toBe(1);
    const drain = await operatorRaw.createChannel();
    await drain.purgeQueue(q.input1);
    await drain.close();
  });
});
