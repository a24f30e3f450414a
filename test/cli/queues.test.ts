// The upstream and dead-letter scenarios on the memory transport: modules, operators and the CLI share this process's memory broker.
import { memory } from '../../src/transports/memory/index.js';
import { runQueueScenarios } from './queue-scenarios.js';

runQueueScenarios({
  name: 'memory',
  brokerUrl: async () => 'memory:',
  transport: async () => memory(),
  competingClients: true,
});
