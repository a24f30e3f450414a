/**
 * Device ↔ cloud over RabbitMQ's own shovels: renders what a device's RabbitMQ needs (dynamic shovels, and the
 * queues, exchanges and bindings they read and feed) and what the cloud's RabbitMQ needs, to carry one device's
 * edgekit traffic to a cloud RabbitMQ — upstream messages, dead letters, reported properties, presence and method
 * replies up; desired properties, routes, deployment records and method requests down. The brokers do the forwarding
 * and the store-and-forward; nothing of edgekit runs in between. docs/transports/amqp.md ("Bridging a device to a
 * RabbitMQ cloud") explains each flow and what is not carried. Written for RabbitMQ 3.10 with the `rabbitmq_shovel`
 * plugin on the device (measured on 3.10.8); the cloud needs no plugin.
 */

import { addresses, checkName } from '../../names.js';
import { redactCredentials } from '../../redact.js';
import {
  escapeRegex,
  type RabbitBindingDefinition,
  type RabbitExchangeDefinition,
  type RabbitQueueDefinition,
} from './authorization.js';
import { checkPrefix, DEFAULT_PREFIX, messageQueueArguments, RETAINED_QUEUE_ARGUMENTS, topology } from './topology.js';

/** Which way a shovel carries messages: `up` device → cloud, `down` cloud → device. */
export type RabbitBridgeDirection = 'up' | 'down';

/** A dynamic shovel's definition, as RabbitMQ 3.10's `shovel` runtime parameter takes it. */
export interface RabbitShovelValue {
  readonly 'src-protocol': 'amqp091';
  readonly 'src-uri': string;
  /** A durable queue to consume (declared by the shovel if missing, with `src-queue-args`). */
  readonly 'src-queue'?: string;
  readonly 'src-queue-args'?: Readonly<Record<string, unknown>>;
  /** An exchange to consume through a queue of the shovel's own, which exists only while the shovel runs. */
  readonly 'src-exchange'?: string;
  readonly 'src-exchange-key'?: string;
  readonly 'src-prefetch-count': number;
  readonly 'src-delete-after': 'never';
  readonly 'dest-protocol': 'amqp091';
  readonly 'dest-uri': string;
  /** Published there with each message's own routing key (no `dest-exchange-key`). */
  readonly 'dest-exchange': string;
  readonly 'ack-mode': 'on-confirm';
  readonly 'reconnect-delay': number;
}

/** A runtime parameter in RabbitMQ's definitions format (here always a shovel). */
export interface RabbitParameterDefinition {
  readonly vhost: string;
  readonly component: 'shovel';
  readonly name: string;
  readonly value: RabbitShovelValue;
}

/** One broker's part of a bridge, in RabbitMQ's definitions format (`rabbitmqctl import_definitions <file>`). */
export interface RabbitBridgeDefinitions {
  readonly exchanges: readonly RabbitExchangeDefinition[];
  readonly queues: readonly RabbitQueueDefinition[];
  readonly bindings: readonly RabbitBindingDefinition[];
  /** The device's shovels; empty on the cloud's side. */
  readonly parameters: readonly RabbitParameterDefinition[];
}

/** One shovel of the bridge, for docs and scripts. */
export interface RabbitBridgeFlow {
  /** The shovel's name on the device (`rabbitmqctl shovel_status`, `clear_parameter shovel <name>`). */
  readonly shovel: string;
  readonly direction: RabbitBridgeDirection;
  /** What it carries. */
  readonly what: string;
  /** Where it reads: `queue <name>` or `exchange <name>`, on the broker it reads from. */
  readonly from: string;
  /** The exchange it publishes to, on the other broker. */
  readonly to: string;
}

/** What the bridge's user needs on the cloud's RabbitMQ (`rabbitmqctl set_permissions` / `set_topic_permissions`). */
export interface RabbitBridgeCloudPermissions {
  readonly configure: string;
  readonly write: string;
  readonly read: string;
  /** A topic permission on the replies exchange: the bridge may publish only replies to operators' reply keys. */
  readonly topic: { readonly exchange: string; readonly write: string; readonly read: string };
}

/** TLS for the shovels' connections to the cloud (PEM files readable by the device's RabbitMQ). */
export interface RabbitBridgeTls {
  /** CA certificate(s) the cloud's certificate must chain to. Default `/etc/ssl/certs/ca-certificates.crt`. */
  readonly caFile?: string;
  /** The device's client certificate and key, for a cloud that asks for one. */
  readonly certFile?: string;
  readonly keyFile?: string;
}

/** Options of {@link rabbitmqBridge}. */
export interface RabbitmqBridgeOptions {
  /** The device whose traffic the bridge carries; only its own queues and keys cross. */
  readonly deviceId: string;
  /**
   * The device's modules (those of its deployment): their dead letters, reported properties and presence go up,
   * their desired properties and method requests come down. Render the bridge again when the set changes.
   */
  readonly modules: readonly string[];
  /**
   * The cloud's RabbitMQ: `amqps://host[:port][/vhost]` (or `amqp://` on a trusted network). Credentials in it are
   * refused: use `username`/`password`.
   */
  readonly cloudUrl: string | URL;
  /** The user the shovels log in to the cloud as. */
  readonly username?: string;
  /** Its password. It is written into the device's definitions: keep that file readable by its owner only. */
  readonly password?: string;
  /** TLS settings, only with an `amqps:` URL. */
  readonly tls?: RabbitBridgeTls;
  /** The transports' `prefix` (the same on both brokers); default `edgekit`. */
  readonly prefix?: string;
  /** The transports' `priorities` (the same on both brokers); default false. */
  readonly priorities?: boolean;
  /** The device broker's virtual host of the edgekit clients; default `/`. */
  readonly vhost?: string;
  /** AMQP heartbeat of the cloud connections (a silent link is noticed after about twice this); default 30. */
  readonly heartbeatInSeconds?: number;
  /** How long a shovel waits before it connects again after the link failed; default 5. */
  readonly reconnectDelayInSeconds?: number;
  /** Messages a shovel has in flight (unconfirmed) at once; default 500. */
  readonly prefetch?: number;
}

/** What {@link rabbitmqBridge} renders. */
export interface RabbitmqBridge {
  /** For the device's RabbitMQ (with `rabbitmq_shovel` enabled): its shovels and what they read and feed. */
  readonly device: RabbitBridgeDefinitions;
  /** For the cloud's RabbitMQ: the queues, exchanges and bindings the shovels read and feed there. */
  readonly cloud: RabbitBridgeDefinitions;
  /** The shovels, each with its direction. */
  readonly flows: readonly RabbitBridgeFlow[];
  /** What the bridge's user needs on the cloud, and nothing more. */
  readonly cloudPermissions: RabbitBridgeCloudPermissions;
}

const DEFAULT_HEARTBEAT = 30;
const DEFAULT_RECONNECT_DELAY = 5;
const DEFAULT_PREFETCH = 500;
const DEFAULT_CA_FILE = '/etc/ssl/certs/ca-certificates.crt';
const SCHEMES: Readonly<Record<string, number>> = { 'amqp:': 5672, 'amqps:': 5671 };
const SERVER_NAMED = 'amq\\.gen-.*';
const ME = 'rabbitmqBridge()';

function whole(what: string, value: unknown, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new RangeError(`${ME}: ${what} must be a whole number from ${min} to ${max}, got ${String(value)}`);
  }
  return value;
}

function text(what: string, value: unknown): string {
  if (typeof value !== 'string') throw new TypeError(`${ME}: ${what} must be a string, got ${typeof value}`);
  // biome-ignore lint/suspicious/noControlCharactersInRegex: refusing control characters is the point
  if (value.length === 0 || /[\u0000-\u001f\u007f]/.test(value)) {
    throw new RangeError(`${ME}: ${what} must be non-empty without control characters`);
  }
  return value;
}

function cloudAddress(value: unknown): { url: URL; vhost: string; secure: boolean } {
  if (typeof value !== 'string' && !(value instanceof URL)) {
    throw new TypeError(`${ME}: cloudUrl must be a string or URL, e.g. "amqps://cloud.example.com"`);
  }
  let url: URL;
  try {
    url = new URL(String(value));
  } catch {
    throw new TypeError(`${ME}: cloudUrl ${JSON.stringify(redactCredentials(String(value)))} is not a URL`);
  }
  const shown = JSON.stringify(redactCredentials(url.href));
  if (SCHEMES[url.protocol] === undefined) {
    throw new RangeError(
      `${ME}: cloudUrl ${shown}: a shovel speaks AMQP; use amqps:// (or amqp://), not ${url.protocol}`,
    );
  }
  if (url.username !== '' || url.password !== '') {
    throw new TypeError(`${ME}: cloudUrl ${shown} has credentials; pass username and password instead`);
  }
  if (url.hostname === '') throw new TypeError(`${ME}: cloudUrl ${shown} has no host`);
  if (url.search !== '' || url.hash !== '') {
    throw new RangeError(`${ME}: cloudUrl ${shown} must not have a query or fragment`);
  }
  const path = url.pathname.length > 1 ? url.pathname.slice(1) : '';
  let vhost = '/';
  if (path !== '') {
    try {
      vhost = decodeURIComponent(path);
    } catch {
      throw new RangeError(`${ME}: cloudUrl ${shown}: the virtual host is not percent-encoded correctly`);
    }
  }
  return { url, vhost, secure: url.protocol === 'amqps:' };
}

/** The Erlang client's URI of the cloud: credentials and vhost percent-encoded, TLS and heartbeat as query. */
function cloudUri(
  cloud: { url: URL; vhost: string; secure: boolean },
  username: string | undefined,
  password: string | undefined,
  tls: RabbitBridgeTls,
  heartbeat: number,
): string {
  const host = cloud.url.host; // keeps [::1] brackets and an explicit port
  const credentials =
    username === undefined
      ? ''
      : `${encodeURIComponent(username)}${password === undefined ? '' : `:${encodeURIComponent(password)}`}@`;
  const query = [`heartbeat=${heartbeat}`, 'connection_timeout=30000'];
  if (cloud.secure) {
    query.push(`cacertfile=${encodeURIComponent(tls.caFile ?? DEFAULT_CA_FILE)}`);
    if (tls.certFile !== undefined) query.push(`certfile=${encodeURIComponent(tls.certFile)}`);
    if (tls.keyFile !== undefined) query.push(`keyfile=${encodeURIComponent(tls.keyFile)}`);
    query.push('verify=verify_peer');
    const name = cloud.url.hostname;
    // Server name indication and host name check need a name, not an address.
    if (!/^[\d.]+$/.test(name) && !name.startsWith('[')) query.push(`server_name_indication=${name}`);
  }
  return `${cloud.url.protocol}//${credentials}${host}/${encodeURIComponent(cloud.vhost)}?${query.join('&')}`;
}

/**
 * Renders the RabbitMQ shovels that carry one device's edgekit traffic between the device's RabbitMQ and a cloud
 * RabbitMQ, both used by edgekit's AMQP transport with the same `prefix` and `priorities`:
 *
 * - **up** (shovels read the device's queues, publish to the cloud's bridge exchange `<prefix>.bridge.<device>.up`
 *   with each message's routing key): the device's `upstream/<device>` queue and each module's dead-letter queue —
 *   consumed, so they leave the device once the cloud confirmed them and wait there while the link is down, each
 *   until its time to live ends; reported properties and presence through a queue of the bridge's own bound to those
 *   keys' updates exchanges (the device's own last-value queues and views stay untouched); replies to the cloud's
 *   operators, through an exchange bound to the device's replies exchange with `$operator.#` and `anonymous.#`.
 * - **down**: desired properties, the route table and the deployment record, through a durable queue on the cloud
 *   bound to those keys' updates exchanges, into the device's updates exchanges (so the device's last-value queues,
 *   views and watches get them as from a local writer); method requests through a queue the shovel holds on the cloud
 *   only while it runs — while the link is down a request finds no route and the caller's `invoke` answers 404 at
 *   once instead of waiting for its timeout.
 *
 * Every shovel acknowledges a message on its source only after the destination confirmed it (`ack-mode:
 * on-confirm`): at least once, a message in flight when the link breaks may arrive twice. The output depends on the
 * module set: render and import it again when modules are added (an import adds, never removes: `rabbitmqctl
 * clear_parameter shovel <name>` removes a dead-letter shovel of a module that is gone).
 *
 * Not carried: the link state (`link/<device>`, which RabbitMQ has no way to write when a shovel's connection dies),
 * messages an operator puts on the cloud into a device module's input, calls between the cloud's modules and the
 * device's. docs/transports/amqp.md explains why.
 *
 * @example
 * ```ts
 * import { writeFileSync } from 'node:fs';
 * import { rabbitmqBridge } from 'edgekit/amqp';
 *
 * const bridge = rabbitmqBridge({
 *   deviceId: 'gw-1',
 *   modules: ['sensor', 'filter'],
 *   cloudUrl: 'amqps://cloud.example.com',
 *   username: 'bridge-gw-1',
 *   password: process.env.BRIDGE_PASSWORD,
 *   tls: { caFile: '/etc/rabbitmq/cloud-ca.pem' },
 * });
 * writeFileSync('bridge-device.json', JSON.stringify(bridge.device), { mode: 0o600 });
 * writeFileSync('bridge-cloud.json', JSON.stringify(bridge.cloud));
 * // on the cloud:  rabbitmqctl import_definitions bridge-cloud.json
 * // on the device: rabbitmq-plugins enable rabbitmq_shovel && rabbitmqctl import_definitions bridge-device.json
 * ```
 */
export function rabbitmqBridge(options: RabbitmqBridgeOptions): RabbitmqBridge {
  if (typeof options !== 'object' || options === null) {
    throw new TypeError(`${ME} needs an options object with deviceId, modules and cloudUrl`);
  }
  const deviceId = checkName('device id', options.deviceId);
  if (!Array.isArray(options.modules)) {
    throw new TypeError(`${ME}: modules must be an array of the device's module ids (its deployment's modules)`);
  }
  const modules = [...new Set(options.modules.map((m: unknown) => checkName('module id', m)))].sort();
  if (modules.length === 0) throw new RangeError(`${ME}: modules must name at least one module`);
  const cloud = cloudAddress(options.cloudUrl);
  let prefix: string;
  try {
    prefix = checkPrefix(options.prefix ?? DEFAULT_PREFIX);
  } catch (error) {
    throw error instanceof TypeError
      ? new TypeError(`${ME}: ${error.message}`)
      : new RangeError(`${ME}: ${(error as Error).message}`);
  }
  if (options.priorities !== undefined && typeof options.priorities !== 'boolean') {
    throw new TypeError(`${ME}: priorities must be a boolean`);
  }
  const priorities = options.priorities === true;
  const vhost = text('vhost', options.vhost ?? '/');
  const username = options.username === undefined ? undefined : text('username', options.username);
  const password = options.password === undefined ? undefined : text('password', options.password);
  if (password !== undefined && username === undefined) throw new TypeError(`${ME}: a password needs a username`);
  const heartbeat = whole('heartbeatInSeconds', options.heartbeatInSeconds ?? DEFAULT_HEARTBEAT, 1, 3600);
  const reconnectDelay = whole(
    'reconnectDelayInSeconds',
    options.reconnectDelayInSeconds ?? DEFAULT_RECONNECT_DELAY,
    1,
    3600,
  );
  const prefetch = whole('prefetch', options.prefetch ?? DEFAULT_PREFETCH, 1, 65_535);
  const tls = options.tls ?? {};
  if (typeof tls !== 'object' || tls === null) throw new TypeError(`${ME}: tls must be an object`);
  for (const [key, value] of Object.entries(tls)) {
    if (!['caFile', 'certFile', 'keyFile'].includes(key)) throw new TypeError(`${ME}: unknown tls option ${key}`);
    if (value !== undefined) text(`tls.${key}`, value);
  }
  if (!cloud.secure && Object.values(tls).some((v) => v !== undefined)) {
    throw new TypeError(`${ME}: tls options need an amqps:// cloudUrl`);
  }
  if ((tls.certFile === undefined) !== (tls.keyFile === undefined)) {
    throw new TypeError(`${ME}: tls.certFile and tls.keyFile go together`);
  }

  const names = topology(prefix);
  const local = vhost === '/' ? 'amqp://' : `amqp:///${encodeURIComponent(vhost)}`;
  const remote = cloudUri(cloud, username, password, tls, heartbeat);
  const bridge = `${prefix}.bridge.${deviceId}`;
  const cloudUp = `${bridge}.up`; // cloud exchange every up shovel publishes to (but replies)
  const cloudDown = `${bridge}.down`; // cloud queue of retained values going down
  const cloudCalls = `${bridge}.calls`; // cloud exchange of requests going down
  const deviceUp = `${bridge}.up`; // device queue of retained values going up
  const deviceReplies = `${bridge}.replies`; // device exchange of replies going up
  const deviceDown = `${bridge}.down`; // device exchange everything coming down is published to

  const upKeys = modules.flatMap((m) => [addresses.reported(deviceId, m), addresses.presence(deviceId, m)]);
  const downKeys = [
    ...modules.map((m) => addresses.desired(deviceId, m)),
    addresses.routes(deviceId),
    addresses.deployment(deviceId),
  ];
  const methods = modules.map((m) => addresses.methods(deviceId, m));
  const upstreamQueue = names.messageQueue(addresses.upstream(deviceId));
  const deadLetterQueues = modules.map((m) => names.messageQueue(addresses.deadLetter(deviceId, m)));
  const messageArgs = messageQueueArguments(priorities);

  const sides = { device: new Side(vhost), cloud: new Side(cloud.vhost) };
  for (const side of Object.values(sides)) {
    side.exchange(names.repliesExchange, 'topic');
    for (const key of [...upKeys, ...downKeys]) {
      side.exchange(names.updatesExchange(key), 'fanout');
      side.queue(names.retainedQueue(key), RETAINED_QUEUE_ARGUMENTS);
      side.bind(names.updatesExchange(key), names.retainedQueue(key), 'queue', '');
    }
    for (const address of methods) side.exchange(names.callsExchange(address), 'fanout');
    for (const queue of [upstreamQueue, ...deadLetterQueues]) side.queue(queue, messageArgs);
  }

  // Device: what the up shovels read, and where the down shovels publish.
  const { device } = sides;
  device.queue(deviceUp, {});
  for (const key of upKeys) device.bind(names.updatesExchange(key), deviceUp, 'queue', '');
  device.exchange(deviceReplies, 'topic');
  // Replies to cloud callers: a service client speaks as `$operator/<name>` (or, on a broker without identities, as
  // nobody); modules' replies to each other stay on the device.
  device.bind(names.repliesExchange, deviceReplies, 'exchange', '$operator.#');
  device.bind(names.repliesExchange, deviceReplies, 'exchange', 'anonymous.#');
  device.exchange(deviceDown, 'direct');
  for (const key of downKeys) {
    device.bind(deviceDown, names.updatesExchange(key), 'exchange', names.retainedQueue(key));
  }
  for (const address of methods) {
    device.bind(deviceDown, names.callsExchange(address), 'exchange', names.requestQueue(address));
  }

  // Cloud: where the up shovels publish, and what the down shovels read.
  const { cloud: up } = sides;
  up.exchange(names.observeExchange, 'topic');
  up.exchange(cloudUp, 'direct');
  for (const queue of [upstreamQueue, ...deadLetterQueues]) {
    up.bind(cloudUp, queue, 'queue', queue);
    // The cloud's monitors see bridged messages as they see local ones.
    up.bind(cloudUp, names.observeExchange, 'exchange', queue);
  }
  for (const key of upKeys) up.bind(cloudUp, names.updatesExchange(key), 'exchange', names.retainedQueue(key));
  up.queue(cloudDown, {});
  for (const key of downKeys) up.bind(names.updatesExchange(key), cloudDown, 'queue', '');
  up.exchange(cloudCalls, 'fanout');
  for (const address of methods) up.bind(names.callsExchange(address), cloudCalls, 'exchange', '');

  const flows: RabbitBridgeFlow[] = [];
  const shovel = (
    name: string,
    direction: RabbitBridgeDirection,
    what: string,
    source: { queue: string; args: Readonly<Record<string, unknown>> } | { exchange: string; key: string },
    to: string,
  ) => {
    const [src, dest] = direction === 'up' ? [local, remote] : [remote, local];
    const value: RabbitShovelValue = {
      'src-protocol': 'amqp091',
      'src-uri': src,
      ...('queue' in source
        ? { 'src-queue': source.queue, 'src-queue-args': source.args }
        : { 'src-exchange': source.exchange, 'src-exchange-key': source.key }),
      'src-prefetch-count': prefetch,
      'src-delete-after': 'never',
      'dest-protocol': 'amqp091',
      'dest-uri': dest,
      'dest-exchange': to,
      'ack-mode': 'on-confirm',
      'reconnect-delay': reconnectDelay,
    };
    const shovelName = `edgekit-bridge-${deviceId}-${name}`;
    device.parameters.push({ vhost, component: 'shovel', name: shovelName, value });
    flows.push({
      shovel: shovelName,
      direction,
      what,
      from: 'queue' in source ? `queue ${source.queue}` : `exchange ${source.exchange}`,
      to,
    });
  };
  shovel(
    'upstream',
    'up',
    'upstream messages (routes INTO $upstream)',
    { queue: upstreamQueue, args: messageArgs },
    cloudUp,
  );
  modules.forEach((m, i) => {
    const queue = deadLetterQueues[i] as string;
    shovel(`deadletter-${m}`, 'up', `dead letters of ${m}`, { queue, args: messageArgs }, cloudUp);
  });
  shovel('reported', 'up', 'reported properties and presence (retained)', { queue: deviceUp, args: {} }, cloudUp);
  shovel(
    'replies',
    'up',
    "replies to the cloud's operators",
    { exchange: deviceReplies, key: '#' },
    names.repliesExchange,
  );
  shovel(
    'desired',
    'down',
    'desired properties, routes and the deployment record (retained)',
    { queue: cloudDown, args: {} },
    deviceDown,
  );
  shovel('calls', 'down', 'method requests (only while the link is up)', { exchange: cloudCalls, key: '' }, deviceDown);

  const replyKeys = `^(?:${escapeRegex('$operator')}\\.[^.]+|anonymous)\\.[^.]+$`;
  const cloudPermissions: RabbitBridgeCloudPermissions = {
    // The down queue (the shovel declares it when missing) and the server-named queue of the calls shovel.
    configure: `^(?:${escapeRegex(cloudDown)}|${SERVER_NAMED})$`,
    // Its exchange and the replies exchange; the server-named queue as the destination of its binding.
    write: `^(?:${escapeRegex(cloudUp)}|${escapeRegex(names.repliesExchange)}|${SERVER_NAMED})$`,
    // The down queue; the calls exchange as the source of its binding; its server-named queue.
    read: `^(?:${escapeRegex(cloudDown)}|${escapeRegex(cloudCalls)}|${SERVER_NAMED})$`,
    topic: { exchange: names.repliesExchange, write: replyKeys, read: '^$' },
  };
  return { device: sides.device.definitions(), cloud: sides.cloud.definitions(), flows, cloudPermissions };
}

/** One broker's exchanges, queues, bindings and shovels, deduplicated, in a stable order. */
class Side {
  readonly parameters: RabbitParameterDefinition[] = [];
  private readonly exchanges = new Map<string, RabbitExchangeDefinition['type']>();
  private readonly queues = new Map<string, Readonly<Record<string, unknown>>>();
  private readonly bindings = new Map<string, Omit<RabbitBindingDefinition, 'vhost' | 'arguments'>>();

  constructor(private readonly vhost: string) {}

  exchange(name: string, type: RabbitExchangeDefinition['type']): void {
    this.exchanges.set(name, type);
  }

  queue(name: string, args: Readonly<Record<string, unknown>>): void {
    this.queues.set(name, args);
  }

  bind(source: string, destination: string, type: 'queue' | 'exchange', key: string): void {
    this.bindings.set(`${source}|${type}|${destination}|${key}`, {
      source,
      destination,
      destination_type: type,
      routing_key: key,
    });
  }

  definitions(): RabbitBridgeDefinitions {
    const vhost = this.vhost;
    return {
      exchanges: [...this.exchanges].map(([name, type]) => ({
        name,
        vhost,
        type,
        durable: true,
        auto_delete: false,
        internal: false,
        arguments: {},
      })),
      queues: [...this.queues].map(([name, args]) => ({
        name,
        vhost,
        durable: true,
        auto_delete: false,
        arguments: args,
      })),
      bindings: [...this.bindings.values()].map((binding) => ({ ...binding, vhost, arguments: {} })),
      parameters: this.parameters,
    };
  }
}
