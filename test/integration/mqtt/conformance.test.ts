/**
 * The transport conformance suite, unchanged, against a real Mosquitto, each participant behind its own proxy.
 */
import { afterAll } from 'vitest';
import { runTransportConformance } from '../../../src/testing/index.js';
import { mqtt } from '../../../src/transports/mqtt/index.js';
import { type Mosquitto, startMosquitto } from '../brokers/mosquitto.js';
import { proxiedEnvironment } from '../support/proxied-environment.js';

let broker: Promise<Mosquitto> | undefined;
afterAll(async () => {
  await (await broker)?.stop();
});

await runTransportConformance({
  name: 'mqtt (Mosquitto)',
  async environment() {
    broker ??= startMosquitto();
    const { port, url } = await broker;
    return proxiedEnvironment(port, mqtt({ url }), (proxyPort) =>
      mqtt({ url: `mqtt://127.0.0.1:${proxyPort}`, connectTimeoutInMs: 5_000 }),
    );
  },
});
