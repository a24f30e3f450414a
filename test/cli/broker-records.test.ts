// The broker-record scenarios on the memory broker the CLI's `memory:` shares with this process.
import { memory } from '../../src/transports/memory/index.js';
import { runBrokerRecordScenarios } from './broker-records.js';

runBrokerRecordScenarios({ name: 'memory', brokerUrl: async () => 'memory:', transport: async () => memory() });
