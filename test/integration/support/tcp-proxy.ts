/**
 * A loopback TCP proxy for fault tests: clients connect to the proxy instead of the broker, and the test can cut
 * every connection abruptly (no MQTT DISCONNECT / AMQP close reaches the broker, as when a cable is pulled or a
 * process is killed) and refuse new ones until healed.
 */
import net from 'node:net';
import { listenOnLoopback } from './loopback.js';

export interface TcpProxy {
  readonly port: number;
  /** Destroys every proxied connection now; with `refuse`, new connections are refused until {@link heal}. */
  cut(options?: { refuse?: boolean }): void;
  heal(): void;
  close(): Promise<void>;
}

export async function startTcpProxy(targetPort: number, targetHost = '127.0.0.1'): Promise<TcpProxy> {
  const pairs = new Set<[net.Socket, net.Socket]>();
  let refusing = false;
  const server = await listenOnLoopback((client, track) => {
    if (refusing) {
      client.destroy();
      return;
    }
    const upstream = net.connect({ port: targetPort, host: targetHost, noDelay: true });
    client.setNoDelay(true);
    track(client);
    track(upstream);
    const pair: [net.Socket, net.Socket] = [client, upstream];
    pairs.add(pair);
    const end = () => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
    client.pipe(upstream);
    upstream.pipe(client);
  });
  return {
    port: server.port,
    cut(options = {}) {
      refusing = options.refuse ?? false;
      for (const [a, b] of pairs) {
        // resetAndDestroy sends RST: the broker sees the connection die without a protocol-level goodbye.
        a.resetAndDestroy();
        b.resetAndDestroy();
      }
      pairs.clear();
    },
    heal() {
      refusing = false;
    },
    close: () => server.close(),
  };
}
