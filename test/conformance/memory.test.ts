import { memoryConformanceTarget, runTransportConformance } from '../../src/testing/index.js';

await runTransportConformance(memoryConformanceTarget());
