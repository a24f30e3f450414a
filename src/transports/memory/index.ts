/**
 * The memory transport: modules in one process talk through a {@link MemoryBroker}. It is the embedded default
 * (no broker to install), the transport of unit tests and demos, and passes the same conformance suite as MQTT and
 * AMQP — it differs from them only in how bytes move.
 */
import type { Transport } from '../../transport.js';
import { MemoryBroker } from './broker.js';

export { type BrokerEvent, MemoryBroker, type MemoryBrokerOptions } from './broker.js';

/** Options for {@link memory}. */
export interface MemoryTransportOptions {
  /** The broker to connect through; default the process-wide broker shared by every `memory()` without one. */
  readonly broker?: MemoryBroker;
}

let processBroker: MemoryBroker | undefined;

/** The process-wide broker used by `memory()` and by `connect` when no transport is given. */
export function defaultMemoryBroker(): MemoryBroker {
  processBroker ??= new MemoryBroker();
  return processBroker;
}

/**
 * The in-process transport.
 *
 * @example
 * ```ts
 * const broker = new MemoryBroker();
 * const client = await connect(Filter, { deviceId: 'dev1', moduleId: 'filter', transport: memory({ broker }) });
 * ```
 */
export function memory(options: MemoryTransportOptions = {}): Transport {
  if (typeof options !== 'object' || options === null)
    throw new TypeError('memory(options): options must be an object');
  if (options.broker !== undefined && !(options.broker instanceof MemoryBroker)) {
    throw new TypeError('memory(options): broker must be a MemoryBroker');
  }
  return (options.broker ?? defaultMemoryBroker()).transport();
}
