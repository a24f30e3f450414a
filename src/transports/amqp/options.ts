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
 * Options of `amqp(…)`. Every client of one broker must use the same `prefix` and `priorities`.
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
  /** `amqp://host[:port][/vhost]` or `amqps://…`; credentials may be in the URL (`amqp://user:pass@host`). */
  readonly url: string;
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

/** {@link AmqpTransportOptions} after checking, in the shapes amqplib takes. */
export interface ResolvedAmqpOptions {
  readonly connect: Options.Connect;
  readonly socket: SocketOptions;
  /** The URL without password, for error messages. */
  readonly target: string;
  /** The password and the TLS passphrase given: masked in every message made from a library's error. */
  readonly secrets: readonly string[];
  readonly prefetch: number;
  readonly connectTimeoutInMs: number;
  readonly names: Topology;
  readonly priorities: boolean;
  readonly maxMessageBytes: number | undefined;
  readonly lib: AmqplibModule | undefined;
}

const KNOWN_OPTIONS = new Set([
  'url',
  'username',
  'password',
  'vhost',
  'tls',
  'prefetch',
  'heartbeatInSeconds',
  'connectTimeoutInMs',
  'prefix',
  'priorities',
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
  const rawUrl = checkString('url', o.url);
  let url: URL;
  try {
    url = new URL(rawUrl);
  } catch {
    throw new RangeError(
      `url ${JSON.stringify(redactCredentials(rawUrl))} is not a URL${maskedUrlHint(rawUrl)}; ` +
        'expected amqp://host[:port][/vhost]',
    );
  }
  if (url.protocol !== 'amqp:' && url.protocol !== 'amqps:') {
    throw new RangeError(`url must start with amqp: or amqps:, got ${JSON.stringify(url.protocol)}`);
  }
  if (url.hostname === '') throw new RangeError(`url ${JSON.stringify(redactCredentials(rawUrl))} has no host`);
  if (url.search !== '' || url.hash !== '') {
    throw new RangeError(
      'url must not have a query or fragment; use the options heartbeatInSeconds, connectTimeoutInMs, vhost, tls instead',
    );
  }
  const secure = url.protocol === 'amqps:';
  const tls = o.tls === undefined ? undefined : checkTls(o.tls);
  if (tls !== undefined && !secure) throw new RangeError('tls options need an amqps: url');

  const username = o.username === undefined ? decodeUrlComponent(url.username) : checkString('username', o.username);
  const password = o.password === undefined ? decodeUrlComponent(url.password) : checkString('password', o.password);
  const pathVhost = url.pathname.length > 1 ? decodeUrlComponent(url.pathname.slice(1)) : '/';
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
  const maxMessageBytes =
    o.maxMessageBytes === undefined
      ? undefined
      : checkInteger('maxMessageBytes', o.maxMessageBytes, 1, MAX_MESSAGE_BYTES_LIMIT);
  if (o.lib !== undefined && (typeof o.lib !== 'object' || o.lib === null || typeof o.lib.connect !== 'function')) {
    throw new TypeError("lib must be the amqplib module (import * as amqplib from 'amqplib')");
  }

  const hostname = url.hostname.replace(/^\[|\]$/g, '');
  const port = url.port === '' ? (secure ? 5671 : 5672) : Number(url.port);
  const connect: Options.Connect = {
    protocol: secure ? 'amqps' : 'amqp',
    hostname,
    port,
    // An empty user in the URL means "not given": RabbitMQ's guest, as amqplib does for string URLs.
    username: username === '' && password === '' ? 'guest' : username,
    password: username === '' && password === '' ? 'guest' : password,
    vhost,
    heartbeat,
  };
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
  const shownHost = hostname.includes(':') ? `[${hostname}]` : hostname;
  return {
    connect,
    socket,
    target: `${url.protocol}//${shownHost}:${port}/${encodeURIComponent(vhost)}`,
    // Not the default guest: masking "guest" in RabbitMQ's messages would hide nothing and garble them.
    secrets: [username === '' && password === '' ? '' : password, tls?.passphrase ?? ''].filter((s) => s !== ''),
    prefetch,
    connectTimeoutInMs,
    names: topology(prefix),
    priorities: o.priorities ?? false,
    maxMessageBytes,
    lib: o.lib,
  };
}
