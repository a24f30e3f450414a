/**
 * Least privilege enforced by a real Mosquitto (issue 11): the access plan of examples/deployment.json on device
 * gw-1, plus a deployed module `rogue` that no route mentions, rendered by `mosquittoDynamicSecurity` and loaded with
 * `mosquittoSecurityConfig`. The legitimate paths work with the real core (modules with `connect`, the operator with
 * `connectService`); every rogue attempt — with another module's credentials, identity or client id, or none — fails
 * with a typed error (or is dropped) and leaves nothing changed, as the operator reads back.
 */
import { readFileSync } from 'node:fs';
import * as realMqtt from 'mqtt';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { json } from '../../../src/codecs/codec.js';
import { typed } from '../../../src/codecs/schema.js';
import { connect } from '../../../src/connect.js';
import { defineModule, method } from '../../../src/core/contract.js';
import { decodeEnvelope } from '../../../src/core/envelope.js';
import type { ModuleClient } from '../../../src/core/types.js';
import { type EdgeKitError, isEdgeKitError } from '../../../src/errors.js';
import { type Principal, planAccess } from '../../../src/service/access.js';
import { connectService, type ServiceClient } from '../../../src/service/client.js';
import { readDeployment } from '../../../src/service/deployment.js';
import type { TransportConnection, TransportConnectOptions } from '../../../src/transport.js';
import {
  hashMosquittoPassword,
  type MosquittoPasswordHash,
  mosquittoDynamicSecurity,
  mosquittoSecurityConfig,
  mqtt,
} from '../../../src/transports/mqtt/index.js';
import { type Mosquitto, startMosquitto } from '../brokers/mosquitto.js';
import { startTcpProxy, type TcpProxy } from '../support/tcp-proxy.js';
import { Inbox } from './support/wait.js';

const DEVICE = 'gw-1';
const SENSOR = 'SimulatedTemperatureSensor';
const OPERATOR = '$operator/operator';
const WAIT = 10_000;
const utf8 = (value: string) => new TextEncoder().encode(value);
const text = (bytes: Uint8Array | undefined) => (bytes === undefined ? undefined : new TextDecoder().decode(bytes));

const manifest = JSON.parse(readFileSync(new URL('../../../examples/deployment.json', import.meta.url), 'utf8'));
// The example deployment and one more module that no route mentions: the rogue of the attempts below.
manifest.modulesContent.$edgeAgent['properties.desired'].modules.rogue = {
  version: '1.0',
  type: 'docker',
  status: 'running',
  restartPolicy: 'always',
  settings: { image: 'example.azurecr.io/rogue:0.1.0' },
};
const plan = planAccess(readDeployment(manifest), DEVICE, { replicas: { filter: ['r1'] } });
const password = (username: string) => `pw:${username}:${username.length}`;

type Reading = { machine: { temperature: number } };
const Sensor = defineModule({ outputs: { temperatureOutput: json<Reading>() } });
const Filter = defineModule({
  inputs: { input1: json<Reading>() },
  outputs: { output1: json<Reading>() },
  desired: typed<{ TemperatureThreshold?: number }>(),
  reported: typed<{ TemperatureThreshold: number }>(),
  methods: { ping: method(typed<Record<string, never>>(), typed<{ caller: unknown }>()) },
});

let broker: Mosquitto;
let operator: ServiceClient;
/** The operator's own transport connection, to read back what the rogue attempts could have changed. */
let op: TransportConnection;
const open: Array<{ close(): Promise<void> }> = [];
const proxies: TcpProxy[] = [];

const transportAs = (username: string | undefined, secret = username && password(username), url = broker.url) =>
  mqtt({
    url,
    connectTimeoutInMs: 5_000,
    ...(username === undefined ? {} : { username }),
    ...(secret === undefined ? {} : { password: secret }),
  });

async function rawAs(username: string, options: Partial<TransportConnectOptions> = {}) {
  const connection = await transportAs(username).connect({ clientId: username, identity: username, ...options });
  open.push(connection);
  return connection;
}

async function moduleClient<C extends typeof Sensor | typeof Filter>(contract: C, moduleId: string) {
  const client = (await connect(contract, {
    transport: transportAs(`${DEVICE}/${moduleId}`),
    deviceId: DEVICE,
    moduleId,
  })) as ModuleClient<C>;
  open.push(client);
  return client;
}

/** What `promise` rejected with; fails the test if it resolved. */
async function rejection(promise: Promise<unknown>): Promise<EdgeKitError> {
  const outcome = await promise.then(
    (value) => ({ resolved: value }),
    (error: unknown) => ({ error }),
  );
  if (!('error' in outcome)) throw new Error(`expected a rejection, got ${JSON.stringify(outcome.resolved)}`);
  expect(isEdgeKitError(outcome.error)).toBe(true);
  return outcome.error as EdgeKitError;
}

async function notAuthorized(promise: Promise<unknown>): Promise<void> {
  const error = await rejection(promise);
  expect(error.code, error.message).toBe('not-authorized');
  expect(error.details).toMatchObject({ reasonCode: 135 });
}

async function refusedConnect(promise: Promise<unknown>): Promise<void> {
  const error = await rejection(promise);
  expect(error.code).toBe('connection-failed');
  expect(error.details).toMatchObject({ reason: 'not-authorized', reasonCode: 135 });
}

/** The retained values the rogue attempts aim at, as the operator reads them. */
async function snapshot(): Promise<Record<string, string | undefined>> {
  const keys = [
    `twin/${DEVICE}/filter/desired`,
    `twin/${DEVICE}/filter/reported`,
    `presence/${DEVICE}/filter`,
    `routes/${DEVICE}`,
    `deployment/${DEVICE}`,
  ];
  return Object.fromEntries(await Promise.all(keys.map(async (key) => [key, text(await op.getRetained(key))])));
}

beforeAll(async () => {
  const passwords = new Map<string, MosquittoPasswordHash>(
    plan.principals.map((p: Principal) => [p.username, hashMosquittoPassword(password(p.username))]),
  );
  broker = await startMosquitto({
    dynamicSecurity: {
      json: mosquittoDynamicSecurity(plan.principals, passwords),
      config: (file) => mosquittoSecurityConfig({ dynamicSecurityFile: file }),
    },
  });
  operator = await connectService({ transport: transportAs(OPERATOR), identity: OPERATOR });
  await operator.applyDeployment(DEVICE, manifest);
  op = await transportAs(OPERATOR).connect({ clientId: 'operator-reader', identity: OPERATOR });
});

afterEach(async () => {
  await Promise.all(open.splice(0).map((c) => c.close().catch(() => undefined)));
  await Promise.all(proxies.splice(0).map((p) => p.close()));
});

afterAll(async () => {
  await op?.close();
  await operator?.close();
  await broker?.stop();
});

describe('the rendering', () => {
  it('denies by default, binds each module user to its client id, shares a role among replicas', () => {
    const withReplicas = planAccess(readDeployment(manifest), DEVICE, { replicas: { filter: ['r1'] } });
    const config = mosquittoDynamicSecurity(withReplicas.principals, new Map());
    expect(config.defaultACLAccess).toEqual({
      publishClientSend: false,
      publishClientReceive: false,
      subscribe: false,
      unsubscribe: false,
    });
    const filter = config.clients.find((c) => c.username === 'gw-1/filter');
    const replica = config.clients.find((c) => c.username === 'gw-1/filter/r1');
    expect(filter?.clientid).toBe('gw-1/filter');
    expect(replica?.clientid).toBe('gw-1/filter/r1');
    expect(replica?.roles[0]).toEqual(filter?.roles[0]);
    expect(config.clients.find((c) => c.username === OPERATOR)?.clientid).toBeUndefined();
    const role = config.roles.find((r) => r.rolename === filter?.roles[0]?.rolename);
    const sends = role?.acls.filter((a) => a.acltype === 'publishClientSend').map((a) => a.topic);
    expect(sends).toEqual(
      expect.arrayContaining([
        'edgekit/v1/upstream/gw-1/gw-1/filter',
        'edgekit/v1/deadletter/gw-1/filter/gw-1/filter',
        'edgekit/v1/methods/gw-1/+/gw-1/filter',
        'edgekit/v1/twin/gw-1/filter/reported',
        'edgekit/v1/presence/gw-1/filter',
      ]),
    );
    // Nothing a module publishes is outside its own identity or its own retained keys, but replies and its sentinels.
    for (const topic of sends ?? []) {
      expect(topic.includes('/gw-1/filter') || topic.endsWith('/reply'), topic).toBe(true);
    }
    const own = config.roles.find((r) => r.rolename === filter?.roles[1]?.rolename);
    expect(own?.acls.map((a) => `${a.acltype} ${a.topic}`)).toContain(
      'publishClientSend edgekit/v1/@client/gw-1/filter/sync',
    );
  });

  it('rejects bad input with TypeError/RangeError', () => {
    expect(() => mosquittoDynamicSecurity('x' as never, new Map())).toThrow(TypeError);
    expect(() => mosquittoDynamicSecurity(plan.principals, new Map([['nobody', hashMosquittoPassword('x')]]))).toThrow(
      RangeError,
    );
    expect(() => mosquittoDynamicSecurity([...plan.principals, plan.principals[0]!], new Map())).toThrow(RangeError);
    expect(() => mosquittoDynamicSecurity(plan.principals, new Map(), { topicPrefix: 'no-slash' })).toThrow(RangeError);
    expect(() => hashMosquittoPassword('')).toThrow(RangeError);
    expect(() => hashMosquittoPassword('x', { iterations: 0 })).toThrow(RangeError);
    expect(() => mosquittoSecurityConfig({ dynamicSecurityFile: 'a\nplugin evil.so' })).toThrow(RangeError);
  });
});

describe('the legitimate paths, with the real core', () => {
  it('routes deliver with the proven publisher, methods answer with the proven caller, twins work', async () => {
    const upstream = new Inbox<string>();
    const consumer = await op.consume(`upstream/${DEVICE}`, { prefetch: 10 }, (delivery) => {
      upstream.push(`${delivery.publisher}`);
      delivery.ack();
    });
    open.push(consumer);
    const filter = await moduleClient(Filter, 'filter');
    const received = new Inbox<{ publisher: string | undefined; source: unknown }>();
    await filter.onInput('input1', async (message) => {
      received.push({ publisher: message.publisher, source: message.source });
      await filter.send('output1', message.body);
    });
    const callers: unknown[] = [];
    await filter.handle('ping', (_request, context) => {
      callers.push(context.caller);
      return { caller: context.caller };
    });
    const desired = new Inbox<number | undefined>();
    await filter.onDesired((document) => desired.push(document.TemperatureThreshold));
    const sensor = await moduleClient(Sensor, SENSOR);

    const sent = await sensor.send('temperatureOutput', { machine: { temperature: 30 } });
    expect(sent.destinations).toBe(1);
    await received.take(1, WAIT);
    expect(received.items[0]).toEqual({
      publisher: `${DEVICE}/${SENSOR}`,
      source: { deviceId: DEVICE, moduleId: SENSOR, output: 'temperatureOutput' },
    });
    await upstream.take(1, WAIT);
    expect(upstream.items).toEqual([`${DEVICE}/filter`]);

    expect(await operator.invoke(DEVICE, 'filter', 'ping', {})).toMatchObject({ status: 200 });
    expect(await sensor.invoke(Filter, 'filter', 'ping', {})).toMatchObject({ ok: true });
    expect(callers).toEqual([
      { operator: 'operator', authenticated: true },
      { deviceId: DEVICE, moduleId: SENSOR, authenticated: true },
    ]);

    await filter.report({ TemperatureThreshold: 27 });
    expect((await operator.getTwin(DEVICE, 'filter')).reported.properties).toEqual({ TemperatureThreshold: 27 });
    await operator.updateDesired(DEVICE, 'filter', { TemperatureThreshold: 28 });
    await desired.until((values) => values.includes(28), WAIT, 'the new desired threshold');
    expect((await filter.getTwin()).desired.properties).toMatchObject({ TemperatureThreshold: 28 });
  });

  it('a replica consumes its module’s inputs and serves its methods in a share group, as the module', async () => {
    const replica = await mqtt({
      url: broker.url,
      username: `${DEVICE}/filter/r1`,
      password: password(`${DEVICE}/filter/r1`),
      shareGroup: 'edgekit',
      // Its shared subscriptions go with it: an offline member would keep taking its share.
      sessionExpiryInSeconds: 0,
    }).connect({ clientId: `${DEVICE}/filter/r1`, identity: `${DEVICE}/filter` });
    open.push(replica);
    const got = new Inbox<string>();
    await replica.consume(`inputs/${DEVICE}/filter/input1`, { prefetch: 10 }, (d) => {
      got.push(`${text(d.bytes)} from ${d.publisher}`);
      d.ack();
    });
    await replica.serve(`methods/${DEVICE}/filter`, async (request) => request);
    const sensor = await rawAs(`${DEVICE}/${SENSOR}`);
    await sensor.publish(`inputs/${DEVICE}/filter/input1`, utf8('shared'));
    await got.take(1, WAIT);
    expect(got.items).toEqual([`shared from ${DEVICE}/${SENSOR}`]);
    expect(text(await sensor.request(`methods/${DEVICE}/filter`, utf8('echo'), { timeoutInMs: WAIT }))).toBe('echo');
  });
});

describe('rogue attempts: each fails with a typed error and changes nothing', () => {
  it('connecting anonymously, with a wrong password, or with another module’s client id is refused', async () => {
    await refusedConnect(transportAs(undefined).connect({ clientId: 'anonymous' }));
    await refusedConnect(transportAs('gw-1/filter', 'wrong').connect({ clientId: 'gw-1/filter' }));
    // The filter is connected: a rogue asking for its client id would take its session over.
    const filter = await moduleClient(Filter, 'filter');
    const inputs = new Inbox<number>();
    await filter.onInput('input1', (message) => inputs.push(message.body.machine.temperature));
    await refusedConnect(transportAs('gw-1/rogue').connect({ clientId: 'gw-1/filter', identity: 'gw-1/filter' }));
    // The same through the core (which retries a refused first connect until its connect timeout).
    await refusedConnect(
      connect(Filter, {
        transport: transportAs('gw-1/rogue'),
        deviceId: DEVICE,
        moduleId: 'filter',
        connectTimeoutInMs: 1_000,
      }),
    );
    // The filter is still connected and still gets its inputs.
    const sensor = await moduleClient(Sensor, SENSOR);
    await sensor.send('temperatureOutput', { machine: { temperature: 31 } });
    await inputs.take(1, WAIT);
    expect(inputs.items).toEqual([31]);
  });

  it('consuming or observing another module’s input is refused, and nothing reaches the rogue', async () => {
    const rogue = await rawAs('gw-1/rogue');
    const stolen: Uint8Array[] = [];
    await notAuthorized(
      rogue.consume(`inputs/${DEVICE}/filter/input1`, { prefetch: 10 }, (d) => {
        stolen.push(d.bytes);
        d.ack();
      }),
    );
    await notAuthorized(rogue.observe(`inputs/${DEVICE}/*/*`, (_a, bytes) => stolen.push(bytes)));
    await notAuthorized(rogue.getRetained(`twin/${DEVICE}/filter/desired`));
    await rogue.close();
    // A raw client with the rogue's credentials: no filter of the filter's input, plain, shared or wildcard.
    const raw = await realMqtt.connectAsync(broker.url, {
      protocolVersion: 5,
      clientId: 'gw-1/rogue',
      username: 'gw-1/rogue',
      password: password('gw-1/rogue'),
      reconnectPeriod: 0,
    });
    const rawGot: string[] = [];
    raw.on('message', (topic) => rawGot.push(topic));
    for (const filterTopic of [
      'edgekit/v1/inputs/gw-1/filter/input1/#',
      '$share/g/edgekit/v1/inputs/gw-1/filter/input1/#',
      'edgekit/v1/inputs/gw-1/+/+/#',
      'edgekit/v1/#',
      '#',
    ]) {
      const granted = await raw.subscribeAsync(filterTopic, { qos: 1 }).catch((e: unknown) => e);
      expect(granted).toBeInstanceOf(Error);
    }
    const filter = await moduleClient(Filter, 'filter');
    const inputs = new Inbox<number>();
    await filter.onInput('input1', (message) => inputs.push(message.body.machine.temperature));
    const sensor = await moduleClient(Sensor, SENSOR);
    await sensor.send('temperatureOutput', { machine: { temperature: 40 } });
    await inputs.take(1, WAIT);
    await raw.endAsync();
    expect(stolen).toEqual([]);
    expect(rawGot).toEqual([]);
  });

  it('publishing into an input under another identity, a forged one, none, or off its routes is refused', async () => {
    const input = `inputs/${DEVICE}/filter/input1`;
    const filter = await rawAs(`${DEVICE}/filter`);
    const got = new Inbox<string>();
    await filter.consume(input, { prefetch: 10 }, (d) => {
      got.push(`${text(d.bytes)} from ${d.publisher}`);
      d.ack();
    });
    // Its own identity, but no route of the rogue reaches the filter.
    const rogue = await rawAs('gw-1/rogue');
    await notAuthorized(rogue.publish(input, utf8('x')));
    await notAuthorized(rogue.publish(`upstream/${DEVICE}`, utf8('x')));
    await rogue.close();
    // The sensor's identity (a route of the sensor does reach the input), a made-up one, the operator's, and none.
    for (const identity of [`${DEVICE}/${SENSOR}`, `${DEVICE}/nobody`, OPERATOR, undefined]) {
      const forger = await transportAs('gw-1/rogue').connect({
        clientId: 'gw-1/rogue',
        ...(identity === undefined ? {} : { identity }),
      });
      open.push(forger);
      await notAuthorized(forger.publish(input, utf8('forged')));
      await forger.close();
    }
    // The sensor itself may publish only where its routes go.
    const sensor = await rawAs(`${DEVICE}/${SENSOR}`);
    await notAuthorized(sensor.publish(`inputs/${DEVICE}/filter/other`, utf8('x')));
    await notAuthorized(sensor.publish(`inputs/${DEVICE}/rogue/in`, utf8('x')));
    await notAuthorized(sensor.publish(`upstream/${DEVICE}`, utf8('x')));
    await notAuthorized(sensor.publish(`deadletter/${DEVICE}/filter`, utf8('x')));
    await sensor.publish(input, utf8('allowed'));
    // The filter's input got exactly the allowed message: anything accepted before it would have come first.
    await got.take(1, WAIT);
    expect(got.items).toEqual([`allowed from ${DEVICE}/${SENSOR}`]);
  });

  it('writing another module’s reported, desired or presence, the routes or the deployment record is refused', async () => {
    const before = await snapshot();
    const rogue = await rawAs('gw-1/rogue');
    const value = utf8('{"version":999,"properties":{"TemperatureThreshold":-1}}');
    for (const key of Object.keys(before)) {
      await notAuthorized(rogue.setRetained(key, value));
      await notAuthorized(rogue.setRetained(key, null));
    }
    // A module may not write its own desired document either: only operators do.
    await rogue.close();
    const filter = await rawAs(`${DEVICE}/filter`);
    await notAuthorized(filter.setRetained(`twin/${DEVICE}/filter/desired`, value));
    await notAuthorized(filter.setRetained(`routes/${DEVICE}`, utf8('{"routes":{}}')));
    await filter.close();
    expect(await snapshot()).toEqual(before);
  });

  it('invoking a method under another caller’s identity is refused, and the handler never runs', async () => {
    const filter = await moduleClient(Filter, 'filter');
    const callers: unknown[] = [];
    await filter.handle('ping', (_request, context) => {
      callers.push(context.caller);
      return { caller: context.caller };
    });
    const request = utf8(JSON.stringify({ method: 'ping', payload: {}, timeoutInMs: 5_000 }));
    for (const identity of [`${DEVICE}/${SENSOR}`, OPERATOR]) {
      const forger = await rawAs('gw-1/rogue', { identity });
      await notAuthorized(forger.request(`methods/${DEVICE}/filter`, request, { timeoutInMs: 5_000 }));
      await forger.close();
    }
    // Under its own identity the rogue may call (the plan lets a module call its device's methods): proven as itself.
    const rogue = await rawAs('gw-1/rogue');
    await rogue.request(`methods/${DEVICE}/filter`, request, { timeoutInMs: 5_000 });
    expect(callers).toEqual([{ deviceId: DEVICE, moduleId: 'rogue', authenticated: true }]);
  });

  it('a reply pointed at another module’s input or at the server’s own outputs is dropped; nothing arrives there', async () => {
    const upstream = new Inbox<string>();
    const consumer = await op.consume(`upstream/${DEVICE}`, { prefetch: 10 }, (delivery) => {
      let what: string;
      try {
        what = text(decodeEnvelope(delivery.bytes).body) ?? '';
      } catch {
        what = `not an envelope: ${text(delivery.bytes)}`;
      }
      upstream.push(`${what} from ${delivery.publisher}`);
      delivery.ack();
    });
    open.push(consumer);
    const filter = await moduleClient(Filter, 'filter');
    let pings = 0;
    await filter.handle('ping', () => {
      pings += 1;
      return { caller: 'x' };
    });
    const raw = await realMqtt.connectAsync(broker.url, {
      protocolVersion: 5,
      clientId: 'gw-1/rogue',
      username: 'gw-1/rogue',
      password: password('gw-1/rogue'),
      reconnectPeriod: 0,
    });
    const request = JSON.stringify({ method: 'ping', payload: {}, timeoutInMs: 5_000 });
    const requestTopic = 'edgekit/v1/methods/gw-1/filter/gw-1/rogue';
    for (const responseTopic of [
      // Topics the filter may publish to: without the check its reply would be a message under its name.
      'edgekit/v1/upstream/gw-1/gw-1/filter',
      'edgekit/v1/deadletter/gw-1/filter/gw-1/filter',
      // Another module's input (the broker would refuse the filter this one anyway).
      `edgekit/v1/inputs/gw-1/${SENSOR}/in/gw-1/filter`,
    ]) {
      await raw.publishAsync(requestTopic, request, {
        qos: 1,
        properties: { responseTopic, correlationData: Buffer.from('c') },
      });
    }
    // Then a proper call of the rogue's, answered on its own reply topic, and a message of the filter's.
    const replies = new Inbox<string>();
    const replyTopic = 'edgekit/v1/@client/gw-1/rogue/reply';
    raw.on('message', (topic, payload) => {
      if (topic === replyTopic) replies.push(payload.toString());
    });
    await raw.subscribeAsync(replyTopic, { qos: 0 });
    await raw.publishAsync(requestTopic, request, {
      qos: 1,
      properties: { responseTopic: replyTopic, correlationData: Buffer.from('d') },
    });
    await replies.take(1, WAIT);
    await raw.endAsync();
    expect(pings).toBe(1);
    await filter.send('output1', { machine: { temperature: 50 } });
    await upstream.take(1, WAIT);
    expect(upstream.items).toEqual([`{"machine":{"temperature":50}} from ${DEVICE}/filter`]);
  });

  it('the operator makes upstream and dead letters keep before anyone consumes, and consumes them, as permitted', async () => {
    // Applied again (same manifest): the queue sessions are made under the operator's permissions, with no warning.
    const again = await operator.applyDeployment(DEVICE, manifest);
    expect(again.warnings.filter((w) => w.includes('does not keep'))).toEqual([]);
    const rogue = await rawAs(`${DEVICE}/rogue`);
    await rogue.publish(`deadletter/${DEVICE}/rogue`, utf8('garbage')); // its own dead letters: allowed
    await notAuthorized(rogue.publish(`deadletter/${DEVICE}/filter`, utf8('forged')));
    const filter = await moduleClient(Filter, 'filter');
    await filter.send('output1', { machine: { temperature: 99 } }); // routed INTO $upstream
    const upstream = await operator.upstream(DEVICE);
    try {
      const first = await upstream.next();
      expect(first.value).toMatchObject({ type: 'message', publisher: `${DEVICE}/filter` });
      upstream.ack();
    } finally {
      await upstream.close();
    }
    const dead = operator.deadLetters(DEVICE, 'rogue');
    const listing = await dead.list({ idleInMs: 500 });
    expect(listing.entries).toMatchObject([{ type: 'undecodable', publisher: `${DEVICE}/rogue` }]);
    expect(await dead.purge({ idleInMs: 500 })).toEqual({ purged: 1, undecodable: 1 });
  });

  it('a last will on another module’s presence is never written; one on its own presence is', async () => {
    const filter = await moduleClient(Filter, 'filter');
    const before = text(await op.getRetained(`presence/${DEVICE}/filter`));
    expect(JSON.parse(before ?? '{}')).toMatchObject({ state: 'online' });
    const forgedWill = utf8('{"state":"offline","sdk":"edgekit/0.0.0","reason":"connection-lost"}');
    const proxy = await startTcpProxy(broker.port);
    proxies.push(proxy);
    const url = `mqtt://127.0.0.1:${proxy.port}`;
    // Mosquitto 2.0.11 takes the CONNECT (it does not check a will then) and drops the will when it would fire.
    const forger = await transportAs('gw-1/rogue', undefined, url).connect({
      clientId: 'gw-1/rogue',
      identity: 'gw-1/rogue',
      will: { key: `presence/${DEVICE}/filter`, value: forgedWill },
    });
    proxy.cut();
    await forger.closed;
    // Its own will is written: once it is there, the broker has handled the first connection's end too.
    const ownWill = utf8('{"state":"offline","sdk":"edgekit/0.0.0","reason":"connection-lost","connectedAt":1}');
    const own = new Inbox<string | undefined>();
    const watch = await op.watchRetained(`presence/${DEVICE}/rogue`, (value) => own.push(text(value)));
    const proxy2 = await startTcpProxy(broker.port);
    proxies.push(proxy2);
    const honest = await transportAs('gw-1/rogue', undefined, `mqtt://127.0.0.1:${proxy2.port}`).connect({
      clientId: 'gw-1/rogue',
      identity: 'gw-1/rogue',
      will: { key: `presence/${DEVICE}/rogue`, value: ownWill },
    });
    proxy2.cut();
    await honest.closed;
    await own.until((values) => values.includes(text(ownWill)), WAIT, 'the rogue’s own will');
    await watch.close();
    expect(text(await op.getRetained(`presence/${DEVICE}/filter`))).toBe(before);
    await filter.close();
  });
});
