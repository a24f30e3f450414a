/**
 * A conformance environment for a transport to a real broker: each participant (module or operator) reaches the
 * broker through its own loopback proxy, so a test can cut one participant abruptly (its last will fires, its unacked
 * inputs come back) and refuse its reconnects until restored.
 */
import { sleep, systemClock } from '../../../src/clock.js';
import type { ConformanceEnvironment } from '../../../src/testing/index.js';
import type { Transport } from '../../../src/transport.js';
import { startTcpProxy, type TcpProxy } from './tcp-proxy.js';

/**
 * @param brokerPort where the proxies forward to
 * @param template the transport's name and capabilities
 * @param via a transport that connects to the broker through `127.0.0.1:<proxyPort>`
 */
export function proxiedEnvironment(
  brokerPort: number,
  template: Transport,
  via: (proxyPort: number) => Transport,
): ConformanceEnvironment {
  const proxies = new Map<string, Promise<TcpProxy>>();
  const transports = new Map<string, Transport>();
  const proxyFor = (participant: string): Promise<TcpProxy> => {
    let proxy = proxies.get(participant);
    if (proxy === undefined) {
      proxy = startTcpProxy(brokerPort);
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
          name: template.name,
          capabilities: template.capabilities,
          connect: async (options) => via((await proxyFor(participant)).port).connect(options),
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
    async stall(participant) {
      (await proxyFor(participant)).stall();
    },
    clock: systemClock,
    advance: (ms) => sleep(systemClock, ms),
    async close() {
      await Promise.all([...proxies.values()].map(async (proxy) => (await proxy).close()));
    },
  };
}
