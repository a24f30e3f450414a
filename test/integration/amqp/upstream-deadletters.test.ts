/**
 * The operator's queues on a real RabbitMQ (the shared broker of the AMQP suites): upstream consumed at-least-once,
 * shared by competing consumers in two service clients, dead letters listed, replayed and purged — the same
 * scenarios as memory and Mosquitto (test/cli/queue-scenarios.ts).
 */
import { amqp } from '../../../src/transports/amqp/index.js';
import { runQueueScenarios } from '../../cli/queue-scenarios.js';
import { sharedRabbitMQ } from './support.js';

runQueueScenarios({
  name: 'RabbitMQ',
  brokerUrl: async () => sharedRabbitMQ().url,
  transport: async () => amqp({ url: sharedRabbitMQ().url }),
  competingClients: true,
});
