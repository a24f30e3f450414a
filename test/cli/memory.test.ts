// The CLI scenarios on the memory transport: modules and the CLI share this process's memory broker.
import { defaultMemoryBroker, memory } from '../../src/transports/memory/index.js';
import { runCliScenarios } from './scenarios.js';

runCliScenarios({
  name: 'memory',
  brokerUrl: async () => 'memory:',
  transport: async () => memory(),
  async crashable(deviceId, moduleId) {
    const { connect, untypedModule } = await import('../../src/index.js');
    const client = await connect(untypedModule, { deviceId, moduleId, transport: memory() });
    return {
      async crash() {
        // Cut without a goodbye and keep it out, as a killed process stays gone; then release its handles.
        defaultMemoryBroker().disconnect(`${deviceId}/${moduleId}`, { refuse: true });
        void client.close();
      },
    };
  },
});
