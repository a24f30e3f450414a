/**
 * The example modules with identities on, end to end as an operator sets them up: `edgekit identities` writes the
 * credentials and Mosquitto's dynamic-security configuration for examples/deployment.json; Mosquitto runs with it;
 * each module runs as its own process with only its environment (`EDGEKIT_PASSWORD_FILE`); the operator deploys and
 * watches with its own credential. The pipeline works — and a module with another's password file cannot start,
 * and `edgekit demo --identities` runs the same way.
 */
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectService, type ServiceClient } from '../../../src/service/client.js';
import { mosquittoSecurityConfig, mqtt } from '../../../src/transports/mqtt/index.js';
import { cli } from '../../cli/scenarios.js';
import { type Mosquitto, startMosquitto } from '../brokers/mosquitto.js';
import { REPO_ROOT, useProcesses } from './fixtures/child-process.js';
import { collectEnvelopes } from './fixtures/module-clients.js';
import { unique } from './support/fixtures.js';

const processes = useProcesses();
const SENSOR = path.join(REPO_ROOT, 'examples/temperature-sensor/main.ts');
const FILTER = path.join(REPO_ROOT, 'examples/filter/main.ts');
const SENSOR_ID = 'SimulatedTemperatureSensor';
const MANIFEST = path.join(REPO_ROOT, 'examples/deployment.json');

const device = unique('gw');
const out = mkdtempSync(path.join(tmpdir(), 'edgekit-identities-'));
const passwordFile = (username: string) => path.join(out, 'credentials', ...username.split('/'), 'password');
let broker: Mosquitto;
let operator: ServiceClient;

beforeAll(async () => {
  const made = await cli(['identities', MANIFEST, '--device', device, '--out', out]);
  expect(made.stderr).toBe('');
  expect(made.code).toBe(0);
  const json = JSON.parse(readFileSync(path.join(out, 'mosquitto', 'dynamic-security.json'), 'utf8'));
  broker = await startMosquitto({
    dynamicSecurity: { json, config: (file) => mosquittoSecurityConfig({ dynamicSecurityFile: file }) },
  });
  operator = await connectService({
    transport: mqtt({
      url: broker.url,
      username: '$operator/operator',
      password: readFileSync(passwordFile('$operator/operator'), 'utf8').trim(),
      sessionExpiryInSeconds: 0,
    }),
    identity: '$operator/operator',
  });
}, 60_000);

afterAll(async () => {
  await operator?.close();
  await broker?.stop();
});

const env = (moduleId: string, password = passwordFile(`${device}/${moduleId}`)) => ({
  IOTEDGE_DEVICEID: device,
  IOTEDGE_MODULEID: moduleId,
  EDGEKIT_BROKER_URL: broker.url,
  EDGEKIT_PASSWORD_FILE: password,
});

describe('the example modules with identities on', () => {
  it('sensor → filter → $upstream, each module logged in as itself', { timeout: 60_000 }, async () => {
    await operator.applyDeployment(device, JSON.parse(readFileSync(MANIFEST, 'utf8')));
    await operator.updateDesired(device, SENSOR_ID, { SendInterval: 0.1 });
    await operator.updateDesired(device, 'filter', { TemperatureThreshold: 22 });
    // The operator reads $upstream (MQTT keeps nothing for a queue that never had a consumer: subscribe first).
    const raw = await mqtt({
      url: broker.url,
      username: '$operator/operator',
      password: readFileSync(passwordFile('$operator/operator'), 'utf8').trim(),
    }).connect({ clientId: `${device}-upstream-reader`, identity: '$operator/operator' });
    try {
      const upstream = await collectEnvelopes(raw, `upstream/${device}`);
      const filter = processes.start(FILTER, env('filter'));
      await filter.line((l) => l === `filter ${device}/filter running`, 20_000, 'the filter to run');
      const sensor = processes.start(SENSOR, env(SENSOR_ID));
      await sensor.line((l) => l === `sensor ${device}/${SENSOR_ID} running`, 20_000, 'the sensor to run');
      const alert = await upstream.find(() => true, 15_000, 'an alert on upstream');
      expect(alert.header).toMatchObject({ sourceDeviceId: device, sourceModuleId: 'filter', sourceOutput: 'output1' });
      expect((await operator.getTwin(device, 'filter')).reported.properties).toMatchObject({
        TemperatureThreshold: 22,
      });
      expect(await sensor.stop('SIGTERM')).toEqual({ code: 0, signal: null });
      expect(await filter.stop('SIGTERM')).toEqual({ code: 0, signal: null });
      expect(sensor.stderr() + filter.stderr()).toBe('');
    } finally {
      await raw.close();
    }
  });

  it("a module started with another module's password file is refused at once", { timeout: 30_000 }, async () => {
    const impostor = processes.start(FILTER, env('filter', passwordFile(`${device}/${SENSOR_ID}`)));
    const exit = await impostor.exited;
    expect(exit.code).not.toBe(0);
    expect(impostor.stderr()).toMatch(/connection-failed|not authorized|refused/i);
  });

  it('edgekit demo --identities runs the example pipeline with each module logged in as itself', {
    timeout: 60_000,
  }, async () => {
    // The demo deploys to its own device, whose identities the same store gets.
    const made = await cli(['identities', MANIFEST, '--device', 'demo-device', '--out', out]);
    expect(made.code).toBe(0);
    const json = JSON.parse(readFileSync(path.join(out, 'mosquitto', 'dynamic-security.json'), 'utf8'));
    const demoBroker = await startMosquitto({
      dynamicSecurity: { json, config: (file) => mosquittoSecurityConfig({ dynamicSecurityFile: file }) },
    });
    try {
      const run = await cli(['demo', '--broker', demoBroker.url, '--identities', out, '--duration', '4']);
      expect(run.stderr).toBe('');
      expect(run.code).toBe(0);
      expect(run.stdout).toMatch(/each module with its own credential/);
      expect(run.stdout).toMatch(/filter processed [1-9]\d*/);
    } finally {
      await demoBroker.stop();
    }
  });
});
