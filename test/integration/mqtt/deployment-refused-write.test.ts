/**
 * A deployment whose route-table write the broker refuses (issue 10, item 7), on a real Mosquitto: the operator's
 * ACL lets it write twins and the deployment record but not the routes topic. Mosquitto 2 answers the denied QoS 1
 * publish of an MQTT 5 client with PUBACK reason 0x87 (not authorized), which the mqtt transport turns into a
 * rejection; applyDeployment marks the deployment failed at `routes`, `edgekit deploy` exits 1 naming the step,
 * `edgekit status` shows it, and applying it again with the rights completes it.
 */
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { typed } from '../../../src/codecs/schema.js';
import { connect } from '../../../src/connect.js';
import { defineModule } from '../../../src/core/contract.js';
import { decodeTwin } from '../../../src/core/twin.js';
import { type EdgeKitError, isEdgeKitError } from '../../../src/errors.js';
import { connectService, type ServiceClient } from '../../../src/service/client.js';
import { mqtt } from '../../../src/transports/mqtt/index.js';
import { cli } from '../../cli/scenarios.js';
import { type Mosquitto, startMosquitto } from '../brokers/mosquitto.js';

const Filter = defineModule({ desired: typed<{ threshold?: number }>() });
const USERS = { admin: 'admin-secret', operator: 'operator-secret' };

const ROUTE_A = 'FROM /messages/modules/sensor/outputs/a INTO BrokeredEndpoint("/modules/filter/inputs/in")';
const ROUTE_B = 'FROM /messages/modules/sensor/outputs/b INTO BrokeredEndpoint("/modules/filter/inputs/in")';
const manifest = (route: string, threshold: number) => ({
  modulesContent: {
    $edgeAgent: { 'properties.desired': { modules: { sensor: {}, filter: {} } } },
    $edgeHub: { 'properties.desired': { schemaVersion: '1.1', routes: { r: route } } },
    filter: { 'properties.desired': { threshold } },
  },
});

let broker: Mosquitto;
const open: Array<{ close(): Promise<void> }> = [];

beforeAll(async () => {
  broker = await startMosquitto({
    users: USERS,
    acl: [
      'user admin',
      'topic readwrite #',
      '',
      // Everything of edgekit's but the route tables: the second write of a deployment that changes no desired
      // properties, the third of one that does.
      'user operator',
      'topic deny edgekit/v1/routes/#',
      'topic readwrite edgekit/v1/#',
    ],
  });
});

afterAll(async () => {
  await Promise.all(open.splice(0).map((c) => c.close().catch(() => undefined)));
  await broker?.stop();
});

const transport = (user: keyof typeof USERS) =>
  mqtt({ url: broker.url, username: user, password: USERS[user], sessionExpiryInSeconds: 0 });

async function service(user: keyof typeof USERS): Promise<ServiceClient> {
  const s = await connectService({ transport: transport(user) });
  open.push(s);
  return s;
}

async function manifestFile(content: unknown): Promise<string> {
  const path = join(await mkdtemp(join(tmpdir(), 'edgekit-refused-')), 'deployment.json');
  await writeFile(path, JSON.stringify(content));
  return path;
}

const credentials = (user: keyof typeof USERS) => [
  '--broker',
  broker.url,
  '--username',
  user,
  '--password',
  USERS[user],
];

describe('applyDeployment on Mosquitto when the ACL refuses the route table', () => {
  test('the denied publish is a rejection (PUBACK 0x87), not a silent success', async () => {
    const conn = await transport('operator').connect({ clientId: 'probe' });
    open.push(conn);
    const error = await conn.setRetained('routes/probe', new TextEncoder().encode('{}')).catch((e: unknown) => e);
    expect(isEdgeKitError(error, 'not-authorized')).toBe(true);
    expect((error as EdgeKitError).message).toMatch(/not authorized \(135\)/);
    expect((error as EdgeKitError).details).toMatchObject({ reasonCode: 135 });
    // The connection stays usable: only that publish was refused.
    await conn.setRetained('twin/probe/m/desired', new TextEncoder().encode('{"version":1,"properties":{}}'));
  });

  test('the deployment is marked failed at routes; status shows it; deploy exits 1 naming the step; a retry with the rights completes it', async () => {
    const deviceId = 'gw-refused';
    const admin = await service('admin');
    await admin.applyDeployment(deviceId, manifest(ROUTE_A, 25));
    const filter = await connect(Filter, {
      deviceId,
      moduleId: 'filter',
      transport: mqtt({ url: broker.url, username: 'admin', password: USERS.admin }),
    });
    open.push(filter);
    expect(filter.desired()).toEqual({ version: 1, properties: { threshold: 25 } });

    const operator = await service('operator');
    const error = (await operator
      .applyDeployment(deviceId, manifest(ROUTE_B, 30))
      .catch((e: unknown) => e)) as EdgeKitError;
    expect(isEdgeKitError(error, 'not-authorized')).toBe(true);
    expect(error.details).toMatchObject({ step: 'routes', generation: 2, state: 'failed' });
    expect(error.message).toMatch(/failed writing the route table: .*not authorized \(135\); it is marked failed/);

    // Desired properties are already new (the module got them), the routes and the record say it is not complete.
    await expect.poll(() => filter.desired().version, { timeout: 10_000 }).toBe(2);
    expect(await admin.deployment(deviceId)).toMatchObject({
      state: 'failed',
      generation: 2,
      failure: { step: 'routes', reason: expect.stringMatching(/not authorized \(135\)/) },
    });
    expect((await admin.modules(deviceId)).find((m) => m.moduleId === 'filter')).toMatchObject({
      deployed: true,
      deploymentState: 'failed',
      state: 'online',
    });

    // The CLI: deploy exits 1 naming the step; status shows the failed deployment.
    const file = await manifestFile(manifest(ROUTE_B, 30));
    const deploy = await cli(['deploy', file, '--device', deviceId, ...credentials('operator')]);
    expect(deploy.code).toBe(1);
    expect(deploy.stderr).toMatch(
      /^edgekit deploy: .*: deployment 2 \(\S+\) to gw-refused failed writing the route table: /,
    );
    expect(deploy.stderr).toMatch(
      /it is marked failed; apply the same deployment again to complete it \(not-authorized\)\n$/,
    );
    const status = await cli(['status', deviceId, ...credentials('admin')]);
    expect(status.code).toBe(0);
    expect(status.stdout).toMatch(/gw-refused\s+filter\s+online\s+.*yes \(failed\)/);
    expect(status.stdout).toMatch(/deployment of gw-refused #2: failed at routes: .*not authorized \(135\)/);

    // With the rights, the same deployment completes: same generation, desired properties not written again.
    const done = await cli(['deploy', file, '--device', deviceId, '--json', ...credentials('admin')]);
    expect(done.code).toBe(0);
    expect(JSON.parse(done.stdout)).toMatchObject({ applied: true, generation: 2, resumed: true, desiredVersions: {} });
    expect(await admin.deployment(deviceId)).toMatchObject({ state: 'applied', generation: 2 });
    const raw = await transport('admin').connect({ clientId: 'reader' });
    open.push(raw);
    expect(decodeTwin(await raw.getRetained(`twin/${deviceId}/filter/desired`), 'desired').version).toBe(2);
    expect(new TextDecoder().decode(await raw.getRetained(`routes/${deviceId}`))).toContain('outputs/b');
  }, 60_000);
});
