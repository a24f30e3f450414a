/**
 * The conformance target for the memory transport: one broker per test, faults injected by ending a participant's
 * connections the way a crash would (last will fires, unacked deliveries return).
 */
import { sleep, systemClock } from '../clock.js';
import { EdgeKitError } from '../errors.js';
import type { Transport, TransportConnection } from '../transport.js';
import { MemoryBroker, type MemoryConnection } from '../transports/memory/broker.js';
import type { ConformanceEnvironment, ConformanceTarget } from './conformance.js';

/**
 * Wraps a transport so a test can cut one participant's connections and refuse its reconnects. Transports whose
 * connections can be ended abruptly in-process (like memory) use it for the conformance suite.
 */
export function faultableTransports(
  base: Transport,
  kill: (connection: TransportConnection) => void,
  silence?: (connection: TransportConnection) => void,
): Pick<ConformanceEnvironment, 'transport' | 'cut' | 'restore' | 'stall'> {
  const connections = new Map<string, Set<TransportConnection>>();
  const refused = new Set<string>();
  const transports = new Map<string, Transport>();
  return {
    transport(participant) {
      let t = transports.get(participant);
      if (!t) {
        t = {
          name: base.name,
          capabilities: base.capabilities,
          connect: async (options) => {
            if (refused.has(participant))
              throw new EdgeKitError('connection-failed', `${participant} is cut off (test fault)`);
            const conn = await base.connect(options);
            let set = connections.get(participant);
            if (!set) {
              set = new Set();
              connections.set(participant, set);
            }
            set.add(conn);
            void conn.closed.then(() => set.delete(conn));
            return conn;
          },
        };
        transports.set(participant, t);
      }
      return t;
    },
    async cut(participant, options = {}) {
      if (options.refuse) refused.add(participant);
      for (const conn of connections.get(participant) ?? []) kill(conn);
      await new Promise((resolve) => setImmediate(resolve));
    },
    async restore(participant) {
      refused.delete(participant);
    },
    ...(silence === undefined
      ? {}
      : {
          async stall(participant: string) {
            for (const conn of connections.get(participant) ?? []) silence(conn);
          },
        }),
  };
}

/** The memory transport's {@link ConformanceTarget}. */
export function memoryConformanceTarget(): ConformanceTarget {
  return {
    name: 'memory',
    async environment() {
      const broker = new MemoryBroker();
      const faults = faultableTransports(
        broker.transport(),
        (conn) =>
          (conn as MemoryConnection).end(new EdgeKitError('connection-lost', 'connection cut by the test'), true),
        (conn) => (conn as MemoryConnection).stall(),
      );
      return {
        ...faults,
        clock: systemClock,
        advance: (ms) => sleep(systemClock, ms),
        close: async () => undefined,
      };
    },
  };
}
