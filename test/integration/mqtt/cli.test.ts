/**
 * The `edgekit` CLI scenarios against a real Mosquitto: deploy, twin get/set, invoke, monitor and status, with one
 * module run as its own process so it can be SIGKILLed; and `demo` on a broker that wants a password, which it never
 * prints.
 */
import { fileURLToPath } from 'node:url';
import { afterAll, expect, test } from 'vitest';
import { mqtt } from '../../../src/transports/mqtt/index.js';
import { cli, runCliScenarios } from '../../cli/scenarios.js';
import { type Mosquitto, startMosquitto } from '../brokers/mosquitto.js';
import { useProcesses } from './fixtures/child-process.js';

const MODULE_PROCESS = fileURLToPath(new URL('../../cli/fixtures/module-process.ts', import.meta.url));
const processes = useProcesses();
let broker: Promise<Mosquitto> | undefined;
const mosquitto = () => (broker ??= startMosquitto());
afterAll(async () => {
  await (await broker)?.stop();
});

runCliScenarios({
  name: 'Mosquitto',
  brokerUrl: async () => (await mosquitto()).url,
  transport: async () => mqtt({ url: (await mosquitto()).url }),
  async crashable(deviceId, moduleId) {
    const child = processes.start(MODULE_PROCESS, {
      IOTEDGE_DEVICEID: deviceId,
      IOTEDGE_MODULEID: moduleId,
      EDGEKIT_BROKER_URL: (await mosquitto()).url,
    });
    await child.line((l) => l === 'ready', 20_000, 'the module process to connect');
    return { crash: async () => void (await child.stop('SIGKILL')) };
  },
});

test('demo on a broker with a password runs, and prints the broker URL with the password masked', async () => {
  const secured = await startMosquitto({ users: { filter: 'Zq7@Wv4:x' } });
  try {
    const url = `mqtt://filter:${encodeURIComponent('Zq7@Wv4:x')}@127.0.0.1:${secured.port}`;
    const run = await cli(['demo', '--broker', url, '--duration', '1.5']);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(run.stdout).toContain(`running on mqtt://filter:***@127.0.0.1:${secured.port}`);
    expect(run.stdout).not.toMatch(/Zq7|Wv4/);
  } finally {
    await secured.stop();
  }
}, 30_000);
