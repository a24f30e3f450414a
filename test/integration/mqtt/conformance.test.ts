/**
 * The transport conformance suite, unchanged, against a real Mosquitto. Each participant (module or operator)
 * reaches the broker through its own loopback proxy, so a test can cut one participant abruptly (its last will
 * fires, its unacked inputs come back) and refuse its reconnects until restored.
 */
import { afterAll } from 'vitest';
import { sleep, systemClock } from '../../../src/clock.js';
import { type ConformanceTarget, runTransportConformance } from '../../../src/testing/index.js';
import type { Transport } from '../../../src/transport.js';
import { mqtt } from '../../../src/transports/mqtt/index.js';
import { type Mosquitto, startMosquitto } from '../brokers/mosquitto.js';
import { startTcpProxy, type TcpProxy } from '../support/tcp-proxy.js';

let broker: Promise<Mosquitto> | undefined;
afterAll(async () => {
  await (await broker)?.stop();
});

const target: ConformanceTarget = {
  name: 'mqtt (Mosquitto)',
  async environment() {
    broker ??= startMosquitto();
    const { port, url } = await broker;
    const { name, capabilities } = mqtt({ url });
    const proxies = new Map<string, Promise<TcpProxy>>();
    const transports = new Map<string, Transport>();
    const proxyFor = (participant: string): Promise<TcpProxy> => {
      let proxy = proxies.get(participant);
      if (proxy === undefined) {
        proxy = startTcpProxy(port);
        proxies.set(participant, proxy);
      }
      return proxy;
    };
    return {
      transport(participant) {
        let transport = transports.get(participant);
        if (transport === undefined) {
          // The proxy's port is known only once it listens: resolve it at connect time.
          transport = {
            name,
            capabilities,
            connect: async (options) => {
              const proxy = await proxyFor(participant);
              return mqtt({ url: `mqtt://127.0.0.1:${proxy.port}`, connectTimeoutInMs: 5_000 }).connect(options);
            },
          };
          transports.set(participant, transport);
        }
        return transport;
      },
      async cut(participant, options = {}) {
        (await proxyFor(participant)).cut(options);
      },
      async restore(participant) {
        (await proxyFor(participant)).heal();
      },
      clock: systemClock,
      advance: (ms) => sleep(systemClock, ms),
      async close() {
        await Promise.all([...proxies.values()].map(async (proxy) => (await proxy).close()));
      },
    };
  },
};

await runTransportConformance(target);
