/**
 * examples/azure-module — an Azure IoT Edge module on Microsoft's device SDK, unmodified — in an edgekit deployment:
 * the hub on the memory transport, the Azure module as its own process configured by its connection string, an
 * edgekit module standing in for the filter (its alerts in, the Azure module's summaries out) and the operator.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import type { Reading } from '../../examples/temperature-sensor/module.js';
import { json } from '../../src/codecs/codec.js';
import { connect } from '../../src/connect.js';
import { defineModule } from '../../src/core/contract.js';
import type { InboundMessage, ModuleClient } from '../../src/core/types.js';
import { type Hub, startHub } from '../../src/hub/index.js';
import { connectService, type ServiceClient } from '../../src/service/client.js';
import { MemoryBroker, memory } from '../../src/transports/memory/index.js';
import { type ModuleProcess, useProcesses } from '../integration/mqtt/fixtures/child-process.js';
import { Inbox } from '../integration/mqtt/support/wait.js';
import { testTls, until } from './support.js';

const AZURE_MODULE = fileURLToPath(new URL('../../examples/azure-module/index.js', import.meta.url));
const COUNTER = 'azure-alert-counter';
const HUB_HOST = 'hub.example.net';

interface Summary {
  alertsSeen: number;
  maxTemperature: number | null;
  SummaryEvery: number;
  timeCreated: string;
}

/** The edgekit side: sends the filter's alerts, hears the counter's summaries. */
const Ek = defineModule({
  inputs: { summaries: json<Summary>() },
  outputs: { alerts: json<Reading>() },
});

const broker = new MemoryBroker();
const transport = () => memory({ broker });
let counter = 0;
const uniqueDevice = () => `sample-${process.pid}-${++counter}-${randomBytes(3).toString('hex')}`;

const reading = (temperature: number): Reading => ({
  machine: { temperature, pressure: 1.2 },
  ambient: { temperature: 21, humidity: 25 },
  timeCreated: new Date().toISOString(),
});

describe('examples/azure-module through the hub (memory)', { timeout: 60_000 }, () => {
  const processes = useProcesses();
  const folder = mkdtempSync(path.join(tmpdir(), 'edgekit-azure-sample-'));
  const { ca, server, caFile } = testTls(folder, 'edgekit azure sample test CA');
  let hub: Hub | undefined;
  let service: ServiceClient | undefined;
  let ek: ModuleClient<typeof Ek> | undefined;
  const errors: string[] = [];

  afterEach(async () => {
    await ek?.close({ drainTimeoutInMs: 1_000 });
    ek = undefined;
    await hub?.close();
    hub = undefined;
    await service?.close();
    service = undefined;
    errors.length = 0;
  });
  afterAll(() => rmSync(folder, { recursive: true, force: true }));

  /**
   * A device with the hub, the operator, the edgekit module `ek` listening for summaries, and the counter started —
   * configured by a connection string (IoT Edge's local-debug form), or by the IOTEDGE_* variables and the workload
   * API as in a module container.
   */
  async function start(options: { desired?: Record<string, unknown>; workload?: boolean } = {}) {
    const deviceId = uniqueDevice();
    const keys = { [COUNTER]: randomBytes(32).toString('base64') };
    service = await connectService({ transport: transport() });
    await service.applyDeployment(deviceId, {
      modulesContent: {
        $edgeAgent: { 'properties.desired': { modules: { [COUNTER]: {}, ek: {} } } },
        $edgeHub: {
          'properties.desired': {
            schemaVersion: '1.1',
            routes: {
              alerts: `FROM /messages/modules/ek/outputs/alerts INTO BrokeredEndpoint("/modules/${COUNTER}/inputs/alerts")`,
              summaries: `FROM /messages/modules/${COUNTER}/outputs/summary INTO BrokeredEndpoint("/modules/ek/inputs/summaries")`,
            },
          },
        },
        [COUNTER]: { 'properties.desired': options.desired ?? {} },
      },
    });
    hub = await startHub({
      deviceId,
      hubHostName: HUB_HOST,
      transport: transport(),
      keys,
      tls: { cert: server.cert, key: server.key, ca: ca.cert },
      mqttPort: 0,
      httpsPort: 0,
      inputAckTimeoutInMs: 10_000,
      onError: (error) => errors.push(`${error.code}: ${error.message}`),
      ...(options.workload ? { workloadSocket: path.join(folder, `workload-${counter}.sock`) } : {}),
    });
    ek = await connect(Ek, { deviceId, moduleId: 'ek', transport: transport() });
    const summaries = new Inbox<InboundMessage<Summary>>();
    await ek.onInput('summaries', (message) => summaries.push(message));
    const azure = processes.start(
      AZURE_MODULE,
      options.workload
        ? {
            IOTEDGE_WORKLOADURI: `unix://${hub.workloadSocket}`,
            IOTEDGE_DEVICEID: deviceId,
            IOTEDGE_MODULEID: COUNTER,
            IOTEDGE_MODULEGENERATIONID: '1',
            IOTEDGE_IOTHUBHOSTNAME: HUB_HOST,
            IOTEDGE_GATEWAYHOSTNAME: `localhost:${hub.mqttPort}`,
            IOTEDGE_AUTHSCHEME: 'sasToken',
            IOTEDGE_APIVERSION: '2018-06-28',
          }
        : {
            EdgeHubConnectionString: `HostName=${HUB_HOST};GatewayHostName=localhost:${hub.mqttPort};DeviceId=${deviceId};ModuleId=${COUNTER};SharedAccessKey=${keys[COUNTER]}`,
            EdgeModuleCACertificateFile: caFile,
          },
    );
    await azure.line((l) => l.includes('ready'), 15_000, 'the counter ready');
    return { deviceId, service, ek, summaries, azure };
  }

  const reported = (service: ServiceClient, deviceId: string) =>
    service.getTwin(deviceId, COUNTER).then((twin) => twin.reported.properties as Record<string, unknown>);

  /** Plain-text log lines, one per event, none of them JSON. */
  function expectPlainLog(azure: ModuleProcess) {
    expect(azure.lines.items.length).toBeGreaterThan(0);
    for (const line of azure.lines.items) {
      if (line === '') continue;
      expect(line).toMatch(/^\[azure-alert-counter\] /);
      expect(line.startsWith('{')).toBe(false);
    }
  }

  it('counts the alerts, sends a summary every SummaryEvery alerts, follows the desired value and answers methods', async () => {
    const { deviceId, service, ek, summaries, azure } = await start();
    expect(azure.lines.items).toContain('[azure-alert-counter] ready: a summary every 5 alerts');
    await until(
      () => reported(service, deviceId),
      (r) => r.SummaryEvery === 5 && r.alertsSeen === 0,
      'the first report',
    );

    const temperatures = [26.5, 31.2, 28, 29.9, 27.25];
    for (const t of temperatures) await ek.send('alerts', reading(t), { properties: { MessageType: 'Alert' } });
    const [first] = await summaries.take(1, 15_000, 'the first summary');
    expect(first!.body).toMatchObject({ alertsSeen: 5, maxTemperature: 31.2, SummaryEvery: 5 });
    expect(first!.properties).toEqual({ kind: 'summary' });
    expect(first!.contentType).toBe('application/json');
    expect(first!.source).toMatchObject({ deviceId, moduleId: COUNTER, output: 'summary' });
    expect(azure.lines.items).toContain('[azure-alert-counter] alert 2: 31.2 °C');
    await until(
      () => reported(service, deviceId),
      (r) => r.alertsSeen === 5,
      'the counts reported with the summary',
    );

    // The operator asks for a summary every 2 alerts: applied, and reported back.
    await service.updateDesired(deviceId, COUNTER, { SummaryEvery: 2 });
    const afterChange = await until(
      () => reported(service, deviceId),
      (r) => r.SummaryEvery === 2,
      'SummaryEvery 2 reported',
    );
    expect(afterChange).toEqual({ alertsSeen: 5, maxTemperature: 31.2, SummaryEvery: 2 });
    await ek.send('alerts', reading(35.5));
    await ek.send('alerts', reading(30));
    const [, second] = await summaries.take(2, 15_000, 'the second summary');
    expect(second!.body).toMatchObject({ alertsSeen: 7, maxTemperature: 35.5, SummaryEvery: 2 });
    expect(second!.properties).toEqual({ kind: 'summary' });
    await until(
      () => reported(service, deviceId),
      (r) => r.alertsSeen === 7 && r.maxTemperature === 35.5 && r.SummaryEvery === 2,
      'the counts after the second summary',
    );

    // Direct methods, from the operator.
    const summary = await service.invoke(deviceId, COUNTER, 'getSummary', {}, { timeoutInMs: 5_000 });
    expect(summary).toMatchObject({ ok: true, status: 200, payload: { alertsSeen: 7, maxTemperature: 35.5 } });
    const reset = await service.invoke(deviceId, COUNTER, 'resetSummary', {}, { timeoutInMs: 5_000 });
    expect(reset).toMatchObject({
      ok: true,
      status: 200,
      payload: { reset: true, previous: { alertsSeen: 7, maxTemperature: 35.5 } },
    });
    const afterReset = await service.invoke(deviceId, COUNTER, 'getSummary', {}, { timeoutInMs: 5_000 });
    expect(afterReset.payload).toEqual({ alertsSeen: 0, maxTemperature: null });
    // No maximum any more: the reported null removes it from the twin, as on IoT Hub.
    const afterResetReported = await until(
      () => reported(service, deviceId),
      (r) => r.alertsSeen === 0,
      'the reset reported',
    );
    expect(afterResetReported).toEqual({ alertsSeen: 0, SummaryEvery: 2 });
    expect(summaries.items).toHaveLength(2);

    const exit = await azure.stop('SIGTERM');
    expect(exit).toEqual({ code: 0, signal: null });
    expect(azure.stderr()).toBe('');
    expect(azure.lines.items).toContain('[azure-alert-counter] stopped');
    expectPlainLog(azure);
    expect(errors).toEqual([]);
  });

  it('starts with the deployment’s SummaryEvery, skips what is no reading, ignores an invalid value and stops on SIGINT', async () => {
    const { deviceId, service, ek, summaries, azure } = await start({ desired: { SummaryEvery: 3 } });
    expect(azure.lines.items).toContain('[azure-alert-counter] ready: a summary every 3 alerts');
    await until(
      () => reported(service, deviceId),
      (r) => r.SummaryEvery === 3,
      'SummaryEvery 3 reported',
    );

    await service.updateDesired(deviceId, COUNTER, { SummaryEvery: 0 });
    await azure.line((l) => l.includes('ignored desired SummaryEvery 0'), 10_000, 'the invalid value ignored');
    expect((await reported(service, deviceId)).SummaryEvery).toBe(3);

    await ek.send('alerts', { nothing: 'here' } as unknown as Reading);
    for (const t of [40, 41, 39]) await ek.send('alerts', reading(t));
    const [only] = await summaries.take(1, 15_000, 'the summary of three alerts');
    expect(only!.body).toMatchObject({ alertsSeen: 3, maxTemperature: 41, SummaryEvery: 3 });
    expect(azure.lines.items).toContain('[azure-alert-counter] skipped an alert without a machine temperature');

    const exit = await azure.stop('SIGINT');
    expect(exit).toEqual({ code: 0, signal: null });
    expect(azure.stderr()).toBe('');
    expectPlainLog(azure);
    await until(
      () => service.modules(deviceId),
      (rows) => rows.some((r) => r.moduleId === COUNTER && r.state === 'offline'),
      'the counter offline',
    );
    expect(errors).toEqual([]);
  });

  it('runs the same from the IOTEDGE_* variables and the workload API, as in a module container', async () => {
    const { deviceId, service, ek, summaries, azure } = await start({ workload: true, desired: { SummaryEvery: 2 } });
    expect(azure.lines.items).toContain('[azure-alert-counter] ready: a summary every 2 alerts');
    await ek.send('alerts', reading(33));
    await ek.send('alerts', reading(36.6));
    const [only] = await summaries.take(1, 15_000, 'the summary of two alerts');
    expect(only!.body).toMatchObject({ alertsSeen: 2, maxTemperature: 36.6, SummaryEvery: 2 });
    expect(only!.properties).toEqual({ kind: 'summary' });
    const summary = await service.invoke(deviceId, COUNTER, 'getSummary', {}, { timeoutInMs: 5_000 });
    expect(summary).toMatchObject({ status: 200, payload: { alertsSeen: 2, maxTemperature: 36.6 } });

    const exit = await azure.stop('SIGTERM');
    expect(exit).toEqual({ code: 0, signal: null });
    expect(azure.stderr()).toBe('');
    expectPlainLog(azure);
    expect(errors).toEqual([]);
  });
});
