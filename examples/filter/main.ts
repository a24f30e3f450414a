/**
 * The filter as its own process, configured by environment variables as in a container: IOTEDGE_DEVICEID and
 * IOTEDGE_MODULEID (set by IoT Edge), EDGEKIT_BROKER_URL (`mqtt://…` or `mqtts://…`; `memory:` when absent) and,
 * when the broker needs them, EDGEKIT_USERNAME / EDGEKIT_PASSWORD and EDGEKIT_CA_FILE / EDGEKIT_CERT_FILE /
 * EDGEKIT_KEY_FILE. Stops on SIGINT or SIGTERM after draining the message in hand.
 *
 *   IOTEDGE_DEVICEID=dev1 IOTEDGE_MODULEID=filter EDGEKIT_BROKER_URL=mqtt://127.0.0.1:1883 npx tsx examples/filter/main.ts
 */
import { fromEnvironment } from 'edgekit';
import { amqp } from 'edgekit/amqp';
import { mqtt } from 'edgekit/mqtt';
import { Filter, startFilter } from './module.js';

const client = await fromEnvironment(Filter, { transports: { mqtt, amqp } });
await startFilter(client);
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    void client.close().then(() => {
      console.log(`filter ${client.deviceId}/${client.moduleId} stopped`);
      process.exit(0);
    });
  });
}
// Announced only once the signals are handled: a SIGTERM before that would end the process without closing.
console.log(`filter ${client.deviceId}/${client.moduleId} running`);
