/**
 * A deployment whose route-table write RabbitMQ refuses (issue 10, item 7), on the shared broker with two users of
 * narrower rights (global-setup.ts). A connection writes a retained key through its own exchange, bound to the key's
 * last-value queue; RabbitMQ can refuse one key's write only through the names that involves:
 *
 * - `no-route-queues` may not configure (declare) `edgekit.retained.routes.*`, which a connection that declares its
 *   own topology does before its first write of a key: the declaration is refused on its own channel, the write
 *   rejects with `not-authorized`, the connection stays, and the deployment is marked failed.
 * - `no-routes` may not declare its own exchange, so it uses the bindings the operator made for it (here, the test):
 *   its deployment record and desired documents, not the route table. RabbitMQ routes that write nowhere; the write
 *   rejects with `not-authorized`, the connection stays, and the deployment is marked failed there, as above.
 */
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as amqplib from 'amqplib';
import { afterEach, describe, expect, test } from 'vitest';
import { typed } from '../../../src/codecs/schema.js';
import { connect } from '../../../src/connect.js';
import { defineModule } from '../../../src/core/contract.js';
import { type EdgeKitError, isEdgeKitError } from '../../../src/errors.js';
import { connectService, type ServiceClient } from '../../../src/service/client.js';
import { amqp } from '../../../src/transports/amqp/index.js';
import { cli } from '../../cli/scenarios.js';
import { TEST_USERS } from './global-setup.js';
import { sharedRabbitMQ, uniquePrefix } from './support.js';

const Filter = defineModule({ desired: typed<{ threshold?: number }>() });

const ROUTE_A = 'FROM /messages/modules/sensor/outputs/a INTO BrokeredEndpoint("/modules/filter/inputs/in")';
const ROUTE_B = 'FROM /messages/modules/sensor/outputs/b INTO BrokeredEndpoint("/modules/filter/inputs/in")';
const manifest = (route: string, threshold: number) => ({
  modulesContent: {
    $edgeAgent: { 'properties.desired': { modules: { sensor: {}, filter: {} } } },
    $edgeHub: { 'properties.desired': { schemaVersion: '1.1', routes: { r: route } } },
    filter: { 'properties.desired': { threshold } },
  },
});

type User = 'guest' | 'no-routes' | 'no-route-queues';
/** The identity `no-routes` speaks for; its exchange is `edgekit.from.$operator.no-routes`. */
const NO_ROUTES_IDENTITY = '$operator/no-routes';
/** The shared broker's URL as `user` (the default prefix `edgekit`, which the narrower permissions name). */
const urlOf = (user: User) => {
  const url = new URL(sharedRabbitMQ().url);
  url.username = user;
  url.password = user === 'guest' ? 'guest' : TEST_USERS[user];
  return url.toString();
};

const open: Array<{ close(): Promise<void> }> = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((c) => c.close().catch(() => undefined)));
});

async function service(user: User): Promise<ServiceClient> {
  const s = await connectService({
    transport: amqp({ url: urlOf(user) }),
    ...(user === 'no-routes' ? { identity: NO_ROUTES_IDENTITY } : {}),
  });
  open.push(s);
  return s;
}

async function manifestFile(content: unknown): Promise<string> {
  const path = join(await mkdtemp(join(tmpdir(), 'edgekit-refused-')), 'deployment.json');
  await writeFile(path, JSON.stringify(content));
  return path;
}

describe('applyDeployment on RabbitMQ when the route table is refused', () => {
  test('a refused queue declaration: marked failed at routes; deploy exits 1 naming it; status shows it; a retry completes it', async () => {
    const deviceId = `gw-${uniquePrefix()}`;
    const guest = await service('guest');
    await guest.applyDeployment(deviceId, manifest(ROUTE_A, 25));
    const filter = await connect(Filter, { deviceId, moduleId: 'filter', transport: amqp({ url: urlOf('guest') }) });
    open.push(filter);

    const refused = await service('no-route-queues');
    const error = (await refused
      .applyDeployment(deviceId, manifest(ROUTE_B, 30))
      .catch((e: unknown) => e)) as EdgeKitError;
    expect(isEdgeKitError(error, 'not-authorized')).toBe(true);
    expect(error.details).toMatchObject({ step: 'routes', generation: 2, state: 'failed' });
    expect(error.message).toMatch(/failed writing the route table: .*ACCESS[-_]REFUSED.*; it is marked failed/);
    await expect.poll(() => filter.desired().version, { timeout: 10_000 }).toBe(2);
    expect(await guest.deployment(deviceId)).toMatchObject({
      state: 'failed',
      failure: { step: 'routes', reason: expect.stringMatching(/ACCESS[-_]REFUSED/) },
    });

    const file = await manifestFile(manifest(ROUTE_B, 30));
    const deploy = await cli(['deploy', file, '--device', deviceId, '--broker', urlOf('no-route-queues')]);
    expect(deploy.code).toBe(1);
    expect(deploy.stderr).toMatch(
      /failed writing the route table: .*it is marked failed; apply the same deployment again/,
    );
    expect(deploy.stderr.trim().split('\n')).toHaveLength(1);
    const status = await cli(['status', deviceId, '--broker', urlOf('guest')]);
    expect(status.code).toBe(0);
    expect(status.stdout).toMatch(new RegExp(`${deviceId}\\s+filter\\s+online\\s+.*yes \\(failed\\)`));
    expect(status.stdout).toMatch(/: failed at routes: /);

    const done = await cli(['deploy', file, '--device', deviceId, '--json', '--broker', urlOf('guest')]);
    expect(done.code).toBe(0);
    expect(JSON.parse(done.stdout)).toMatchObject({ generation: 2, resumed: true, desiredVersions: {} });
    expect(await guest.deployment(deviceId)).toMatchObject({ state: 'applied', generation: 2 });
    expect(filter.desired().version).toBe(2);
  }, 60_000);

  test('a write its bindings do not allow (routed nowhere): that write rejects, the connection stays, the record is marked failed; a retry completes it', async () => {
    const deviceId = `gw-${uniquePrefix()}`;
    const guest = await service('guest');
    await guest.applyDeployment(deviceId, manifest(ROUTE_A, 25));
    // What the operator's access plan would bind for `no-routes`: the deployment record and the desired documents.
    const raw = await amqplib.connect(urlOf('guest'));
    try {
      const channel = await raw.createChannel();
      const exchange = 'edgekit.from.$operator.no-routes';
      await channel.assertExchange(exchange, 'direct', { durable: true });
      for (const key of [`deployment.${deviceId}`, `twin.${deviceId}.filter.desired`]) {
        await channel.bindExchange(`edgekit.updates.${key}`, exchange, `edgekit.retained.${key}`);
      }
      await channel.close();
    } finally {
      await raw.close();
    }

    const refused = await service('no-routes');
    const error = (await refused
      .applyDeployment(deviceId, manifest(ROUTE_B, 30))
      .catch((e: unknown) => e)) as EdgeKitError;
    expect(isEdgeKitError(error, 'not-authorized')).toBe(true);
    expect(error.details).toMatchObject({ step: 'routes', generation: 2, state: 'failed' });
    expect(error.message).toMatch(
      /failed writing the route table: RabbitMQ routed the value of retained key routes\/gw-\S+ nowhere: .*; it is marked failed/,
    );
    expect(await guest.deployment(deviceId)).toMatchObject({
      state: 'failed',
      generation: 2,
      failure: {
        step: 'routes',
        reason: expect.stringMatching(/^RabbitMQ routed the value of retained key routes\//),
      },
    });
    expect((await guest.modules(deviceId)).map((m) => m.deploymentState)).toEqual(['failed', 'failed']);

    // The operator's client connects again on its next call; with the rights, the deployment completes.
    expect(await guest.applyDeployment(deviceId, manifest(ROUTE_B, 30))).toMatchObject({
      generation: 2,
      resumed: true,
      desiredVersions: {},
    });
    expect(await refused.deployment(deviceId)).toMatchObject({ state: 'applied', generation: 2 });
  }, 60_000);
});
