/**
 * The `edgekit` CLI scenarios against a real Mosquitto: deploy, twin get/set, invoke, monitor and status, with one
 * module run as its own process so it can be SIGKILLed.
 */
import { fileURLToPath } from 'node:url';
import { afterAll } from 'vitest';
import { mqtt } from '../../../src/transports/mqtt/index.js';
import { runCliScenarios } from '../../cli/scenarios.js';
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
