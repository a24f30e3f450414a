/**
 * `edgekit/amqp`: the edgekit transport for RabbitMQ (AMQP 0-9-1) on amqplib. Durable queues, publisher confirms and
 * manual acks carry messages; last-value queues keep retained state across broker restarts; a dead-lettered,
 * held-back message is the last will; each identity publishes through its own exchange, so RabbitMQ's permissions,
 * rendered from an access plan by {@link rabbitmqDefinitions}, decide what it may do. docs/transports/amqp.md describes
 * the topology.
 */
import type { Transport, TransportConnection, TransportConnectOptions } from '../../transport.js';
import { connectAmqp } from './connection.js';
import { loadAmqplib } from './load.js';
import { type AmqplibModule, type AmqpTransportOptions, resolveAmqpOptions } from './options.js';
import { BrokerLimits } from './publisher.js';

export {
  type DeclaredRabbitAccess,
  type DeclareRabbitAccessOptions,
  declareRabbitAccess,
  hashRabbitPassword,
  type RabbitBindingDefinition,
  type RabbitDefinitions,
  type RabbitDefinitionsOptions,
  type RabbitExchangeDefinition,
  type RabbitPermissionDefinition,
  type RabbitPrincipal,
  type RabbitQueueDefinition,
  type RabbitTopicPermissionDefinition,
  type RabbitUserDefinition,
  rabbitmqDefinitions,
} from './authorization.js';
export {
  type RabbitBridgeCloudPermissions,
  type RabbitBridgeDefinitions,
  type RabbitBridgeDirection,
  type RabbitBridgeFlow,
  type RabbitBridgeTls,
  type RabbitmqBridge,
  type RabbitmqBridgeOptions,
  type RabbitParameterDefinition,
  type RabbitShovelValue,
  rabbitmqBridge,
} from './bridge.js';
export type { AmqplibModule, AmqpTlsOptions, AmqpTransportOptions } from './options.js';
export { DEFAULT_PREFIX } from './topology.js';

/**
 * Creates the AMQP transport. Options are checked now (a `TypeError`/`RangeError` names the bad one); amqplib is
 * imported on the first `connect`, and a missing package fails with `EdgeKitError('missing-dependency')`.
 *
 * Every module and service client on one RabbitMQ must use the same `prefix` and `priorities`.
 *
 * @example
 * ```ts
 * import { connect } from 'edgekit';
 * import { amqp } from 'edgekit/amqp';
 *
 * const client = await connect(Filter, {
 *   transport: amqp({ url: 'amqps://broker.example.com', username: 'filter', password: process.env.AMQP_PASSWORD }),
 *   deviceId: 'gateway-1',
 *   moduleId: 'filter',
 * });
 * ```
 */
export function amqp(options: AmqpTransportOptions): Transport {
  const resolved = resolveAmqpOptions(options);
  // What RabbitMQ says about its limits holds for every connection to it, not only the one it said it on.
  const limits = new BrokerLimits(resolved.maxMessageBytes);
  let lib: Promise<AmqplibModule> | undefined;
  return {
    name: 'amqp',
    // AMQP 0-9-1 cannot list queues, so retained values cannot be listed by pattern.
    capabilities: { keepsMessagesBeforeFirstConsumer: true, sharedConsumers: true, listsRetained: false },
    async connect(connectOptions: TransportConnectOptions): Promise<TransportConnection> {
      if (resolved.lib !== undefined) return connectAmqp(resolved.lib, resolved, connectOptions, limits);
      lib ??= loadAmqplib();
      return connectAmqp(await lib, resolved, connectOptions, limits);
    },
  };
}
