// The hub scenarios on the memory transport: the hub, edgekit modules and the operator in the test process, the
// Azure modules as their own processes.
import { MemoryBroker, memory } from '../../src/transports/memory/index.js';
import { hubScenarios } from './scenarios.js';

const broker = new MemoryBroker();
hubScenarios({ name: 'memory', transport: () => memory({ broker }) });
