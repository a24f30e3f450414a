/** The filter as its own process, configured by environment variables as in a container. */
import { fromEnvironment } from 'edgekit';
import { Filter, startFilter } from './module.js';

const client = await fromEnvironment(Filter);
await startFilter(client);
console.log(`filter ${client.deviceId}/${client.moduleId} running`);
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => void client.close().then(() => process.exit(0)));
}
