/**
 * Shared set-up of the MQTT integration tests: a Mosquitto per test file, connections closed after each test, and
 * small byte helpers. Names are unique per call so tests sharing a broker never see each other's messages.
 */
import { afterAll, afterEach, beforeAll } from 'vitest';
import type { Transport, TransportConnection, TransportConnectOptions } from '../../../../src/transport.js';
import { mqtt } from '../../../../src/transports/mqtt/index.js';
import type { MqttTransportOptions } from '../../../../src/transports/mqtt/options.js';
import { type Mosquitto, type StartMosquittoOptions, startMosquitto } from '../../brokers/mosquitto.js';
import { startTcpProxy, type TcpProxy } from '../../support/tcp-proxy.js';

/** Starts a broker before the file's tests and stops it after them; call the result inside a test. */
export function useMosquitto(options: StartMosquittoOptions = {}): () => Mosquitto {
  let broker: Mosquitto | undefined;
  beforeAll(async () => {
    broker = await startMosquitto(options);
  });
  afterAll(async () => {
    await broker?.stop();
  });
  return () => {
    if (broker === undefined) throw new Error('the broker is not started yet');
    return broker;
  };
}

/** Opens connections and closes every one still open after each test. */
export function useConnections(): {
  open(transport: Transport, options: TransportConnectOptions): Promise<TransportConnection>;
} {
  const open = new Set<TransportConnection>();
  afterEach(async () => {
    const all = [...open];
    open.clear();
    await Promise.all(all.map((connection) => connection.close()));
  });
  return {
    async open(transport, options) {
      const connection = await transport.connect(options);
      open.add(connection);
      return connection;
    },
  };
}

/** Proxies created in a test, closed after it. */
export function useProxies(): { start(targetPort: number): Promise<TcpProxy> } {
  const proxies = new Set<TcpProxy>();
  afterEach(async () => {
    const all = [...proxies];
    proxies.clear();
    await Promise.all(all.map((proxy) => proxy.close()));
  });
  return {
    async start(targetPort) {
      const proxy = await startTcpProxy(targetPort);
      proxies.add(proxy);
      return proxy;
    },
  };
}

/** The transport for `url` with test-friendly defaults (short connect timeout). */
export function transportFor(url: string, options: Partial<MqttTransportOptions> = {}): Transport {
  return mqtt({ url, connectTimeoutInMs: 5_000, ...options });
}

let counter = 0;

/** A name no other test uses, valid as a device/module/input name (and so as a client id). */
export function unique(label: string): string {
  counter += 1;
  return `${label}-${process.pid}-${counter}-${Math.random().toString(36).slice(2, 8)}`;
}

export const utf8 = (text: string): Uint8Array => new TextEncoder().encode(text);
export const text = (bytes: Uint8Array | undefined): string | undefined =>
  bytes === undefined ? undefined : new TextDecoder().decode(bytes);
