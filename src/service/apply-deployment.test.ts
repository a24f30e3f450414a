// applyDeployment when the broker refuses a write part-way (issue 10, item 7): the deployment is marked, never
// half-applied in silence, and applying it again completes it. A wrapper around the memory transport refuses the Nth
// retained write, as a broker's ACL refuses one topic.
import { afterEach, describe, expect, test } from 'vitest';
import { json } from '../codecs/codec.js';
import { typed } from '../codecs/schema.js';
import { connect } from '../connect.js';
import { defineModule } from '../core/contract.js';
import { decodeTwin } from '../core/twin.js';
import { decodeRouteTable } from '../core/wire.js';
import { EdgeKitError, isEdgeKitError } from '../errors.js';
import type { Transport, TransportConnection } from '../transport.js';
import { MemoryBroker, memory } from '../transports/memory/index.js';
import { connectService, type ServiceClient } from './client.js';

const Filter = defineModule({
  inputs: { input1: json<{ t: number }>() },
  desired: typed<{ threshold?: number }>(),
});

const ROUTE_A = 'FROM /messages/modules/sensor/outputs/a INTO BrokeredEndpoint("/modules/filter/inputs/input1")';
const ROUTE_B = 'FROM /messages/modules/sensor/outputs/b INTO BrokeredEndpoint("/modules/filter/inputs/input1")';

const manifest = (route: string, threshold: number) => ({
  modulesContent: {
    $edgeAgent: { 'properties.desired': { modules: { sensor: {}, filter: {} } } },
    $edgeHub: { 'properties.desired': { schemaVersion: '1.1', routes: { r: route } } },
    filter: { 'properties.desired': { threshold } },
  },
});

/**
 * The memory transport, except that the retained writes numbered in `refuse` (1-based, counted over every connection
 * of this transport) are refused as a broker refuses a publish its ACL denies.
 */
function refusingWrites(broker: MemoryBroker, refuse: (n: number, key: string) => boolean): Transport {
  const inner = memory({ broker });
  let writes = 0;
  return {
    name: 'refusing-memory',
    capabilities: inner.capabilities,
    async connect(options) {
      const conn = await inner.connect(options);
      const wrapped: TransportConnection = Object.create(conn);
      wrapped.setRetained = async (key, value) => {
        writes++;
        if (refuse(writes, key)) {
          throw new EdgeKitError('transport-error', `write ${writes} on ${key} failed: not authorized (135)`);
        }
        return conn.setRetained(key, value);
      };
      return wrapped;
    },
  };
}

let broker: MemoryBroker;
const open: Array<{ close(): Promise<void> }> = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((c) => c.close()));
});

async function service(transport: Transport = memory({ broker })): Promise<ServiceClient> {
  const s = await connectService({ transport });
  open.push(s);
  return s;
}

async function retained(key: string): Promise<Uint8Array | undefined> {
  const conn = await memory({ broker }).connect({ clientId: `reader-${Math.random()}` });
  try {
    return await conn.getRetained(key);
  } finally {
    await conn.close();
  }
}

const desiredOf = async () => decodeTwin(await retained('twin/gw/filter/desired'), 'desired');
const routesOf = async () => Object.values(decodeRouteTable(await retained('routes/gw')).routes).map((r) => r.route);

describe('applyDeployment when the broker refuses a write', () => {
  test('the route table refused: the record says failed at routes; applying it again completes it without rewriting desired properties', async () => {
    broker = new MemoryBroker();
    const good = await service();
    const first = await good.applyDeployment('gw', manifest(ROUTE_A, 25));
    expect(first).toMatchObject({ generation: 1, resumed: false, desiredVersions: { filter: 1 } });

    // Writes: 1 pending record, 2 desired properties, 3 the route table (refused), 4 the record marked failed.
    const refusing = await service(refusingWrites(broker, (n) => n === 3));
    const error = await refusing.applyDeployment('gw', manifest(ROUTE_B, 30)).catch((e: unknown) => e);
    expect(isEdgeKitError(error, 'transport-error')).toBe(true);
    const e = error as EdgeKitError;
    expect(e.message).toMatch(/^deployment 2 \(\S+\) to gw failed writing the route table: .*not authorized/);
    expect(e.message).toMatch(/it is marked failed; apply the same deployment again to complete it/);
    expect(e.details).toMatchObject({ step: 'routes', generation: 2, state: 'failed' });

    // The half-applied state is visible: new desired properties, old routes, a failed record naming the step.
    expect(await desiredOf()).toEqual({ version: 2, properties: { threshold: 30 } });
    expect(await routesOf()).toEqual([ROUTE_A]);
    const record = await good.deployment('gw');
    expect(record).toMatchObject({
      state: 'failed',
      generation: 2,
      id: e.details.deploymentId,
      failure: { step: 'routes', reason: expect.stringMatching(/not authorized \(135\)/) },
    });
    expect(record?.state === 'failed' && record.appliedAt).toBeFalsy();
    expect((await good.modules('gw')).map((m) => [m.moduleId, m.deployed, m.deploymentState])).toEqual([
      ['filter', true, 'failed'],
      ['sensor', true, 'failed'],
    ]);

    // The same deployment again completes it: same id and generation, desired properties not written again.
    const again = await good.applyDeployment('gw', manifest(ROUTE_B, 30));
    expect(again).toMatchObject({
      deploymentId: e.details.deploymentId,
      generation: 2,
      resumed: true,
      desiredVersions: {},
    });
    expect(await desiredOf()).toEqual({ version: 2, properties: { threshold: 30 } });
    expect(await routesOf()).toEqual([ROUTE_B]);
    const applied = await good.deployment('gw');
    expect(applied).toMatchObject({ state: 'applied', generation: 2, appliedAt: expect.any(Number) });
    expect(applied).not.toHaveProperty('failure');
  });

  test('the second write (desired properties) refused: failed at desired, naming the module; a running module keeps its version', async () => {
    broker = new MemoryBroker();
    await (await service()).applyDeployment('gw', manifest(ROUTE_A, 25));
    const filter = await connect(Filter, { deviceId: 'gw', moduleId: 'filter', transport: memory({ broker }) });
    open.push(filter);
    const refusing = await service(refusingWrites(broker, (n) => n === 2));
    await expect(refusing.applyDeployment('gw', manifest(ROUTE_B, 30))).rejects.toThrow(
      /failed writing desired properties of filter: .*marked failed/,
    );
    expect(await refusing.deployment('gw')).toMatchObject({
      state: 'failed',
      failure: { step: 'desired', module: 'filter' },
    });
    expect(filter.desired()).toEqual({ version: 1, properties: { threshold: 25 } });
    expect(await routesOf()).toEqual([ROUTE_A]);

    const seen: number[] = [];
    await filter.onDesired((_doc, _patch, version) => {
      seen.push(version);
    });
    const done = await (await service()).applyDeployment('gw', manifest(ROUTE_B, 30));
    expect(done).toMatchObject({ resumed: true, desiredVersions: { filter: 2 } });
    await expect.poll(() => filter.desired()).toEqual({ version: 2, properties: { threshold: 30 } });
    expect(await routesOf()).toEqual([ROUTE_B]);
  });

  test('when the broker also refuses marking it failed, the record stays pending and the error says so', async () => {
    broker = new MemoryBroker();
    // Refuses the route table and every record write after the pending one.
    let records = 0;
    const strict = await service(
      refusingWrites(
        broker,
        (_n, key) => key.startsWith('routes/') || (key.startsWith('deployment/') && ++records > 1),
      ),
    );
    const error = (await strict.applyDeployment('gw', manifest(ROUTE_A, 25)).catch((e: unknown) => e)) as EdgeKitError;
    expect(error.details).toMatchObject({ step: 'routes', state: 'pending' });
    expect(error.message).toMatch(/it is marked pending; apply the same deployment again/);
    const reader = await service();
    expect(await reader.deployment('gw')).toMatchObject({ state: 'pending', generation: 1 });
    expect((await reader.modules('gw')).every((m) => m.deploymentState === 'pending')).toBe(true);
  });

  test('the first write refused: nothing is applied and the earlier deployment stays as it was', async () => {
    broker = new MemoryBroker();
    const good = await service();
    await good.applyDeployment('gw', manifest(ROUTE_A, 25));
    const before = await good.deployment('gw');
    const refusing = await service(refusingWrites(broker, (n) => n === 1));
    const error = (await refusing
      .applyDeployment('gw', manifest(ROUTE_B, 30))
      .catch((e: unknown) => e)) as EdgeKitError;
    expect(error.details).toMatchObject({ step: 'start', state: 'unchanged' });
    expect(error.message).toMatch(/failed writing the pending deployment record: .*nothing was applied/);
    expect(await good.deployment('gw')).toEqual(before);
    expect(await desiredOf()).toEqual({ version: 1, properties: { threshold: 25 } });
    expect(await routesOf()).toEqual([ROUTE_A]);
  });

  test('a different deployment after a failed one gets a new id and generation; an abort leaves it pending', async () => {
    broker = new MemoryBroker();
    const refusing = await service(refusingWrites(broker, (n) => n === 3));
    const failed = (await refusing
      .applyDeployment('gw', manifest(ROUTE_A, 25))
      .catch((e: unknown) => e)) as EdgeKitError;
    expect(failed.details).toMatchObject({ generation: 1, state: 'failed' });
    const good = await service();
    const other = await good.applyDeployment('gw', manifest(ROUTE_B, 30));
    expect(other).toMatchObject({ generation: 2, resumed: false, desiredVersions: { filter: 2 } });
    expect(other.deploymentId).not.toBe(failed.details.deploymentId);

    // An abort between writes: the caller wants nothing more written, so the record keeps saying pending.
    const stop = new AbortController();
    const slow = refusingWrites(broker, (_n, key) => {
      if (key.startsWith('twin/')) stop.abort();
      return false;
    });
    const aborted = await (await service(slow))
      .applyDeployment('gw', manifest(ROUTE_A, 40), { abortSignal: stop.signal })
      .catch((e: unknown) => e);
    expect(isEdgeKitError(aborted, 'aborted')).toBe(true);
    expect(await good.deployment('gw')).toMatchObject({ state: 'pending', generation: 3 });
    expect(await good.applyDeployment('gw', manifest(ROUTE_A, 40))).toMatchObject({ generation: 3, resumed: true });
  });

  test('a record written before deployments had states reads as applied, generation 0', async () => {
    broker = new MemoryBroker();
    const conn = await memory({ broker }).connect({ clientId: 'old-edgekit' });
    await conn.setRetained(
      'deployment/gw',
      new TextEncoder().encode(JSON.stringify({ modules: ['sensor', 'filter'], appliedAt: 1764130000000 })),
    );
    await conn.close();
    const svc = await service();
    expect(await svc.deployment('gw')).toEqual({
      modules: ['sensor', 'filter'],
      state: 'applied',
      generation: 0,
      appliedAt: 1764130000000,
    });
    expect((await svc.modules('gw')).map((m) => m.deploymentState)).toEqual(['applied', 'applied']);
    expect(await svc.applyDeployment('gw', manifest(ROUTE_A, 25))).toMatchObject({ generation: 1 });
  });
});
