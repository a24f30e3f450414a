/**
 * A device behind the bridge `mosquittoBridge` renders, on two real Mosquittos on loopback: the device's broker
 * runs the generated `connection` section and reaches the cloud's broker through a TCP proxy that can cut the link.
 * Everything the operator does goes to the cloud broker only — the ServiceClient and the `edgekit` CLI — and the
 * modules connect to the device broker only.
 *
 * The link is cut for 20 s in the middle of a 5,000-message upstream stream: every message arrives once the link
 * heals, messages whose route time to live ended while they waited never arrive, the cloud sees the device's link go
 * down and up, a method call during the cut answers 404 at once, and a desired change made during the cut reaches
 * the module after it.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  connect,
  connectService,
  defineModule,
  json,
  type ModuleClient,
  type ServiceClient,
} from '../../../src/index.js';
import { addresses } from '../../../src/names.js';
import type { TransportConnection } from '../../../src/transport.js';
import { cli } from '../../cli/scenarios.js';
import type { Mosquitto } from '../brokers/mosquitto.js';
import { CUT_MS, Filter, manifest, Sensor, STREAM, streamAcrossCut } from '../support/bridge-scenario.js';
import { type BridgedDevice, startBridgedDevice } from '../support/bridged-device.js';
import { startTcpProxy, type TcpProxy } from '../support/tcp-proxy.js';
import { transportFor } from './support/fixtures.js';
import { Inbox } from './support/wait.js';

const deviceId = `gw-${randomUUID().slice(0, 8)}`;

let brokers: BridgedDevice;
let cloud: Mosquitto;
let device: Mosquitto;
let link: TcpProxy;
let service: ServiceClient;
/** A plain connection to the cloud broker: the link watch. */
let reader: TransportConnection;
/** Ends the operator's upstream loop. */
const stopUpstream = new AbortController();
let upstreamLoop: Promise<void> | undefined;
const linkStates = new Inbox<string | undefined>();
const upstream = new Inbox<{ output: string; n: number }>();
const modules: ModuleClient[] = [];

beforeAll(async () => {
  brokers = await startBridgedDevice({ deviceId });
  ({ cloud, device, link } = brokers);
  reader = await transportFor(cloud.url).connect({ clientId: `upstream-reader-${deviceId}` });
  await reader.watchRetained(addresses.link(deviceId), (value) =>
    linkStates.push(value === undefined ? undefined : new TextDecoder().decode(value)),
  );
  await linkStates.until((s) => s.at(-1) === '1', 15_000, 'the bridge to connect');
  service = await connectService({ transport: transportFor(cloud.url) });
}, 60_000);

/**
 * The operator reads the device's upstream on the cloud broker, as `edgekit upstream` does: each message is
 * acknowledged when the loop asks for the next one.
 */
async function readUpstream(): Promise<void> {
  const consumer = await service.upstream(deviceId, { prefetch: 500, abortSignal: stopUpstream.signal });
  upstreamLoop = (async () => {
    try {
      for await (const event of consumer) {
        if (event.type !== 'message') throw new Error(`undecodable upstream message: ${event.error.message}`);
        upstream.push({ output: event.source.output ?? '', n: (await event.decode(json<{ n: number }>())).n });
      }
    } catch (error) {
      if (!stopUpstream.signal.aborted) throw error;
    }
  })();
}

afterAll(async () => {
  stopUpstream.abort();
  await upstreamLoop;
  await Promise.allSettled(modules.map((m) => m.close()));
  await service?.close();
  await reader?.close();
  await brokers?.stop();
});

/** Resolves once the device's broker holds the route table the cloud deployed. */
async function routesOnDevice(): Promise<void> {
  const local = await transportFor(device.url).connect({ clientId: `routes-check-${deviceId}` });
  try {
    const seen = new Inbox<boolean>();
    await local.watchRetained(addresses.routes(deviceId), (v) => seen.push(v !== undefined));
    await seen.until((s) => s.at(-1) === true, 10_000, 'the routes to cross the bridge');
  } finally {
    await local.close();
  }
}

describe('a device bridged to the cloud by the generated Mosquitto configuration', () => {
  let sensor: ModuleClient<typeof Sensor>;
  let filter: ModuleClient<typeof Filter>;
  const desired = new Inbox<number | undefined>();
  const handled = new Inbox<number>();
  let failing = true;

  it('takes its deployment from the cloud; desired changes and method calls reach the device module', async () => {
    const applied = await service.applyDeployment(deviceId, manifest);
    expect([...applied.modules].sort()).toEqual(['filter', 'sensor']);
    // The deployment made the cloud keep the device's upstream (and dead letters) for the operator from now on.
    await readUpstream();
    await routesOnDevice();
    const transport = transportFor(device.url);
    sensor = await connect(Sensor, { deviceId, moduleId: 'sensor', transport, onError: () => undefined });
    // One attempt: a message its handler fails on is dead-lettered at once.
    filter = await connect(Filter, {
      deviceId,
      moduleId: 'filter',
      transport,
      maxAttempts: 1,
      onError: () => undefined,
    });
    modules.push(sensor, filter);
    await filter.onDesired(async (d) => {
      desired.push(d.threshold);
      if (d.threshold !== undefined) await filter.report({ threshold: d.threshold });
    });
    await filter.handle('ping', async ({ n }) => ({ pong: n + 1 }));
    await filter.onInput('in', async ({ body }) => {
      if (failing) throw new Error(`cannot handle ${body.n} yet`);
      handled.push(body.n);
    });
    await desired.until((d) => d.includes(1), 10_000, 'the deployed desired properties');

    await service.updateDesired(deviceId, 'filter', { threshold: 2 });
    await desired.until((d) => d.includes(2), 10_000, 'the desired change made in the cloud');
    // The reported answer crosses back: the operator reads it from the cloud broker.
    await expect
      .poll(async () => (await service.getTwin(deviceId, 'filter')).reported.properties, { timeout: 10_000 })
      .toEqual({ threshold: 2 });

    // Presence crossed up (the caller reads it first), the request down and the reply up.
    const answer = await service.invoke(deviceId, 'filter', 'ping', { n: 41 }, { timeoutInMs: 10_000 });
    expect(answer).toMatchObject({ ok: true, status: 200, payload: { pong: 42 } });
    expect(await service.link(deviceId)).toEqual({ state: 'connected' });
  });

  it('the CLI against the cloud broker alone: status shows the modules and the link, invoke and twin set reach the device', async () => {
    const broker = ['--broker', cloud.url];
    const status = await cli(['status', deviceId, ...broker]);
    expect(status).toMatchObject({ code: 0, stderr: '' });
    expect(status.stdout).toMatch(new RegExp(`${deviceId}\\s+filter\\s+online`));
    expect(status.stdout).toMatch(new RegExp(`${deviceId}\\s+sensor\\s+online`));
    expect(status.stdout).toContain(`cloud link of ${deviceId}: connected`);

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
      // The cloud broker writes the bridge's last will at once: the device is disconnected.
      whenDown: () =>
        linkStates.until((s) => s.at(-1) === '0', 10_000, 'the cloud to see the link down').then(() => undefined),
      duringCut: async () => {
        const duringCut = await service.invoke(deviceId, 'filter', 'ping', { n: 0 }, { timeoutInMs: 10_000 });
        expect(duringCut).toMatchObject({ ok: false, status: 404 });
        expect(duringCut.ok ? '' : duringCut.message).toContain(`device ${deviceId} is not connected to the cloud`);
        const status = await cli(['status', deviceId, '--broker', cloud.url]);
        expect(status.stdout).toContain(`cloud link of ${deviceId}: disconnected`);
        await service.updateDesired(deviceId, 'filter', { threshold: 4 });
      },
      whenUp: () => linkStates.until((s) => s.at(-1) === '1', 15_000, 'the bridge to reconnect').then(() => undefined),
    });

    await desired.until((d) => d.includes(4), 10_000, 'the desired change made during the cut');
    const after = await service.invoke(deviceId, 'filter', 'ping', { n: 9 }, { timeoutInMs: 10_000 });
    expect(after).toMatchObject({ ok: true, payload: { pong: 10 } });
  }, 120_000);

  it('dead letters cross up; replay from the cloud is refused while the link is down, and reaches the module once it is back', async () => {
    const letters = service.deadLetters(deviceId, 'filter');
    await sensor.send('poison', { n: 7 });
    await expect
      .poll(
        async () => (await letters.list()).entries.map((e) => (e.type === 'message' ? e.deadLetter.reason : e.type)),
        {
          timeout: 15_000,
        },
      )
      .toEqual(['handler-failed']);
    const listed = await cli(['deadletter', 'list', `${deviceId}/filter`, '--json', '--broker', cloud.url]);
    expect(listed).toMatchObject({ code: 0 });
    expect(listed.stdout).toContain('"reason":"handler-failed"');

    link.cut({ refuse: true });
    await linkStates.until((s) => s.at(-1) === '0', 10_000, 'the cloud to see the link down');
    await expect(letters.replay()).rejects.toThrow(
      `device ${deviceId} is not connected to the cloud (the bridge of its broker is down); nothing was replayed`,
    );
    link.heal();
    await linkStates.until((s) => s.at(-1) === '1', 15_000, 'the bridge to reconnect');

    failing = false;
    const result = await letters.replay();
    expect(result.replayed).toHaveLength(1);
    expect(result.skipped).toEqual([]);
    expect(await handled.until((h) => h.includes(7), 10_000, 'the replayed message at the module')).toContain(7);
    expect((await letters.list()).entries).toEqual([]);
  });

  it("a module whose connection dies on the device shows offline in the cloud: the device broker's will crosses up", async () => {
    const proxy = await startTcpProxy(device.port);
    try {
      const Probe = defineModule({});
      const probe = await connect(Probe, {
        deviceId,
        moduleId: 'probe',
        transport: transportFor(`mqtt://127.0.0.1:${proxy.port}`),
        onError: () => undefined,
      });
      modules.push(probe);
      const row = async () => (await service.modules(deviceId)).find((m) => m.moduleId === 'probe');
      await expect.poll(async () => (await row())?.state, { timeout: 10_000 }).toBe('online');
      proxy.cut({ refuse: true });
      await expect.poll(async () => (await row())?.reason, { timeout: 10_000 }).toBe('connection-lost');
      // Listed among the devices the cloud knows, with the module offline and the link up.
      const status = await cli(['status', '--broker', cloud.url]);
      expect(status.stdout).toMatch(new RegExp(`${deviceId}\\s+probe\\s+offline \\(lost\\)`));
      expect(status.stdout).toContain(`cloud link of ${deviceId}: connected`);
    } finally {
      await proxy.close();
    }
  });
});
