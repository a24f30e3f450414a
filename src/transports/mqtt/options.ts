/**
 * Options of the mqtt transport and their validation. Every option is checked when the transport is created, so a
 * typo or an out-of-range value fails at start-up with a `TypeError`/`RangeError` that names it.
 */
import type { IClientOptions, MqttClient } from 'mqtt';
import { decodeUrlComponent, maskedUrlHint, redactCredentials } from '../../redact.js';
import { checkClientId, DEFAULT_TOPIC_PREFIX, hasWildcardOrNul } from './topics.js';

/** PEM text or bytes, or several of them (e.g. a CA bundle). */
export type PemInput = string | Uint8Array | ReadonlyArray<string | Uint8Array>;

/** TLS settings for `mqtts:` URLs. */
export interface MqttTlsOptions {
  /** CA certificate(s) that sign the broker's certificate; absent: Node's default trust store. */
  readonly ca?: PemInput;
  /** Client certificate (PEM) for brokers that require one; give `key` with it. */
  readonly cert?: PemInput;
  /** Private key of `cert` (PEM). */
  readonly key?: PemInput;
  /** Passphrase of an encrypted `key`. */
  readonly passphrase?: string;
  /** Verify the broker's certificate (default `true`). Turn off only for local experiments. */
  readonly rejectUnauthorized?: boolean;
  /** Name to verify the broker's certificate against, when it differs from the URL's host. */
  readonly servername?: string;
}

/**
 * The `mqtt` package, as `lib` takes it: pass the module itself (`import * as mqtt from 'mqtt'`). Declared
 * structurally rather than with mqtt.js's own types, so that edgekit's declarations do not pull them in: mqtt.js's
 * declarations need the DOM library (its timer workers use `Worker` and `MessagePort`), and a Node project that checks
 * library types (`skipLibCheck: false`, `lib` without `DOM`) would fail to compile on them.
 */
export interface MqttLibrary {
  connect(options: MqttClientOptions): object;
}

/**
 * The options the transport gives `lib.connect`: mqtt.js's `IClientOptions`, of which these members are typed here
 * (a wrapper can read them, and pass the whole object on to mqtt.js's `connect`).
 */
export interface MqttClientOptions {
  readonly clientId?: string;
  readonly host?: string;
  readonly port?: number;
  readonly username?: string;
}

/** @internal What the transport calls `lib` as: mqtt.js's `connect`, with its types. */
export interface MqttModule {
  connect(options: IClientOptions): MqttClient;
}

/** @internal The one place a {@link MqttLibrary} is taken for mqtt.js (checked to have `connect` by `checkLib`). */
export const mqttModule = (lib: MqttLibrary): MqttModule => lib as unknown as MqttModule;

/**
 * Options of {@link mqtt}. Only `url` is required.
 *
 * @example
 * ```ts
 * const transport = mqtt({
 *   url: 'mqtts://gateway.local:8883',
 *   tls: { ca: readFileSync('ca.pem') },
 *   username: 'filter',
 *   password: process.env.MQTT_PASSWORD,
 * });
 * ```
 */
export interface MqttTransportOptions {
  /** Broker URL: `mqtt://host[:1883]` or `mqtts://host[:8883]` (also `tcp:`/`ssl:`/`tls:`). May carry `user:password@`. */
  readonly url: string | URL;
  /** Username for the broker; overrides one in the URL. */
  readonly username?: string;
  /** Password for the broker; overrides one in the URL. */
  readonly password?: string;
  /** TLS settings; only with an `mqtts:` URL. */
  readonly tls?: MqttTlsOptions;
  /** Seconds between keep-alive pings; a dead connection is noticed after 1.5 times this. 0 turns it off. Default 30. */
  readonly keepaliveInSeconds?: number;
  /** Default budget of `connect` (overridden by its `timeoutInMs`). Default 30 000. */
  readonly connectTimeoutInMs?: number;
  /**
   * How long the broker keeps a disconnected client's session — its subscriptions and the QoS 1 messages queued for
   * them — in seconds. 0 ends the session with the connection (nothing waits for an offline module); 4294967295
   * means never. Default 86 400 (one day).
   */
  readonly sessionExpiryInSeconds?: number;
  /**
   * The session expiry of connections that hold queues for consumers to come (`durableSession`: the operator's
   * upstream and dead-letter sessions, see `keep`), in seconds, whatever `sessionExpiryInSeconds` says. Default
   * 4294967295: never — a kept queue lives until it is consumed, like a durable AMQP queue.
   */
  readonly queueSessionExpiryInSeconds?: number;
  /** First levels of every topic; empty or ending in `/`. Default `edgekit/v1/`. */
  readonly topicPrefix?: string;
  /** Prepended to the client id the core asks for (e.g. to keep several deployments apart on one broker). */
  readonly clientIdPrefix?: string;
  /**
   * Use this exact MQTT client id instead of the core's. Only for brokers that dictate client ids: every
   * connection of this transport then has the same id, so run one client per transport.
   */
  readonly clientId?: string;
  /**
   * Makes this process one of several replicas of a module: its queues and served addresses are consumed through
   * MQTT 5 shared subscriptions (`$share/<shareGroup>/<topic>`), so each message goes to one replica. Give every
   * replica the same value (e.g. `edgekit`) and a different client id (`<device>/<module>/<replica>`). Absent: plain
   * subscriptions, every connection gets its own copy. Off by default because Mosquitto 2.0 does not restore shared
   * subscriptions from persistence: messages published after a broker restart and before the replica reconnects are
   * lost (see docs/transports/mqtt.md).
   */
  readonly shareGroup?: string;
  /**
   * The largest MQTT packet this client takes, in bytes, announced to the broker (MQTT 5 Maximum Packet Size): the
   * broker drops a larger message for this client rather than send it (Mosquitto logs it). edgekit's own messages
   * are at most 256 KiB. It is also the largest packet the client sends, unless the broker announces a smaller
   * maximum — set it to match a broker limit that is not announced (Mosquitto's `message_size_limit`). A publish over
   * the limit is refused with `message-too-large`. Default 524 288 (512 KiB).
   */
  readonly maxPacketBytes?: number;
  /**
   * Unacknowledged QoS 1 messages the broker may send this client at once (MQTT 5 Receive Maximum): bounds the
   * memory held by inputs not yet handled to about this many messages. Default 128.
   */
  readonly receiveMaximum?: number;
  /** The `mqtt` module to use instead of importing it (for bundlers, tests, or a patched copy). */
  readonly lib?: MqttLibrary;
}

/** Options after validation, with defaults applied. */
export interface ResolvedMqttOptions {
  readonly protocol: 'mqtt' | 'mqtts';
  readonly host: string;
  readonly port: number;
  /** The URL without credentials, for messages. */
  readonly displayUrl: string;
  readonly username: string | undefined;
  readonly password: string | undefined;
  /** The password and the TLS passphrase: masked in every message made from a library's error. */
  readonly secrets: readonly string[];
  readonly tls: ResolvedTls | undefined;
  readonly keepaliveInSeconds: number;
  readonly connectTimeoutInMs: number;
  readonly sessionExpiryInSeconds: number;
  readonly queueSessionExpiryInSeconds: number;
  readonly topicPrefix: string;
  readonly clientIdPrefix: string;
  readonly clientId: string | undefined;
  readonly shareGroup: string | undefined;
  readonly maxPacketBytes: number;
  readonly receiveMaximum: number;
  readonly lib: MqttLibrary | undefined;
}

export interface ResolvedTls {
  readonly ca: Buffer[] | undefined;
  readonly cert: Buffer[] | undefined;
  readonly key: Buffer[] | undefined;
  readonly passphrase: string | undefined;
  readonly rejectUnauthorized: boolean;
  readonly servername: string | undefined;
}

/** 256 KiB of envelope, its topic and properties, with room for a dead letter's reason. */
const DEFAULT_MAX_PACKET_BYTES = 512 * 1024;
/** Below this, twin documents (32 KB) and route tables would not fit. */
const MIN_PACKET_BYTES = 64 * 1024;
/** MQTT's own limit: a Remaining Length of 268 435 455 plus the fixed header. */
const MAX_PACKET_BYTES = 268_435_460;
const DEFAULT_RECEIVE_MAXIMUM = 128;

const KNOWN_OPTIONS: ReadonlySet<string> = new Set([
  'url',
  'username',
  'password',
  'tls',
  'keepaliveInSeconds',
  'connectTimeoutInMs',
  'sessionExpiryInSeconds',
  'queueSessionExpiryInSeconds',
  'topicPrefix',
  'clientIdPrefix',
  'clientId',
  'shareGroup',
  'maxPacketBytes',
  'receiveMaximum',
  'lib',
]);
const KNOWN_TLS_OPTIONS: ReadonlySet<string> = new Set([
  'ca',
  'cert',
  'key',
  'passphrase',
  'rejectUnauthorized',
  'servername',
]);
const PROTOCOLS: Readonly<Record<string, 'mqtt' | 'mqtts'>> = {
  'mqtt:': 'mqtt',
  'tcp:': 'mqtt',
  'mqtts:': 'mqtts',
  'ssl:': 'mqtts',
  'tls:': 'mqtts',
};
const DEFAULT_PORTS = { mqtt: 1883, mqtts: 8883 } as const;
const MAX_UINT32 = 0xffff_ffff;

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function checkKeys(value: Record<string, unknown>, known: ReadonlySet<string>, where: string): void {
  for (const key of Object.keys(value)) {
    if (!known.has(key)) {
      throw new TypeError(
        `${where}: unknown option ${JSON.stringify(key)}; known options are ${[...known].join(', ')}`,
      );
    }
  }
}

function optionalString(value: unknown, name: string): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string') throw new TypeError(`mqtt(): ${name} must be a string, got ${typeof value}`);
  return value;
}

function integerInRange(value: unknown, name: string, min: number, max: number, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number') throw new TypeError(`mqtt(): ${name} must be a number, got ${typeof value}`);
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new RangeError(`mqtt(): ${name} must be an integer from ${min} to ${max}, got ${value}`);
  }
  return value;
}

function pem(value: unknown, name: string): Buffer[] | undefined {
  if (value === undefined) return undefined;
  const items: readonly unknown[] = Array.isArray(value) ? value : [value];
  if (items.length === 0) throw new RangeError(`mqtt(): tls.${name} must not be an empty array`);
  return items.map((item) => {
    if (typeof item === 'string') {
      if (item.length === 0) throw new RangeError(`mqtt(): tls.${name} must not be empty`);
      return Buffer.from(item, 'utf8');
    }
    if (item instanceof Uint8Array) {
      if (item.byteLength === 0) throw new RangeError(`mqtt(): tls.${name} must not be empty`);
      return Buffer.from(item.buffer, item.byteOffset, item.byteLength);
    }
    throw new TypeError(`mqtt(): tls.${name} must be PEM text or bytes (or an array of them), got ${typeof item}`);
  });
}

function resolveTls(value: unknown, protocol: 'mqtt' | 'mqtts'): ResolvedTls | undefined {
  if (value === undefined) return protocol === 'mqtts' ? defaultTls() : undefined;
  if (!isRecord(value)) throw new TypeError('mqtt(): tls must be an object');
  if (protocol !== 'mqtts') {
    throw new TypeError('mqtt(): tls options need an mqtts: URL (the url uses plain mqtt:)');
  }
  checkKeys(value, KNOWN_TLS_OPTIONS, 'mqtt(): tls');
  const cert = pem(value.cert, 'cert');
  const key = pem(value.key, 'key');
  if ((cert === undefined) !== (key === undefined)) {
    throw new TypeError('mqtt(): tls.cert and tls.key must be given together');
  }
  const rejectUnauthorized = value.rejectUnauthorized ?? true;
  if (typeof rejectUnauthorized !== 'boolean') throw new TypeError('mqtt(): tls.rejectUnauthorized must be a boolean');
  const servername = value.servername;
  if (servername !== undefined && (typeof servername !== 'string' || servername.length === 0)) {
    throw new TypeError('mqtt(): tls.servername must be a non-empty string');
  }
  const passphrase = value.passphrase;
  if (passphrase !== undefined && typeof passphrase !== 'string') {
    throw new TypeError('mqtt(): tls.passphrase must be a string');
  }
  return { ca: pem(value.ca, 'ca'), cert, key, passphrase, rejectUnauthorized, servername };
}

function defaultTls(): ResolvedTls {
  return {
    ca: undefined,
    cert: undefined,
    key: undefined,
    passphrase: undefined,
    rejectUnauthorized: true,
    servername: undefined,
  };
}

/** Checks a topic prefix (empty, or ending in `/`, without wildcards, empty levels or a leading `$`). */
export function checkTopicPrefix(value: unknown, what = 'mqtt()'): string {
  if (value === undefined) return DEFAULT_TOPIC_PREFIX;
  if (typeof value !== 'string') throw new TypeError(`${what}: topicPrefix must be a string, got ${typeof value}`);
  if (value === '') return value;
  if (!value.endsWith('/')) throw new RangeError(`${what}: topicPrefix ${JSON.stringify(value)} must end with /`);
  if (hasWildcardOrNul(value)) {
    throw new RangeError(`${what}: topicPrefix ${JSON.stringify(value)} must not contain + # or NUL`);
  }
  if (value.startsWith('$')) {
    throw new RangeError(`${what}: topicPrefix ${JSON.stringify(value)} must not start with $ (reserved by MQTT)`);
  }
  if (value.startsWith('/') || value.includes('//')) {
    throw new RangeError(`${what}: topicPrefix ${JSON.stringify(value)} must not have empty levels`);
  }
  return value;
}

function checkShareGroup(value: unknown): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string') throw new TypeError(`mqtt(): shareGroup must be a string, got ${typeof value}`);
  if (value.length === 0 || value.includes('/') || hasWildcardOrNul(value)) {
    throw new RangeError(`mqtt(): shareGroup ${JSON.stringify(value)} must be non-empty without / + # or NUL`);
  }
  return value;
}

function checkLib(value: unknown): MqttLibrary | undefined {
  if (value === undefined) return undefined;
  if (!isRecord(value) && typeof value !== 'function') throw new TypeError('mqtt(): lib must be the mqtt module');
  const connect = (value as { connect?: unknown }).connect;
  if (typeof connect !== 'function') {
    throw new TypeError('mqtt(): lib must be the mqtt module (import * as mqtt from "mqtt"); it has no connect()');
  }
  return value as unknown as MqttLibrary;
}

function parseUrl(value: unknown): URL {
  if (value instanceof URL) return new URL(value.href);
  if (typeof value !== 'string')
    throw new TypeError('mqtt(): url must be a string or URL, e.g. "mqtt://127.0.0.1:1883"');
  try {
    return new URL(value);
  } catch {
    // No cause: Node's URL error carries the whole input, password included, as `input`.
    throw new TypeError(
      `mqtt(): url ${JSON.stringify(redactCredentials(value))} is not a valid URL${maskedUrlHint(value)}, ` +
        'e.g. "mqtt://127.0.0.1:1883"',
    );
  }
}

/** Validates `options` and applies defaults. */
export function resolveOptions(options: unknown): ResolvedMqttOptions {
  if (!isRecord(options)) throw new TypeError('mqtt() needs an options object with at least { url }');
  checkKeys(options, KNOWN_OPTIONS, 'mqtt()');
  if (options.url === undefined) throw new TypeError('mqtt(): url is required, e.g. "mqtt://127.0.0.1:1883"');
  const url = parseUrl(options.url);
  const protocol = PROTOCOLS[url.protocol];
  if (protocol === undefined) {
    throw new RangeError(
      `mqtt(): url scheme ${JSON.stringify(url.protocol)} is not supported; use mqtt:, mqtts: (or tcp:, ssl:, tls:)`,
    );
  }
  const shown = JSON.stringify(redactCredentials(url.href));
  if (url.hostname === '') throw new TypeError(`mqtt(): url ${shown} has no host`);
  if ((url.pathname !== '' && url.pathname !== '/') || url.search !== '' || url.hash !== '') {
    throw new RangeError(`mqtt(): url ${shown} must not have a path, query or fragment`);
  }
  const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
  const port = url.port === '' ? DEFAULT_PORTS[protocol] : Number(url.port);
  const username =
    optionalString(options.username, 'username') ?? (url.username ? decodeUrlComponent(url.username) : undefined);
  const password =
    optionalString(options.password, 'password') ?? (url.password ? decodeUrlComponent(url.password) : undefined);
  if (password !== undefined && username === undefined) {
    throw new TypeError('mqtt(): a password needs a username');
  }
  const clientId = options.clientId === undefined ? undefined : checkClientId(options.clientId, 'mqtt(): clientId');
  const clientIdPrefix = optionalString(options.clientIdPrefix, 'clientIdPrefix') ?? '';
  if (clientIdPrefix !== '') checkClientId(clientIdPrefix, 'mqtt(): clientIdPrefix');
  if (clientId !== undefined && clientIdPrefix !== '') {
    throw new TypeError('mqtt(): give clientId or clientIdPrefix, not both');
  }
  const connectTimeoutInMs = options.connectTimeoutInMs ?? 30_000;
  if (typeof connectTimeoutInMs !== 'number') throw new TypeError('mqtt(): connectTimeoutInMs must be a number');
  if (!Number.isFinite(connectTimeoutInMs) || connectTimeoutInMs <= 0 || connectTimeoutInMs > MAX_UINT32) {
    throw new RangeError(
      `mqtt(): connectTimeoutInMs must be a positive number of milliseconds, got ${connectTimeoutInMs}`,
    );
  }
  const tls = resolveTls(options.tls, protocol);
  return {
    protocol,
    host,
    port,
    displayUrl: `${protocol}://${url.host}`,
    username,
    password,
    secrets: [password, tls?.passphrase].filter((secret): secret is string => secret !== undefined && secret !== ''),
    tls,
    keepaliveInSeconds: integerInRange(options.keepaliveInSeconds, 'keepaliveInSeconds', 0, 0xffff, 30),
    connectTimeoutInMs,
    sessionExpiryInSeconds: integerInRange(
      options.sessionExpiryInSeconds,
      'sessionExpiryInSeconds',
      0,
      MAX_UINT32,
      86_400,
    ),
    queueSessionExpiryInSeconds: integerInRange(
      options.queueSessionExpiryInSeconds,
      'queueSessionExpiryInSeconds',
      0,
      MAX_UINT32,
      MAX_UINT32,
    ),
    topicPrefix: checkTopicPrefix(options.topicPrefix),
    clientIdPrefix,
    clientId,
    shareGroup: checkShareGroup(options.shareGroup),
    maxPacketBytes: integerInRange(
      options.maxPacketBytes,
      'maxPacketBytes',
      MIN_PACKET_BYTES,
      MAX_PACKET_BYTES,
      DEFAULT_MAX_PACKET_BYTES,
    ),
    receiveMaximum: integerInRange(options.receiveMaximum, 'receiveMaximum', 1, 0xffff, DEFAULT_RECEIVE_MAXIMUM),
    lib: checkLib(options.lib),
  };
}
