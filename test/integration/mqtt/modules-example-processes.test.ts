/**
 * The example modules as their own processes on a real Mosquitto, configured only by environment variables the way
 * they run in containers (examples/temperature-sensor/main.ts and examples/filter/main.ts): with the routes of
 * examples/deployment.json deployed, the sensor's readings reach the filter, and the filter's alert reaches
 * `upstream/<device>`. Both processes stop cleanly on SIGTERM.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { routesFromManifest } from '../../../src/routing/index.js';
import { deployRoutes, readTwin, updateDesired } from '../../../src/service/operations.js';
import { REPO_ROOT, useProcesses } from './fixtures/child-process.js';
import { collectEnvelopes, parse } from './fixtures/module-clients.js';
import { transportFor, unique, useConnections, useMosquitto } from './support/fixtures.js';

const broker = useMosquitto();
const connections = useConnections();
const processes = useProcesses();

const SENSOR = path.join(REPO_ROOT, 'examples/temperature-sensor/main.ts');
const FILTER = path.join(REPO_ROOT, 'examples/filter/main.ts');
const SENSOR_ID = 'SimulatedTemperatureSensor';

interface Reading {
  machine: { temperature: number };
}

describe('the example modules as processes', () => {
  it('sensor → filter → $upstream: an alert reaches upstream/<device>', { timeout: 45_000 }, async () => {
    const deviceId = unique('dev');
    const url = broker().url;
    const operator = await connections.open(transportFor(url), { clientId: `${deviceId}/operator` });
    const manifest = JSON.parse(readFileSync(path.join(REPO_ROOT, 'examples/deployment.json'), 'utf8'));
    await deployRoutes(operator, deviceId, routesFromManifest(manifest));
    // Readings start at 21 °C and rise by 0.5–2 °C each, so the second one is above 22 at the latest.
    await updateDesired(operator, deviceId, SENSOR_ID, { SendInterval: 0.1 });
    await updateDesired(operator, deviceId, 'filter', { TemperatureThreshold: 22 });
    const upstream = await collectEnvelopes(operator, `upstream/${deviceId}`);

    const env = (moduleId: string) => ({
      IOTEDGE_DEVICEID: deviceId,
      IOTEDGE_MODULEID: moduleId,
      EDGEKIT_BROKER_URL: url,
    });
    // The filter first: MQTT keeps nothing for an input whose module never connected.
    const filter = processes.start(FILTER, env('filter'));
    await filter.line((l) => l === `filter ${deviceId}/filter running`, 20_000, 'the filter to run');
    const sensor = processes.start(SENSOR, env(SENSOR_ID));
    await sensor.line((l) => l === `sensor ${deviceId}/${SENSOR_ID} running`, 20_000, 'the sensor to run');

    const alert = await upstream.find(() => true, 15_000, 'an alert on upstream');
    expect(alert.header).toMatchObject({
      sourceDeviceId: deviceId,
      sourceModuleId: 'filter',
      sourceOutput: 'output1',
      contentType: 'application/json',
      properties: { MessageType: 'Alert' },
    });
    expect((parse(alert.body) as Reading).machine.temperature).toBeGreaterThan(22);

    // Each process applied its desired properties and reported them.
    expect((await readTwin(operator, deviceId, 'filter')).reported.properties).toMatchObject({
      TemperatureThreshold: 22,
    });
    expect((await readTwin(operator, deviceId, SENSOR_ID)).reported.properties).toMatchObject({ SendInterval: 0.1 });

    expect(await sensor.stop('SIGTERM')).toEqual({ code: 0, signal: null });
    expect(await filter.stop('SIGTERM')).toEqual({ code: 0, signal: null });
    expect(sensor.lines.items.at(-1)).toBe(`sensor ${deviceId}/${SENSOR_ID} stopped`);
    expect(filter.lines.items.at(-1)).toBe(`filter ${deviceId}/filter stopped`);
    expect(sensor.stderr() + filter.stderr()).toBe('');
  });
});
