/**
 * The sensor as its own process, configured by environment variables as in a container: IOTEDGE_DEVICEID and
 * IOTEDGE_MODULEID (set by IoT Edge), EDGEKIT_BROKER_URL (`mqtt://…` or `mqtts://…`; `memory:` when absent) and,
 * when the broker needs them, EDGEKIT_USERNAME / EDGEKIT_PASSWORD and EDGEKIT_CA_FILE / EDGEKIT_CERT_FILE /
 * EDGEKIT_KEY_FILE. Stops on SIGINT or SIGTERM after draining.
 *
 *   IOTEDGE_DEVICEID=dev1 IOTEDGE_MODULEID=SimulatedTemperatureSensor EDGEKIT_BROKER_URL=mqtt://127.0.0.1:1883 \
 *     npx tsx examples/temperature-sensor/main.ts
 */
import { fromEnvironment } from 'edgekit';
import { amqp } from 'edgekit/amqp';
import { mqtt } from 'edgekit/mqtt';
import { startSensor, TemperatureSensor } from './module.js';

const client = await fromEnvironment(TemperatureSensor, { transports: { mqtt, amqp } });
const stop = await startSensor(client);
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    stop();
    void client.close().then(() => {
      console.log(`sensor ${client.deviceId}/${client.moduleId} stopped`);
      process.exit(0);
    });
  });
}
// Announced only once the signals are handled: a SIGTERM before that would end the process without closing.
console.log(`sensor ${client.deviceId}/${client.moduleId} running`);
