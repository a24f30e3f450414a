/**
 * Options of `amqp(...)`, checked once when the transport is created so a typo fails at start-up with a clear
 * `TypeError`/`RangeError`, not later as a broker error.
 */
import type { ChannelModel, Options, SocketOptions } from 'amqplib';
import { decodeUrlComponent, maskedUrlHint, redactCredentials } from '../../redact.js';
import { checkPrefix, DEFAULT_PREFIX, type Topology, topology } from './topology.js';

/**
 * The part of amqplib edgekit uses; pass the module itself.
 *
 * @example
 * ```ts
 * import * as amqplib from 'amqplib';
 * const transport = amqp({ url: 'amqp://localhost', lib: amqplib });
 * ```
 */
export interface AmqplibModule {
  connect(url: Options.Connect, socketOptions?: SocketOptions): Promise<ChannelModel>;
}

/**
 * TLS settings for an `amqps:` URL, passed to Node's `tls.connect`.
 *
 * @example
 * ```ts
 * amqp({
 *   url: 'amqps://rabbit.example.com',
 *   tls: { ca: readFileSync('ca.pem'), cert: readFileSync('client.pem'), key: readFileSync('client-key.pem') },
 * });
 * ```
 */
export interface AmqpTlsOptions {
  /** Trusted CA certificates (PEM); default: Node's bundled roots. */
  readonly ca?: string | Buffer | ReadonlyArray<string | Buffer>;
  /** Client certificate chain (PEM), for brokers that verify clients. */
  readonly cert?: string | Buffer;
  /** Private key of {@link cert} (PEM). */
  readonly key?: string | Buffer;
  /** Passphrase of {@link key}. */
  readonly passphrase?: string;
  /** Name checked against the broker's certificate; default: the URL's host. */
  readonly servername?: string;
  /** Verify the broker's certificate; default `true`. Turning it off is for tests only. */
  readonly rejectUnauthorized?: boolean;
}

/**
 * Which RabbitMQ queue type edgekit's durable queues are: `'classic'` (one node holds each queue) or `'quorum'`
 * (replicated on a cluster, survives the loss of a minority of nodes). See docs/transports/amqp.md, "Running on a
 * RabbitMQ cluster".
 */
export type AmqpQueueType = 'classic' | 'quorum';

/**
 * Options of `amqp(…)`. Every client of one broker must use the same `prefix`, `priorities` and `queueType`.
 *
 * @example
 * ```ts
 * const options: AmqpTransportOptions = {
 *   url: 'amqp://rabbit.internal/edge',
 *   username: 'filter',
 *   password: process.env.AMQP_PASSWORD,
 *   heartbeatInSeconds: 5,
 *   prefix: 'plant-7',
 * };
 * ```
 */
export interface AmqpTransportOptions {
  /**
   * `amqp://host[:port][/vhost]` or `amqps://…`; credentials may be in the URL (`amqp://user:pass@host`). Give either
   * `url` or {@link urls}, not both.
   */
  readonly url?: string;
  /**
   * The nodes of a RabbitMQ cluster, each a URL like {@link url}. Every connect tries them in turn, each with an equal
   * share of what is left of the connect timeout, until one answers: the first connect starts with the first URL,
   * every later one (the core reconnecting after a lost connection) with the URL after the one that worked last, so a
   * module whose node died goes to a surviving node without waiting on the dead one first. To spread modules over
   * the nodes, give each its list in another order. `username`, `password`, `vhost` and `tls` apply to every node;
   * the URLs must agree on the vhost.
   *
   * @example
   * ```ts
   * amqp({
   *   urls: ['amqps://rabbit-1.internal', 'amqps://rabbit-2.internal', 'amqps://rabbit-3.internal'],
   *   queueType: 'quorum',
   *   username: 'filter',
   *   password: process.env.AMQP_PASSWORD,
   * });
   * ```
   */
  readonly urls?: readonly string[];
  /** Overrides the URL's user; default `guest` (RabbitMQ allows it from localhost only). */
  readonly username?: string;
  /** Overrides the URL's password. */
  readonly password?: string;
  /** Overrides the URL's virtual host; default `/`. */
  readonly vhost?: string;
  /** TLS settings; only with an `amqps:` URL. */
  readonly tls?: AmqpTlsOptions;
  /** Requests one `serve` handles at once (its AMQP prefetch); default 16. */
  readonly prefetch?: number;
  /**
   * AMQP heartbeat; default 10. A silently dead peer is noticed after about two intervals, which is also how long a
   * crashed module takes to show offline when its TCP connection did not close. 0 turns heartbeats off.
   */
  readonly heartbeatInSeconds?: number;
  /** Give up a connection attempt after this long; default 10 000. `connect({ timeoutInMs })` overrides it. */
  readonly connectTimeoutInMs?: number;
  /** First word of every exchange and queue name; default `edgekit`. Separates several deployments on one vhost. */
  readonly prefix?: string;
  /**
   * Declare message queues with `x-max-priority` so `publish({ priority })` is honoured; default `false` (classic
   * priority queues cost about a third of the consume throughput). Changing it for existing queues fails with
   * `invalid-configuration`: RabbitMQ does not change a queue's arguments.
   */
  readonly priorities?: boolean;
  /**
   * Type of the durable queues edgekit declares — message (inputs, dead letters), retained, view and will queues;
   * default `'classic'`. `'quorum'` replicates them over a RabbitMQ cluster so they survive the loss of a node (use it
   * with {@link urls}); request, reply, watch and observer queues stay classic (quorum queues cannot be exclusive or
   * auto-delete). Not with `priorities` (quorum queues have no priorities in RabbitMQ 3.10). Every client of a broker
   * must use the same: RabbitMQ refuses to re-declare a queue as another type (`invalid-configuration`), so
   * switching an existing deployment needs its queues deleted or drained first. The differences are in
   * docs/transports/amqp.md.
   */
  readonly queueType?: AmqpQueueType;
  /**
   * Largest message body to publish, in bytes: set it to RabbitMQ's `max_message_size`. A larger message, retained
   * value or will rejects with `EdgeKitError('message-too-large')` before it is sent. Default: none — RabbitMQ does not
   * announce its limit, so the first message over it is refused by the broker (which closes the publishing channel;
   * the transport opens another) and the limit it states is used from then on, by every connection of this transport.
   *
   * @example
   * ```ts
   * amqp({ url, maxMessageBytes: 512 * 1024 }); // rabbitmq.conf: max_message_size = 524288
   * ```
   */
  readonly maxMessageBytes?: number;
  /** The amqplib module to use instead of importing `amqplib` (tests, bundlers, a patched copy). */
  readonly lib?: AmqplibModule;
}

/** One node to connect to: amqplib's connect options and the URL without password, for error messages. */
export interface AmqpNode {
  readonly connect: Options.Connect;
  readonly target: string;
}

/** {@link AmqpTransportOptions} after checking, in the shapes amqplib takes. */
export interface ResolvedAmqpOptions {
  /** One node per URL, in the order given (at least one). */
  readonly nodes: readonly AmqpNode[];
  readonly socket: SocketOptions;
  /** The password and the TLS passphrase given: masked in every message made from a library's error. */
  readonly secrets: readonly string[];
  readonly prefetch: number;
  readonly connectTimeoutInMs: number;
  readonly names: Topology;
  readonly priorities: boolean;
  readonly queueType: AmqpQueueType;
  readonly maxMessageBytes: number | undefined;
  readonly lib: AmqplibModule | undefined;
}

const KNOWN_OPTIONS = new Set([
  'url',
  'urls',
  'username',
  'password',
  'vhost',
  'tls',
  'prefetch',
  'heartbeatInSeconds',
  'connectTimeoutInMs',
  'prefix',
  'priorities',
  'queueType',
  'maxMessageBytes',
  'lib',
]);
const KNOWN_TLS_OPTIONS = new Set(['ca', 'cert', 'key', 'passphrase', 'servername', 'rejectUnauthorized']);

/** RabbitMQ's largest `max_message_size` (512 MiB): no broker takes a larger message. */
const MAX_MESSAGE_BYTES_LIMIT = 536_870_912;

/** Longest timer Node accepts. */
const MAX_TIMER_MS = 2_147_483_647;

function checkInteger(name: string, value: unknown, min: number, max: number): number {
  if (typeof value !== 'number') throw new TypeError(`${name} must be a number, got ${typeof value}`);
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new RangeError(`${name} must be an integer from ${min} to ${max}, got ${value}`);
  }
  return value;
}

function checkString(name: string, value: unknown): string {
  if (typeof value !== 'string') throw new TypeError(`${name} must be a string, got ${typeof value}`);
  return value;
}

function isPem(value: unknown): value is string | Buffer {
  return typeof value === 'string' || Buffer.isBuffer(value);
}

function checkTls(value: unknown): AmqpTlsOptions {
  if (typeof value !== 'object' || value === null) throw new TypeError('tls must be an object');
  for (const key of Object.keys(value)) {
    if (!KNOWN_TLS_OPTIONS.has(key)) {
      throw new TypeError(`unknown tls option ${JSON.stringify(key)}; known: ${[...KNOWN_TLS_OPTIONS].join(', ')}`);
    }
  }
  const tls = value as AmqpTlsOptions;
  if (tls.ca !== undefined && !isPem(tls.ca) && !(Array.isArray(tls.ca) && tls.ca.every(isPem))) {
    throw new TypeError('tls.ca must be a PEM string or Buffer, or an array of them');
  }
  if (tls.cert !== undefined && !isPem(tls.cert)) throw new TypeError('tls.cert must be a PEM string or Buffer');
  if (tls.key !== undefined && !isPem(tls.key)) throw new TypeError('tls.key must be a PEM string or Buffer');
  if ((tls.cert === undefined) !== (tls.key === undefined)) {
    throw new TypeError('tls.cert and tls.key go together: give both or neither');
  }
  if (tls.passphrase !== undefined) checkString('tls.passphrase', tls.passphrase);
  if (tls.servername !== undefined) checkString('tls.servername', tls.servername);
  if (tls.rejectUnauthorized !== undefined && typeof tls.rejectUnauthorized !== 'boolean') {
    throw new TypeError('tls.rejectUnauthorized must be a boolean');
  }
  return tls;
}

/** Parses one node URL (option `name`); throws a `RangeError` whose message never shows a password. */
function parseAmqpUrl(name: string, raw: string): URL {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new RangeError(
      `${name} ${JSON.stringify(redactCredentials(raw))} is not a URL${maskedUrlHint(raw)}; ` +
        'expected amqp://host[:port][/vhost]',
    );
  }
  if (url.protocol !== 'amqp:' && url.protocol !== 'amqps:') {
    throw new RangeError(`${name} must start with amqp: or amqps:, got ${JSON.stringify(url.protocol)}`);
  }
  if (url.hostname === '') throw new RangeError(`${name} ${JSON.stringify(redactCredentials(raw))} has no host`);
  if (url.search !== '' || url.hash !== '') {
    throw new RangeError(
      `${name} must not have a query or fragment; use the options heartbeatInSeconds, connectTimeoutInMs, vhost, tls instead`,
    );
  }
  return url;
}

/** Checks `options` and converts them; throws `TypeError`/`RangeError` with the option's name. */
export function resolveAmqpOptions(options: unknown): ResolvedAmqpOptions {
  if (typeof options !== 'object' || options === null) {
    throw new TypeError("amqp(options) needs an options object, e.g. amqp({ url: 'amqp://localhost' })");
  }
  for (const key of Object.keys(options)) {
    if (!KNOWN_OPTIONS.has(key)) {
      throw new TypeError(`unknown amqp option ${JSON.stringify(key)}; known: ${[...KNOWN_OPTIONS].join(', ')}`);
    }
  }
  const o = options as AmqpTransportOptions;
  if (o.url !== undefined && o.urls !== undefined) {
    throw new TypeError('give url or urls, not both (url is one node, urls the nodes of a cluster)');
  }
  let rawUrls: readonly string[];
  let names: readonly string[];
  if (o.urls !== undefined) {
    if (!Array.isArray(o.urls)) throw new TypeError(`urls must be an array of URLs, got ${typeof o.urls}`);
    if (o.urls.length === 0) throw new RangeError('urls must hold at least one URL');
    rawUrls = o.urls.map((value, i) => checkString(`urls[${i}]`, value));
    names = rawUrls.map((_, i) => `urls[${i}]`);
  } else {
    rawUrls = [checkString('url', o.url)];
    names = ['url'];
  }
  const urls = rawUrls.map((raw, i) => parseAmqpUrl(names[i] ?? 'url', raw));
  const secure = urls[0]?.protocol === 'amqps:';
  for (const [i, url] of urls.entries()) {
    if ((url.protocol === 'amqps:') !== secure) {
      throw new RangeError(`${names[i]} must use the same scheme as ${names[0]} (all amqp: or all amqps:)`);
    }
  }
  const tls = o.tls === undefined ? undefined : checkTls(o.tls);
  if (tls !== undefined && !secure) throw new RangeError('tls options need an amqps: url');

  const credentialsOf = (url: URL) => {
    const username = o.username === undefined ? decodeUrlComponent(url.username) : checkString('username', o.username);
    const password = o.password === undefined ? decodeUrlComponent(url.password) : checkString('password', o.password);
    // An empty user in the URL means "not given": RabbitMQ's guest, as amqplib does for string URLs.
    return username === '' && password === ''
      ? { username: 'guest', password: 'guest', guest: true }
      : { username, password, guest: false };
  };
  const vhostOf = (url: URL) => (url.pathname.length > 1 ? decodeUrlComponent(url.pathname.slice(1)) : '/');
  const pathVhost = vhostOf(urls[0] as URL);
  for (const [i, url] of urls.entries()) {
    if (o.vhost === undefined && vhostOf(url) !== pathVhost) {
      throw new RangeError(
        `${names[i]} names another vhost than ${names[0]}: the nodes of one cluster share the vhosts`,
      );
    }
  }
  const vhost = o.vhost === undefined ? pathVhost : checkString('vhost', o.vhost);
  if (vhost.length === 0) throw new RangeError("vhost must not be empty; RabbitMQ's default is '/'");

  const prefetch = o.prefetch === undefined ? 16 : checkInteger('prefetch', o.prefetch, 1, 65_535);
  const heartbeat =
    o.heartbeatInSeconds === undefined ? 10 : checkInteger('heartbeatInSeconds', o.heartbeatInSeconds, 0, 65_535);
  const connectTimeoutInMs =
    o.connectTimeoutInMs === undefined
      ? 10_000
      : checkInteger('connectTimeoutInMs', o.connectTimeoutInMs, 1, MAX_TIMER_MS);
  const prefix = o.prefix === undefined ? DEFAULT_PREFIX : checkPrefix(o.prefix);
  if (o.priorities !== undefined && typeof o.priorities !== 'boolean') {
    throw new TypeError(`priorities must be a boolean, got ${typeof o.priorities}`);
  }
  if (o.queueType !== undefined && o.queueType !== 'classic' && o.queueType !== 'quorum') {
    throw new RangeError(`queueType must be 'classic' or 'quorum', got ${JSON.stringify(o.queueType)}`);
  }
  const queueType = o.queueType ?? 'classic';
  if (queueType === 'quorum' && o.priorities === true) {
    throw new RangeError(
      "priorities need classic queues: RabbitMQ 3.10's quorum queues refuse x-max-priority (use queueType 'classic' or priorities false)",
    );
  }
  const maxMessageBytes =
    o.maxMessageBytes === undefined
      ? undefined
      : checkInteger('maxMessageBytes', o.maxMessageBytes, 1, MAX_MESSAGE_BYTES_LIMIT);
  if (o.lib !== undefined && (typeof o.lib !== 'object' || o.lib === null || typeof o.lib.connect !== 'function')) {
    throw new TypeError("lib must be the amqplib module (import * as amqplib from 'amqplib')");
  }

  const nodes = urls.map((url): AmqpNode => {
    const hostname = url.hostname.replace(/^\[|\]$/g, '');
    const port = url.port === '' ? (secure ? 5671 : 5672) : Number(url.port);
    const { username, password } = credentialsOf(url);
    const shownHost = hostname.includes(':') ? `[${hostname}]` : hostname;
    return {
      connect: { protocol: secure ? 'amqps' : 'amqp', hostname, port, username, password, vhost, heartbeat },
      target: `${url.protocol}//${shownHost}:${port}/${encodeURIComponent(vhost)}`,
    };
  });
  const socket: SocketOptions = {
    noDelay: true,
    timeout: connectTimeoutInMs,
    ...(tls?.ca === undefined ? {} : { ca: tls.ca as string | Buffer | Array<string | Buffer> }),
    ...(tls?.cert === undefined ? {} : { cert: tls.cert }),
    ...(tls?.key === undefined ? {} : { key: tls.key }),
    ...(tls?.passphrase === undefined ? {} : { passphrase: tls.passphrase }),
    ...(tls?.servername === undefined ? {} : { servername: tls.servername }),
    ...(tls?.rejectUnauthorized === undefined ? {} : { rejectUnauthorized: tls.rejectUnauthorized }),
  };
  const secrets = new Set<string>();
  for (const url of urls) {
    const credentials = credentialsOf(url);
    // Not the default guest: masking "guest" in RabbitMQ's messages would hide nothing and garble them.
    if (!credentials.guest && credentials.password !== '') secrets.add(credentials.password);
  }
  if (tls?.passphrase !== undefined && tls.passphrase !== '') secrets.add(tls.passphrase);
  return {
    nodes,
    socket,
    secrets: [...secrets],
    prefetch,
    connectTimeoutInMs,
    names: topology(prefix),
    priorities: o.priorities ?? false,
    queueType,
    maxMessageBytes,
    lib: o.lib,
  };
}
