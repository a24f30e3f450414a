/**
 * The `edgekit` CLI scenarios against a real RabbitMQ (the shared broker of the AMQP suites): deploy, twin get/set,
 * invoke, monitor and status, with one module run as its own process so it can be SIGKILLed.
 */
import { fileURLToPath } from 'node:url';
import { amqp } from '../../../src/transports/amqp/index.js';
import { runCliScenarios } from '../../cli/scenarios.js';
import { useProcesses } from '../mqtt/fixtures/child-process.js';
import { sharedRabbitMQ } from './support.js';

const MODULE_PROCESS = fileURLToPath(new URL('../../cli/fixtures/module-process.ts', import.meta.url));
const processes = useProcesses();

runCliScenarios({
  name: 'RabbitMQ',
  brokerUrl: async () => sharedRabbitMQ().url,
  transport: async () => amqp({ url: sharedRabbitMQ().url }),
  async crashable(deviceId, moduleId) {
    const child = processes.start(MODULE_PROCESS, {
      IOTEDGE_DEVICEID: deviceId,
      IOTEDGE_MODULEID: moduleId,
      EDGEKIT_BROKER_URL: sharedRabbitMQ().url,
    });
    await child.line((l) => l === 'ready', 20_000, 'the module process to connect');
    return { crash: async () => void (await child.stop('SIGKILL')) };
  },
});
