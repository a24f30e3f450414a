/**
 * The sensor as its own process, configured by environment variables as in a container:
 * IOTEDGE_DEVICEID, IOTEDGE_MODULEID and EDGEKIT_BROKER_URL (see docs/configuration in the README).
 */
import { fromEnvironment } from 'edgekit';
import { startSensor, TemperatureSensor } from './module.js';

const client = await fromEnvironment(TemperatureSensor);
const stop = await startSensor(client);
console.log(`sensor ${client.deviceId}/${client.moduleId} running`);
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    stop();
    void client.close().then(() => process.exit(0));
  });
}
