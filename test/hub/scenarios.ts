/**
 * The Azure IoT Edge hub, tried with Microsoft's device SDK as the oracle: unmodified Azure modules (fixtures/
 * azure-module.cjs on azure-iot-device + azure-iot-device-mqtt, each its own process) and edgekit modules exchange
 * messages through routes, twins and methods, on whatever transport the calling file gives (memory, Mosquitto,
 * RabbitMQ).
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { connect } from '../../src/connect.js';
import { untypedModule } from '../../src/core/contract.js';
import type { InboundMessage, ModuleClient } from '../../src/core/types.js';
import { type Hub, startHub } from '../../src/hub/index.js';
import { connectService, type ServiceClient } from '../../src/service/client.js';
import type { Transport } from '../../src/transport.js';
import { type ModuleProcess, parseEvent, useProcesses } from '../integration/mqtt/fixtures/child-process.js';
import { testTls, until } from './support.js';

const AZURE_MODULE = fileURLToPath(new URL('./fixtures/azure-module.cjs', import.meta.url));
const HUB_HOST = 'hub.example.net';

/** Where the hub, the edgekit modules and the operator meet. */
export interface HubEnvironment {
  readonly name: string;
  transport(): Transport;
}

type Event = Record<string, unknown> & { readonly event: string };

/** An Azure module process and its JSON events. */
export interface AzureModule {
  readonly process: ModuleProcess;
  event(match: (e: Event) => boolean, what: string, ms?: number, after?: number): Promise<Event>;
  events(): Event[];
  mark(): number;
  command(command: Record<string, unknown>): void;
}

let counter = 0;
const uniqueDevice = () => `hub-${process.pid}-${++counter}-${randomBytes(3).toString('hex')}`;

/** A deployment with the given modules and routes. */
function manifest(modules: readonly string[], routes: Record<string, string>, desired: Record<string, object> = {}) {
  return {
    modulesContent: {
      $edgeAgent: { 'properties.desired': { modules: Object.fromEntries(modules.map((m) => [m, {}])) } },
      $edgeHub: { 'properties.desired': { schemaVersion: '1.1', routes } },
      ...Object.fromEntries(Object.entries(desired).map(([m, d]) => [m, { 'properties.desired': d }])),
    },
  };
}

const into = (module: string, input: string) => `INTO BrokeredEndpoint("/modules/${module}/inputs/${input}")`;

/** A test's world: a device, a hub for it, its operator, Azure module processes and edgekit modules. */
function useWorld(environment: HubEnvironment) {
  const processes = useProcesses();
  const folder = mkdtempSync(path.join(tmpdir(), 'edgekit-hub-test-'));
  const { ca, server, caFile } = testTls(folder, 'edgekit hub test CA');
  let hub: Hub | undefined;
  let service: ServiceClient | undefined;
  const clients: ModuleClient<typeof untypedModule>[] = [];
  const errors: string[] = [];
  let deviceId = '';
  let keys: Record<string, string> = {};
  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.close({ drainTimeoutInMs: 1_000 })));
    await hub?.close();
    hub = undefined;
    await service?.close();
    service = undefined;
  });
  afterAll(() => rmSync(folder, { recursive: true, force: true }));

  return {
    errors,
    get hub() {
      if (!hub) throw new Error('no hub');
      return hub;
    },
    get service() {
      if (!service) throw new Error('no service');
      return service;
    },
    get deviceId() {
      return deviceId;
    },
    async start(modules: readonly string[], routes: Record<string, string>, desired: Record<string, object> = {}) {
      deviceId = uniqueDevice();
      keys = Object.fromEntries(modules.map((m) => [m, randomBytes(32).toString('base64')]));
      service = await connectService({ transport: environment.transport() });
      await service.applyDeployment(deviceId, manifest(modules, routes, desired));
      hub = await startHub({
        deviceId,
        hubHostName: HUB_HOST,
        transport: environment.transport(),
        keys,
        tls: { cert: server.cert, key: server.key, ca: ca.cert },
        mqttPort: 0,
        httpsPort: 0,
        inputAckTimeoutInMs: 10_000,
        workloadSocket: path.join(folder, `workload-${counter}.sock`),
        onError: (error) => errors.push(`${error.code}: ${error.message}`),
      });
    },
    /** Starts the Azure fixture as module `moduleId`, configured as IoT Edge's local-debug environment does. */
    azure(moduleId: string, options: { key?: string; workload?: boolean } = {}): AzureModule {
      const key = options.key ?? keys[moduleId];
      if (key === undefined || !hub) throw new Error(`no key for ${moduleId}`);
      const connectionString = `HostName=${HUB_HOST};GatewayHostName=localhost:${hub.mqttPort};DeviceId=${deviceId};ModuleId=${moduleId};SharedAccessKey=${key}`;
      // The two ways IoT Edge configures a module: the local-debug connection string, or a module container's
      // variables with the workload API signing its tokens.
      const identity: Record<string, string> = options.workload
        ? {
            IOTEDGE_WORKLOADURI: `unix://${hub.workloadSocket}`,
            IOTEDGE_DEVICEID: deviceId,
            IOTEDGE_MODULEID: moduleId,
            IOTEDGE_MODULEGENERATIONID: '1',
            IOTEDGE_IOTHUBHOSTNAME: HUB_HOST,
            IOTEDGE_GATEWAYHOSTNAME: `localhost:${hub.mqttPort}`,
            IOTEDGE_AUTHSCHEME: 'sasToken',
            IOTEDGE_APIVERSION: '2018-06-28',
          }
        : { EdgeHubConnectionString: connectionString, EdgeModuleCACertificateFile: caFile };
      const child = processes.start(
        AZURE_MODULE,
        {
          ...identity,
          HUB_HTTPS_PORT: String(hub.httpsPort),
          HUB_CA_FILE: caFile,
          HUB_DEVICE_ID: deviceId,
        },
        { stdin: true },
      );
      const events = () => child.lines.items.map(parseEvent).filter((e): e is Event => typeof e?.event === 'string');
      return {
        process: child,
        events,
        mark: () => child.lines.items.length,
        command: (command) => child.write(JSON.stringify(command)),
        async event(match, what, ms = 15_000, after = 0) {
          const lines = child.lines.items;
          const line = await child.line(
            (l) => {
              const e = parseEvent(l);
              return typeof e?.event === 'string' && lines.lastIndexOf(l) >= after && match(e as Event);
            },
            ms,
            what,
          );
          return parseEvent(line) as Event;
        },
      };
    },
    async edgekit(moduleId: string): Promise<ModuleClient<typeof untypedModule>> {
      const client = await connect(untypedModule, { deviceId, moduleId, transport: environment.transport() });
      clients.push(client);
      return client;
    },
  };
}

/** Collects an edgekit module's inputs. */
function inbox(client: ModuleClient<typeof untypedModule>, input: string) {
  const received: InboundMessage<Uint8Array>[] = [];
  const waiters: Array<() => void> = [];
  const registration = client.onInput(input, (message) => {
    received.push(message);
    for (const w of waiters.splice(0)) w();
  });
  return {
    received,
    ready: registration,
    async count(n: number, ms = 15_000): Promise<InboundMessage<Uint8Array>[]> {
      const deadline = Date.now() + ms;
      while (received.length < n) {
        const left = deadline - Date.now();
        if (left <= 0) throw new Error(`${input}: ${received.length} of ${n} messages after ${ms} ms`);
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, left);
          waiters.push(() => {
            clearTimeout(t);
            resolve();
          });
        });
      }
      return received;
    },
  };
}

const text = (bytes: Uint8Array) => Buffer.from(bytes).toString('utf8');

/** The scenarios every transport runs. */
export function hubScenarios(environment: HubEnvironment): void {
  describe(`Azure IoT Edge modules through the hub (${environment.name})`, { timeout: 60_000 }, () => {
    const world = useWorld(environment);

    it('routes an Azure module’s outputs to an edgekit module by a WHERE condition, and back', async () => {
      await world.start(['azure', 'ek'], {
        alerts: `FROM /messages/modules/azure/outputs/out WHERE alert = 'true' ${into('ek', 'in')}`,
        toAzure: `FROM /messages/modules/ek/outputs/toAzure WHERE $contentType = 'application/json' ${into('azure', 'echo')}`,
        echoed: `FROM /messages/modules/azure/outputs/echoed ${into('ek', 'echoes')}`,
      });
      const ek = await world.edgekit('ek');
      const alerts = inbox(ek, 'in');
      const echoes = inbox(ek, 'echoes');
      await Promise.all([alerts.ready, echoes.ready]);
      const azure = world.azure('azure');
      await azure.event((e) => e.event === 'ready', 'the Azure module ready');

      azure.command({
        cmd: 'send',
        output: 'out',
        body: { t: 30 },
        properties: { alert: 'true' },
        count: 3,
        prefix: 'hot',
      });
      azure.command({
        cmd: 'send',
        output: 'out',
        body: { t: 10 },
        properties: { alert: 'false' },
        count: 2,
        prefix: 'cold',
      });
      await azure.event(
        (e) =>
          e.event === 'sent' &&
          e.n === 1 &&
          e.output === 'out' &&
          azure.events().filter((x) => x.event === 'sent').length === 5,
        'five sends acknowledged',
      );
      const got = await alerts.count(3);
      expect(got.map((m) => m.messageId)).toEqual(['hot-0', 'hot-1', 'hot-2']);
      expect(JSON.parse(text(got[0]!.body))).toEqual({ t: 30, n: 0 });
      expect(got[0]).toMatchObject({
        contentType: 'application/json',
        contentEncoding: 'utf-8',
        properties: { alert: 'true' },
        source: { deviceId: world.deviceId, moduleId: 'azure', output: 'out' },
      });

      // edgekit → Azure (only JSON passes the route), and the Azure module's echo back.
      await ek.send('toAzure', new TextEncoder().encode('{"x":1}'), {
        contentType: 'application/json',
        properties: { kind: 'probe' },
        messageId: 'probe-1',
      });
      await ek.send('toAzure', new TextEncoder().encode('plain'), { contentType: 'text/plain' });
      const input = await azure.event((e) => e.event === 'input', 'the input at the Azure module');
      expect(input).toMatchObject({
        input: 'echo',
        body: '{"x":1}',
        messageId: 'probe-1',
        contentType: 'application/json',
        properties: { kind: 'probe' },
      });
      expect((input.properties as Record<string, string>).kind).toBe('probe');
      const [echo] = await echoes.count(1);
      expect(text(echo!.body)).toBe('{"x":1}');
      expect(echo!.properties).toEqual({ echoed: 'true' });
      expect(azure.events().filter((e) => e.event === 'input')).toHaveLength(1);
      await until(
        async () => world.hub.stats(),
        (s) => s.outputs === 6,
        'six outputs counted',
      );
      expect(world.hub.stats()).toMatchObject({ inputs: 1, outputs: 6, outputsRefused: 0, unknownTopics: 0 });
      expect(world.errors).toEqual([]);
    });

    it('brings desired properties to the Azure module, also those set while it was away, and shows what it reports', async () => {
      await world.start(['azure'], {}, { azure: { threshold: 20 } });
      let azure = world.azure('azure');
      const twin = await azure.event((e) => e.event === 'twin', 'the first twin');
      expect(twin.desired).toMatchObject({ threshold: 20 });
      await azure.event((e) => e.event === 'ready', 'ready');

      await world.service.updateDesired(world.deviceId, 'azure', { threshold: 25, mode: 'eco' });
      const delta = await azure.event(
        (e) => e.event === 'desired' && (e.delta as { threshold?: number }).threshold === 25,
        'the desired patch',
      );
      expect(delta.delta).toMatchObject({ threshold: 25, mode: 'eco' });

      azure.command({ cmd: 'report', patch: { firmware: '1.2.3', threshold: 25 } });
      await azure.event((e) => e.event === 'reported', 'the reported patch acknowledged');
      const stored = await world.service.getTwin(world.deviceId, 'azure');
      expect(stored.reported.properties).toEqual({ firmware: '1.2.3', threshold: 25 });

      azure.command({ cmd: 'close' });
      await azure.process.exited;
      await until(
        () => world.service.modules(world.deviceId),
        (rows) => rows.some((r) => r.moduleId === 'azure' && r.state === 'offline'),
        'the Azure module offline',
      );
      await world.service.updateDesired(world.deviceId, 'azure', { threshold: 31, mode: null });
      azure = world.azure('azure');
      const again = await azure.event((e) => e.event === 'twin', 'the twin after the restart');
      expect(again.desired).toMatchObject({ threshold: 31 });
      expect((again.desired as Record<string, unknown>).mode).toBeUndefined();
      expect(again.reported).toMatchObject({ firmware: '1.2.3' });
    });

    it('serves methods both ways, with the statuses Azure callers expect', async () => {
      await world.start(['azure', 'ek'], {});
      const ek = await world.edgekit('ek');
      await ek.handle('add', (request: unknown) => {
        const { a, b } = request as { a: number; b: number };
        return { sum: a + b };
      });
      const azure = world.azure('azure');
      await azure.event((e) => e.event === 'ready', 'ready');

      // operator and edgekit module → Azure module
      const pong = await world.service.invoke(world.deviceId, 'azure', 'ping', { x: 1 }, { timeoutInMs: 5_000 });
      expect(pong).toMatchObject({ ok: true, status: 200, payload: { pong: { x: 1 } } });
      const failed = await ek.invoke(untypedModule, 'azure', 'fail', null, { timeoutInMs: 5_000 });
      expect(failed).toMatchObject({ ok: false, status: 409, payload: { reason: 'busy' } });
      const silent = await world.service.invoke(world.deviceId, 'azure', 'silent', {}, { timeoutInMs: 5_000 });
      expect(silent.status).toBe(504);

      // Azure module → edgekit module over the hub's HTTPS endpoint
      azure.command({ cmd: 'invoke', module: 'ek', method: 'add', payload: { a: 2, b: 3 } });
      const added = await azure.event((e) => e.event === 'invoked', 'the result of add');
      expect(added).toEqual({ event: 'invoked', result: { status: 200, payload: { sum: 5 } } });
      let mark = azure.mark();
      azure.command({ cmd: 'invoke', module: 'nobody', method: 'add', payload: {} });
      const missing = await azure.event((e) => e.event === 'invoked', 'the call to an absent module', 15_000, mark);
      expect(missing.error).toMatchObject({ message: expect.stringMatching(/not found/i) });
      mark = azure.mark();
      await ek.handle('stall', () => new Promise(() => {}));
      azure.command({ cmd: 'invoke', module: 'ek', method: 'stall', payload: {}, timeout: 5 });
      const stalled = await azure.event((e) => e.event === 'invoked', 'the call that times out', 15_000, mark);
      expect(stalled.error).toMatchObject({ name: 'GatewayTimeoutError' });
    });

    it('loses nothing when the Azure module is killed mid-stream', async () => {
      await world.start(['azure', 'ek'], {
        toAzure: `FROM /messages/modules/ek/outputs/* ${into('azure', 'work')}`,
        back: `FROM /messages/modules/azure/outputs/* ${into('ek', 'done')}`,
      });
      const ek = await world.edgekit('ek');
      const done = inbox(ek, 'done');
      await done.ready;
      // Connected once first: on MQTT a module's queue exists from its first connection (docs/transports/mqtt.md).
      const first = world.azure('azure');
      await first.event((e) => e.event === 'ready', 'ready');
      const total = 200;
      for (let n = 0; n < total; n++)
        await ek.send('work', new TextEncoder().encode(String(n)), { messageId: `w-${n}` });
      await first.event((e) => e.event === 'input' && e.messageId === 'w-40', 'the 41st input');
      first.command({ cmd: 'send', output: 'results', body: { from: 'first' }, count: 20, prefix: 'r' });
      await first.event((e) => e.event === 'sent' && e.n === 9, 'ten results sent');
      await first.process.stop('SIGKILL');
      const seenFirst = new Set(
        first
          .events()
          .filter((e) => e.event === 'input')
          .map((e) => e.messageId),
      );
      const sentFirst = first
        .events()
        .filter((e) => e.event === 'sent')
        .map((e) => `r-${e.n}`);

      const second = world.azure('azure');
      await until(
        async () => second.events().filter((e) => e.event === 'input').length,
        (n) => seenFirst.size + n >= total,
        'the rest of the stream at the restarted module',
        30_000,
      );
      const seen = new Set([
        ...seenFirst,
        ...second
          .events()
          .filter((e) => e.event === 'input')
          .map((e) => e.messageId),
      ]);
      expect([...Array(total).keys()].filter((n) => !seen.has(`w-${n}`))).toEqual([]);
      // Every result the first process saw acknowledged reached the edgekit module.
      await done.count(sentFirst.length);
      const arrived = new Set(done.received.map((m) => m.messageId));
      expect(sentFirst.filter((id) => !arrived.has(id))).toEqual([]);
    });

    it('connects a module configured as an IoT Edge container: workload API tokens and trust bundle', async () => {
      await world.start(['azure'], {}, { azure: { mode: 'container' } });
      const azure = world.azure('azure', { workload: true });
      const twin = await azure.event((e) => e.event === 'twin', 'the twin');
      expect(twin.desired).toMatchObject({ mode: 'container' });
      expect(world.hub.connected()).toEqual(['azure']);
    });

    it('refuses a module with a wrong SAS key, and one the deployment’s keys do not know', async () => {
      await world.start(['azure'], {});
      const wrong = world.azure('azure', { key: randomBytes(32).toString('base64') });
      const refused = await wrong.event((e) => e.event === 'error' && e.what === 'open', 'the refusal');
      expect(refused.name).toBe('UnauthorizedError');
      expect(world.hub.connected()).toEqual([]);
      expect(world.hub.stats().refused).toBeGreaterThanOrEqual(1);
      expect(world.errors.join('\n')).toContain('signature does not match');
      const modules = await world.service.modules(world.deviceId);
      expect(modules.find((m) => m.moduleId === 'azure')?.state).toBe('unknown');
    });
  });
}
