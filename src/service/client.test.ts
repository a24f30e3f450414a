import { afterEach, describe, expect, test } from 'vitest';
import { json } from '../codecs/codec.js';
import { typed } from '../codecs/schema.js';
import { connect } from '../connect.js';
import { defineModule, method } from '../core/contract.js';
import { encodeEnvelope } from '../core/envelope.js';
import type { ModuleClient } from '../core/types.js';
import { type EdgeKitError, isEdgeKitError } from '../errors.js';
import { MemoryBroker, memory } from '../transports/memory/index.js';
import { connectService, type ServiceClient } from './client.js';
import type { MessageMonitor, MonitorEvent } from './monitor.js';

const Sensor = defineModule({ outputs: { temperature: json<{ t: number }>(), other: json<{ t: number }>() } });
const Filter = defineModule({
  inputs: { input1: json<{ t: number }>() },
  outputs: { alerts: json<{ t: number }>() },
  desired: typed<{ threshold?: number }>(),
  reported: typed<{ threshold?: number }>(),
  methods: { reset: method(typed<{ to: number }>(), typed<{ was: number }>()) },
});

const manifest = (routes: Record<string, unknown>, desired: Record<string, unknown> = { threshold: 25 }) => ({
  modulesContent: {
    $edgeAgent: { 'properties.desired': { modules: { sensor: {}, filter: {} } } },
    $edgeHub: { 'properties.desired': { schemaVersion: '1.1', routes } },
    filter: { 'properties.desired': desired },
  },
});

let broker: MemoryBroker;
const open: Array<{ close(): Promise<void> }> = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((c) => c.close()));
});

async function service(): Promise<ServiceClient> {
  const s = await connectService({ transport: memory({ broker }) });
  open.push(s);
  return s;
}

async function module<C extends typeof Sensor | typeof Filter>(
  contract: C,
  moduleId: string,
): Promise<ModuleClient<C>> {
  const c = await connect(contract, { deviceId: 'gw', moduleId, transport: memory({ broker }) });
  open.push(c);
  return c;
}

/** The next `n` events of a monitor, or a clear failure after a timeout. */
async function take(monitor: MessageMonitor, n: number, timeoutInMs = 2_000): Promise<MonitorEvent[]> {
  const events: MonitorEvent[] = [];
  const timeout = new Promise<never>((_, reject) =>
    setTimeout(() => reject(new Error(`got ${events.length} of ${n} events`)), timeoutInMs).unref(),
  );
  while (events.length < n) {
    const next = await Promise.race([monitor.next(), timeout]);
    if (next.done) throw new Error('the monitor ended');
    events.push(next.value);
  }
  return events;
}

function deferredValue<T>(): { promise: Promise<T>; resolve(v: T): void } {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

describe('ServiceClient on the memory transport', () => {
  test('applyDeployment sets desired properties, routes messages, and a redeploy changes routes live', async () => {
    broker = new MemoryBroker();
    const svc = await service();
    const result = await svc.applyDeployment(
      'gw',
      manifest({
        toFilter:
          'FROM /messages/modules/sensor/outputs/temperature INTO BrokeredEndpoint("/modules/filter/inputs/input1")',
      }),
    );
    expect(result).toMatchObject({
      modules: ['sensor', 'filter'],
      routes: ['toFilter'],
      desiredVersions: { filter: 1 },
    });
    const sensor = await module(Sensor, 'sensor');
    const filter = await module(Filter, 'filter');
    expect(filter.desired()).toEqual({ version: 1, properties: { threshold: 25 } });
    const got: number[] = [];
    let arrived = deferredValue<void>();
    await filter.onInput('input1', (m) => {
      got.push(m.body.t);
      arrived.resolve();
    });
    expect((await sensor.send('temperature', { t: 1 })).destinations).toBe(1);
    await arrived.promise;
    expect((await sensor.send('other', { t: 2 })).destinations).toBe(0);

    // Redeploy: the route now takes `other`; the module sees the threshold change as a patch.
    const patches: unknown[] = [];
    await filter.onDesired((_doc, patch) => {
      patches.push(patch);
    });
    const again = await svc.applyDeployment(
      'gw',
      manifest(
        {
          fromOther:
            'FROM /messages/modules/sensor/outputs/other INTO BrokeredEndpoint("/modules/filter/inputs/input1")',
        },
        { threshold: 30 },
      ),
    );
    expect(again.desiredVersions).toEqual({ filter: 2 });
    await expect.poll(() => patches).toContainEqual({ threshold: 30 });
    arrived = deferredValue();
    await expect.poll(async () => (await sensor.send('other', { t: 3 })).destinations).toBe(1);
    await arrived.promise;
    expect((await sensor.send('temperature', { t: 4 })).destinations).toBe(0);
    expect(got).toContain(3);
    expect(got).not.toContain(4);

    // Applying the same manifest again changes no desired version.
    const same = await svc.applyDeployment(
      'gw',
      manifest(
        {
          fromOther:
            'FROM /messages/modules/sensor/outputs/other INTO BrokeredEndpoint("/modules/filter/inputs/input1")',
        },
        { threshold: 30 },
      ),
    );
    expect(same.desiredVersions).toEqual({});
  });

  test('a manifest with one bad route is rejected whole, naming the route and position; nothing changes', async () => {
    broker = new MemoryBroker();
    const svc = await service();
    await svc.applyDeployment('gw', manifest({ ok: 'FROM /messages/* INTO $upstream' }));
    const bad = manifest(
      { ok: 'FROM /messages/* INTO $upstream', broken: 'FROM /messages/* WHERE temp > INTO $upstream' },
      { threshold: 99 },
    );
    const error = await svc.applyDeployment('gw', bad).catch((e: unknown) => e);
    expect(isEdgeKitError(error, 'invalid-configuration')).toBe(true);
    expect((error as EdgeKitError).message).toMatch(/routes\.broken: .*column \d+/);
    expect((error as EdgeKitError).details.problems).toEqual([
      expect.objectContaining({ path: 'routes.broken', column: expect.any(Number) }),
    ]);
    expect((await svc.getTwin('gw', 'filter')).desired).toEqual({ version: 1, properties: { threshold: 25 } });
  });

  test('every problem of a manifest is listed: bad module ids, twin rules, a bad TTL', async () => {
    broker = new MemoryBroker();
    const svc = await service();
    const bad = {
      modulesContent: {
        $edgeAgent: { 'properties.desired': { modules: { 'bad id': {} } } },
        $edgeHub: {
          'properties.desired': {
            schemaVersion: '1.1',
            routes: { r: 'FROM /messages/* INTO $upstream' },
            storeAndForwardConfiguration: { timeToLiveSecs: -1 },
          },
        },
        filter: { 'properties.desired': { 'a.b': 1 } },
      },
    };
    const error = (await svc.applyDeployment('gw', bad).catch((e: unknown) => e)) as EdgeKitError;
    expect(error.code).toBe('invalid-configuration');
    const paths = (error.details.problems as Array<{ path: string }>).map((p) => p.path);
    expect(paths).toEqual([
      '$edgeAgent.modules.bad id',
      '$edgeHub.storeAndForwardConfiguration.timeToLiveSecs',
      'filter.properties.desired',
    ]);
    await expect(svc.applyDeployment('gw', 'not a manifest')).rejects.toThrow(/JSON object/);
    await expect(svc.applyDeployment('bad/device', manifest({}))).rejects.toThrow(RangeError);
  });

  test('updateDesired reaches a running module; its reported answer is read back with getTwin and watchReported', async () => {
    broker = new MemoryBroker();
    const svc = await service();
    const filter = await module(Filter, 'filter');
    await filter.onDesired(async (doc) => {
      if (doc.threshold !== undefined) await filter.report({ threshold: doc.threshold });
    });
    const watch = await svc.watchReported('gw', 'filter');
    expect((await watch.next()).value).toEqual({ version: 0, properties: {} });
    const doc = await svc.updateDesired('gw', 'filter', { threshold: 40 });
    expect(doc).toEqual({ version: 1, properties: { threshold: 40 } });
    expect((await watch.next()).value).toEqual({ version: 1, properties: { threshold: 40 } });
    expect((await svc.getTwin('gw', 'filter')).reported).toEqual({ version: 1, properties: { threshold: 40 } });

    await expect(svc.updateDesired('gw', 'filter', { threshold: 41 }, { ifVersion: 0 })).rejects.toMatchObject({
      code: 'version-conflict',
    });
    expect((await svc.updateDesired('gw', 'filter', { threshold: null }, { ifVersion: 1 })).properties).toEqual({});
    await expect(svc.updateDesired('gw', 'filter', { threshold: 1 }, { ifVersion: -1 })).rejects.toThrow(RangeError);
    await watch.close();
    expect((await watch.next()).done).toBe(true);
  });

  test('invoke returns status and payload; 404 offline, 501 unhandled; bad timeouts are refused', async () => {
    broker = new MemoryBroker();
    const svc = await service();
    const filter = await module(Filter, 'filter');
    await filter.handle('reset', (req) => ({ was: req.to - 1 }));
    expect(await svc.invoke('gw', 'filter', 'reset', { to: 5 }, { timeoutInMs: 5_000 })).toEqual({
      ok: true,
      status: 200,
      payload: { was: 4 },
    });
    expect((await svc.invoke('gw', 'filter', 'nope')).status).toBe(501);
    expect((await svc.invoke('gw', 'nobody', 'reset')).status).toBe(404);
    await expect(svc.invoke('gw', 'filter', 'reset', {}, { timeoutInMs: 10 })).rejects.toThrow(RangeError);
    await expect(svc.invoke('gw', 'filter', 'bad name')).rejects.toThrow(RangeError);
  });

  test('monitor sees routed messages, $upstream and dead letters with their destination, without taking them', async () => {
    broker = new MemoryBroker();
    const svc = await service();
    await svc.applyDeployment(
      'gw',
      manifest({
        toFilter:
          'FROM /messages/modules/sensor/outputs/temperature INTO BrokeredEndpoint("/modules/filter/inputs/input1")',
        up: 'FROM /messages/modules/filter/outputs/* INTO $upstream',
      }),
    );
    const sensor = await module(Sensor, 'sensor');
    const filter = await connect(Filter, {
      deviceId: 'gw',
      moduleId: 'filter',
      transport: memory({ broker }),
      maxAttempts: 1,
    });
    open.push(filter);
    const monitor = await svc.monitor({ deviceId: 'gw' });
    await filter.onInput('input1', async (m) => {
      if (m.body.t < 0) throw new Error('negative');
      await filter.send('alerts', m.body, { properties: { level: 'high' } });
    });
    await sensor.send('temperature', { t: 7 });
    const [routed, upstream] = await take(monitor, 2);
    expect(routed).toMatchObject({
      type: 'message',
      destination: { kind: 'input', deviceId: 'gw', moduleId: 'filter', input: 'input1' },
      source: { deviceId: 'gw', moduleId: 'sensor', output: 'temperature' },
      contentType: 'application/json',
      body: { t: 7 },
    });
    expect(upstream).toMatchObject({
      type: 'message',
      destination: { kind: 'upstream', deviceId: 'gw' },
      source: { moduleId: 'filter', output: 'alerts' },
      properties: { level: 'high' },
      body: { t: 7 },
    });
    await sensor.send('temperature', { t: -1 });
    const [, dead] = await take(monitor, 2);
    expect(dead).toMatchObject({
      destination: { kind: 'deadletter', moduleId: 'filter' },
      deadLetter: { reason: 'handler-failed', error: 'negative', input: 'input1' },
      body: { t: -1 },
    });
    expect(monitor.stats()).toEqual({ observed: 4, undecodable: 0, dropped: 0 });
    await monitor.close();
    expect((await monitor.next()).done).toBe(true);
  });

  test('monitor filters by sender, output and kind; bytes that are not an edgekit message are shown as undecodable', async () => {
    broker = new MemoryBroker();
    const svc = await service();
    await svc.applyDeployment('gw', manifest({ up: 'FROM /messages/* INTO $upstream' }));
    const sensor = await module(Sensor, 'sensor');
    const onlyOther = await svc.monitor({ deviceId: 'gw', moduleId: 'sensor', output: 'other', kinds: ['upstream'] });
    const all = await svc.monitor();
    await sensor.send('temperature', { t: 1 });
    await sensor.send('other', { t: 2 });
    const [first] = await take(onlyOther, 1);
    expect(first).toMatchObject({ source: { output: 'other' }, body: { t: 2 } });
    expect((await take(all, 2)).map((e) => (e.type === 'message' ? e.body : undefined))).toEqual([{ t: 1 }, { t: 2 }]);

    const raw = await memory({ broker }).connect({ clientId: 'raw' });
    open.push(raw);
    await raw.publish('upstream/gw', new Uint8Array([1, 2, 3]));
    const [garbage] = await take(all, 1);
    expect(garbage).toMatchObject({ type: 'undecodable', destination: { kind: 'upstream' } });
    expect(garbage?.type === 'undecodable' && garbage.error.code).toBe('decode-failed');
    expect(all.stats().undecodable).toBe(1);
    // Non-JSON content arrives as text or bytes.
    const textual = encodeEnvelope(
      {
        messageId: 'm',
        createdAt: 0,
        sourceDeviceId: 'gw',
        sourceModuleId: 'x',
        contentType: 'text/plain',
        properties: {},
      },
      new TextEncoder().encode('hello'),
    );
    await raw.publish('upstream/gw', textual);
    expect((await take(all, 1))[0]).toMatchObject({ body: 'hello' });

    await expect(svc.monitor({ kinds: ['nope' as 'input'] })).rejects.toThrow(RangeError);
    await expect(svc.monitor({ deviceId: 'a/b' })).rejects.toThrow(RangeError);
  });

  test('a slow monitor reader loses the oldest messages beyond maxBuffered, counted', async () => {
    broker = new MemoryBroker();
    const svc = await service();
    await svc.applyDeployment('gw', manifest({ up: 'FROM /messages/* INTO $upstream' }));
    const sensor = await module(Sensor, 'sensor');
    const monitor = await svc.monitor({}, { maxBuffered: 2 });
    for (let t = 0; t < 5; t++) await sensor.send('temperature', { t });
    expect(monitor.stats().dropped).toBe(3);
    expect((await take(monitor, 2)).map((e) => (e.type === 'message' ? e.body : undefined))).toEqual([
      { t: 3 },
      { t: 4 },
    ]);
  });

  test('modules(): deployed and present modules with presence and last-seen, a crashed one offline', async () => {
    broker = new MemoryBroker();
    const svc = await service();
    await svc.applyDeployment('gw', manifest({}));
    expect(await svc.modules('gw')).toEqual([
      { moduleId: 'filter', deployed: true, deploymentState: 'applied', state: 'unknown' },
      { moduleId: 'sensor', deployed: true, deploymentState: 'applied', state: 'unknown' },
    ]);
    const before = Date.now();
    const filter = await module(Filter, 'filter');
    const sensor = await module(Sensor, 'sensor');
    await connect(Sensor, { deviceId: 'gw', moduleId: 'extra', transport: memory({ broker }) }).then((c) =>
      open.push(c),
    );
    const online = await svc.modules('gw');
    expect(online.map((m) => [m.moduleId, m.deployed, m.state])).toEqual([
      ['extra', false, 'online'],
      ['filter', true, 'online'],
      ['sensor', true, 'online'],
    ]);
    expect(online[1]?.since).toBeGreaterThanOrEqual(before);
    await filter.close();
    broker.disconnect('gw/sensor');
    await sensor.closed; // not needed for the broker, but keeps the client from reconnecting first
    const after = await svc.modules('gw');
    expect(after[1]).toMatchObject({ moduleId: 'filter', state: 'offline', reason: 'closed' });
    expect(after[1]?.lastSeen).toBeGreaterThanOrEqual(before);
    expect(after[2]).toMatchObject({ moduleId: 'sensor', state: 'offline', reason: 'connection-lost' });
    expect(after[2]?.lastSeen).toBeGreaterThanOrEqual(before);
  });

  test('a closed client refuses work, ends its monitors, and close() is idempotent', async () => {
    broker = new MemoryBroker();
    const svc = await service();
    const monitor = await svc.monitor();
    await svc.close();
    await svc.close();
    expect((await monitor.next()).done).toBe(true);
    await expect(svc.getTwin('gw', 'filter')).rejects.toMatchObject({ code: 'closed' });
    await expect(connectService({ transport: 'x' as never })).rejects.toThrow(TypeError);
  });

  test('an unreachable broker fails connectService with connection-failed', async () => {
    const refusing = {
      name: 'refusing',
      capabilities: { keepsMessagesBeforeFirstConsumer: false, sharedConsumers: false, listsRetained: false },
      connect: async () => {
        throw new Error('ECONNREFUSED');
      },
    };
    await expect(connectService({ transport: refusing })).rejects.toMatchObject({
      code: 'connection-failed',
      message: expect.stringMatching(/refusing broker: ECONNREFUSED/),
    });
  });

  test('after the connection is lost, monitors and watches subscribe again and say so through onError', async () => {
    broker = new MemoryBroker();
    const svc = await service();
    await svc.applyDeployment('gw', manifest({ up: 'FROM /messages/* INTO $upstream' }));
    const sensor = await module(Sensor, 'sensor');
    const errors: string[] = [];
    const monitor = await svc.monitor({ deviceId: 'gw' }, { onError: (e) => errors.push(e.code) });
    const reporter = await module(Filter, 'filter');
    await reporter.report({ threshold: 1 });
    const watch = await svc.watchReported('gw', 'filter');
    expect((await watch.next()).value).toEqual({ version: 1, properties: { threshold: 1 } });

    const serviceId = broker.connectedClients().find((id) => id.startsWith('edgekit-service-')) as string;
    expect(broker.disconnect(serviceId)).toBe(1);
    await expect.poll(() => errors).toContain('connection-lost');
    // Once subscribed again, new messages and versions arrive; the unchanged document is not delivered twice.
    await expect
      .poll(async () => {
        await sensor.send('temperature', { t: 99 });
        const next = await Promise.race([monitor.next(), new Promise((r) => setTimeout(r, 50, undefined))]);
        return (next as IteratorResult<MonitorEvent> | undefined)?.value;
      })
      .toMatchObject({ body: { t: 99 } });
    await reporter.report({ threshold: 2 });
    expect((await watch.next()).value).toEqual({ version: 2, properties: { threshold: 2 } });
  });

  test('an abort ends a monitor or a watch, also one given while it subscribes; an aborted update writes nothing', async () => {
    broker = new MemoryBroker();
    const svc = await service();
    const early = new AbortController();
    const starting = svc.monitor({}, { abortSignal: early.signal });
    early.abort();
    expect((await (await starting).next()).done).toBe(true);
    const later = new AbortController();
    const watch = await svc.watchReported('gw', 'filter', { abortSignal: later.signal });
    await watch.next();
    later.abort();
    expect((await watch.next()).done).toBe(true);

    const aborted = AbortSignal.abort();
    await expect(svc.updateDesired('gw', 'filter', { a: 1 }, { abortSignal: aborted })).rejects.toMatchObject({
      code: 'aborted',
    });
    await expect(svc.applyDeployment('gw', manifest({}), { abortSignal: aborted })).rejects.toMatchObject({
      code: 'aborted',
    });
    expect((await svc.getTwin('gw', 'filter')).desired.version).toBe(0);
  });

  test('arguments are checked before any I/O: options, patches, signals, oversize desired documents', async () => {
    broker = new MemoryBroker();
    const svc = await service();
    await expect(svc.invoke('gw', 'filter', 'reset', {}, null as never)).rejects.toThrow(TypeError);
    await expect(svc.applyDeployment('gw', manifest({}), null as never)).rejects.toThrow(TypeError);
    await expect(svc.updateDesired('gw', 'filter', 42 as never)).rejects.toThrow(/plain JSON object/);
    await expect(svc.monitor({}, { abortSignal: 'x' as never })).rejects.toThrow(/AbortSignal/);
    await expect(svc.watchReported('gw', 'filter', { onError: 1 as never })).rejects.toThrow(/onError/);
    const big = manifest({}, { blob: 'x'.repeat(40 * 1024) });
    const error = (await svc.applyDeployment('gw', big).catch((e: unknown) => e)) as EdgeKitError;
    expect(error.code).toBe('invalid-configuration');
    expect(error.message).toMatch(/filter\.properties\.desired: .*limit is 32768/);
    await svc.close();
    await expect(svc.updateDesired('gw', 'filter', 42 as never)).rejects.toThrow(TypeError);
  });
});
