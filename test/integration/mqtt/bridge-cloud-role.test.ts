/**
 * The cloud side of a bridge under least privilege, on two real Mosquittos: the cloud broker runs the
 * dynamic-security configuration of a deployment's access plan plus the role `mosquittoBridge` renders for the
 * device's bridge user (`cloudAcls`), bound to the bridge's client id. Under it the bridge carries everything a
 * device needs — the deployment down, upstream messages and presence up, a method call down and its reply up — and
 * the bridge's user can touch nothing of another device, nor write what only operators write.
 */
import * as realMqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, connectService, defineModule, json, method, type ServiceClient, typed } from '../../../src/index.js';
import { addresses } from '../../../src/names.js';
import { planAccess } from '../../../src/service/access.js';
import { readDeployment } from '../../../src/service/deployment.js';
import type { TransportConnection } from '../../../src/transport.js';
import {
  hashMosquittoPassword,
  mosquittoBridge,
  mosquittoDynamicSecurity,
  mosquittoSecurityConfig,
  mqtt,
} from '../../../src/transports/mqtt/index.js';
import { type Mosquitto, startMosquitto } from '../brokers/mosquitto.js';
import { Inbox } from './support/wait.js';

const DEVICE = 'gw-role';
const OPERATOR = '$operator/operator';
const BRIDGE_USER = 'bridge-gw-role';
const secret = (username: string) => `pw:${username}`;
const Sensor = defineModule({ outputs: { data: json<{ n: number }>() } });
const Filter = defineModule({ methods: { ping: method(typed<null>(), typed<string>()) } });
const manifest = {
  modulesContent: {
    $edgeAgent: { 'properties.desired': { modules: { sensor: {}, filter: {} } } },
    $edgeHub: {
      'properties.desired': {
        schemaVersion: '1.1',
        routes: { up: 'FROM /messages/modules/sensor/outputs/* INTO $upstream' },
      },
    },
  },
};

let cloud: Mosquitto;
let device: Mosquitto;
let service: ServiceClient;
let reader: TransportConnection;
const bridge = () =>
  mosquittoBridge({
    deviceId: DEVICE,
    cloudUrl: cloud.url,
    username: BRIDGE_USER,
    password: secret(BRIDGE_USER),
    reconnectInSeconds: { min: 1, max: 2 },
  });
const asOperator = () =>
  mqtt({ url: cloud.url, username: OPERATOR, password: secret(OPERATOR), connectTimeoutInMs: 5_000 });
const closing: Array<{ close(): Promise<void> }> = [];

beforeAll(async () => {
  const plan = planAccess(readDeployment(manifest), DEVICE);
  const passwords = new Map(plan.principals.map((p) => [p.username, hashMosquittoPassword(secret(p.username))]));
  const security = mosquittoDynamicSecurity(plan.principals, passwords);
  // The role does not depend on where the cloud is: render it before the broker starts.
  const { cloudAcls } = mosquittoBridge({ deviceId: DEVICE, cloudUrl: 'mqtts://cloud.invalid' });
  cloud = await startMosquitto({
    persistence: true,
    dynamicSecurity: {
      json: {
        ...security,
        roles: [...security.roles, { rolename: 'edgekit-bridge-gw-role', acls: cloudAcls }],
        clients: [
          ...security.clients,
          {
            username: BRIDGE_USER,
            clientid: `edgekit-bridge-${DEVICE}`,
            ...hashMosquittoPassword(secret(BRIDGE_USER)),
            roles: [{ rolename: 'edgekit-bridge-gw-role' }],
          },
        ],
      },
      config: (file) => mosquittoSecurityConfig({ dynamicSecurityFile: file }),
    },
  });
  service = await connectService({ transport: asOperator(), identity: OPERATOR });
  reader = await asOperator().connect({ clientId: 'upstream-reader', identity: OPERATOR });
  device = await startMosquitto({ config: bridge().config.split('\n') });
}, 60_000);

afterAll(async () => {
  await Promise.allSettled(closing.map((c) => c.close()));
  await reader?.close();
  await service?.close();
  await device?.stop();
  await cloud?.stop();
});

describe('a bridge under the cloud role it was rendered with', () => {
  it('carries the deployment down, upstream and presence up, and a method call both ways', async () => {
    await expect.poll(() => service.link(DEVICE), { timeout: 15_000 }).toEqual({ state: 'connected' });
    const upstream = new Inbox<string>();
    await reader.consume(addresses.upstream(DEVICE), { prefetch: 10 }, (delivery) => {
      upstream.push(delivery.publisher ?? '');
      delivery.ack();
    });
    await service.applyDeployment(DEVICE, manifest);
    const local = mqtt({ url: device.url });
    const routes = new Inbox<boolean>();
    const watcher = await local.connect({ clientId: 'routes-watch' });
    closing.push(watcher);
    await watcher.watchRetained(addresses.routes(DEVICE), (v) => routes.push(v !== undefined));
    await routes.until((r) => r.at(-1) === true, 10_000, 'the routes to reach the device');

    const sensor = await connect(Sensor, { deviceId: DEVICE, moduleId: 'sensor', transport: local });
    const filter = await connect(Filter, { deviceId: DEVICE, moduleId: 'filter', transport: local });
    closing.push(sensor, filter);
    await filter.handle('ping', () => 'pong');
    await sensor.send('data', { n: 1 });
    await upstream.until((u) => u.length >= 1, 10_000, 'the upstream message');
    expect(upstream.items[0]).toBe(`${DEVICE}/sensor`);
    expect(await service.invoke(DEVICE, 'filter', 'ping', null, { timeoutInMs: 10_000 })).toMatchObject({
      ok: true,
      payload: 'pong',
    });
  });

  it("the bridge's user cannot reach another device, nor write what only operators write", async () => {
    // Stop the device's broker so its bridge lets go of the client id the role is bound to.
    await device.stop();
    await expect.poll(() => service.link(DEVICE), { timeout: 15_000 }).toEqual({ state: 'disconnected' });
    const raw = await realMqtt.connectAsync(cloud.url, {
      protocolVersion: 5,
      clientId: `edgekit-bridge-${DEVICE}`,
      username: BRIDGE_USER,
      password: secret(BRIDGE_USER),
      reconnectPeriod: 0,
    });
    try {
      /** The reason code of the PUBACK: 135 is "not authorized". */
      const publishCode = (topic: string) =>
        raw.publishAsync(topic, 'x', { qos: 1 }).then(
          (ack) => (ack !== undefined && 'reasonCode' in ack ? (ack.reasonCode ?? 0) : 0),
          (error: { code?: number }) => error.code,
        );
      expect(await publishCode(`edgekit/v1/upstream/gw-other/gw-other/sensor`)).toBe(135);
      expect(await publishCode(`edgekit/v1/twin/${DEVICE}/filter/desired`)).toBe(135);
      expect(await publishCode(`edgekit/v1/routes/${DEVICE}`)).toBe(135);
      expect(await publishCode(`edgekit/v1/link/gw-other`)).toBe(135);
      expect(await publishCode(`edgekit/v1/upstream/${DEVICE}/${DEVICE}/sensor`)).not.toBe(135);
      /** The SUBACK reason code: 135 is "not authorized". */
      const subscribeCode = (topic: string) =>
        raw.subscribeAsync(topic, { qos: 1 }).then(
          (granted) => granted[0]?.qos,
          (error: { packet?: { granted?: number[] } }) => error.packet?.granted?.[0],
        );
      expect(await subscribeCode('edgekit/v1/twin/gw-other/+/desired')).toBe(135);
      expect(await subscribeCode('edgekit/v1/methods/gw-other/+/#')).toBe(135);
      // What goes up is not for the bridge to read at the cloud.
      expect(await subscribeCode(`edgekit/v1/upstream/${DEVICE}/#`)).toBe(135);
      expect(await subscribeCode(`edgekit/v1/twin/${DEVICE}/+/desired`)).toBe(1);
    } finally {
      await raw.endAsync();
    }
  });
});
