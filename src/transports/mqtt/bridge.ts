/**
 * Device ↔ cloud over Mosquitto's own bridge: renders the `connection` section a device's Mosquitto needs to carry
 * one device's edgekit traffic to a cloud MQTT broker over one outbound connection — what modules send up (upstream
 * messages, dead letters, reported properties, presence, method replies) and what operators send down (desired
 * properties, routes, deployment records, method requests, inputs). The broker does the forwarding and the
 * store-and-forward; nothing of edgekit runs in between. docs/cloud.md explains each direction and its guarantees.
 * Written for Mosquitto 2.0 (measured on 2.0.11) with an MQTT 5 bridge, which forwards message expiry, user
 * properties, response topics and correlation data, and the retain flag.
 */

import { addresses, checkName } from '../../names.js';
import { redactCredentials } from '../../redact.js';
import type { MosquittoAcl } from './authorization.js';
import { checkTopicPrefix } from './options.js';
import { CLIENT_LEVEL } from './topics.js';

/** Which way a bridged topic flows: `out` device → cloud, `in` cloud → device. */
export type BridgeDirection = 'in' | 'out';

/** One topic pattern the bridge carries. */
export interface BridgeTopic {
  /** An MQTT topic filter on both brokers (the bridge adds no prefix). */
  readonly topic: string;
  readonly direction: BridgeDirection;
  /** What flows there, for the comment in the configuration and for docs. */
  readonly what: string;
}

/** TLS for the bridge's connection to the cloud (PEM files readable by the device's Mosquitto). */
export interface MosquittoBridgeTls {
  /** CA certificate(s) the cloud broker's certificate must chain to. Default: the system's (`/etc/ssl/certs`). */
  readonly caFile?: string;
  /** The device's client certificate and key, for a cloud that authenticates by certificate. */
  readonly certFile?: string;
  readonly keyFile?: string;
}

/** Options of {@link mosquittoBridge}. */
export interface MosquittoBridgeOptions {
  /** The device whose traffic the bridge carries; only its own topics cross. */
  readonly deviceId: string;
  /** The cloud broker: `mqtts://host[:port]` (or `mqtt://` for a test on a trusted network). Credentials in it are refused: use `username`/`password`. */
  readonly cloudUrl: string | URL;
  /** The user the bridge logs in to the cloud as. */
  readonly username?: string;
  /** Its password. It is written into the configuration: keep the file readable by Mosquitto only. */
  readonly password?: string;
  /** TLS settings; with an `mqtts:` URL and no `caFile`, the system's CA certificates are trusted. */
  readonly tls?: MosquittoBridgeTls;
  /** The transports' topic prefix; default `edgekit/v1/`. */
  readonly topicPrefix?: string;
  /** The bridge's client id at the cloud; default `edgekit-bridge-<device>`. Unique per device. */
  readonly clientId?: string;
  /** Keepalive of the cloud connection in seconds (a silent link is noticed after about 1.5 × this); default 30. */
  readonly keepaliveInSeconds?: number;
  /** Reconnect backoff of the bridge: first and longest wait in seconds, with jitter; default 1 and 60. */
  readonly reconnectInSeconds?: { readonly min: number; readonly max: number };
}

/** What {@link mosquittoBridge} renders. */
export interface MosquittoBridge {
  /** The `connection` section for the device's Mosquitto (to put in its `include_dir` or append to mosquitto.conf). */
  readonly config: string;
  /** The topics the bridge carries, each with its direction. */
  readonly topics: readonly BridgeTopic[];
  /** The retained key at which the cloud learns whether the device's bridge is connected (`1`) or not (`0`). */
  readonly linkTopic: string;
  /**
   * What the bridge's user needs on the cloud broker, and nothing more: dynamic-security ACLs for a role of its own
   * (publish the `out` topics and its link state; subscribe to and receive the `in` topics).
   */
  readonly cloudAcls: readonly MosquittoAcl[];
}

const DEFAULT_KEEPALIVE = 30;
const DEFAULT_RECONNECT = { min: 1, max: 60 } as const;
const SCHEMES: Readonly<Record<string, number>> = { 'mqtt:': 1883, 'tcp:': 1883, 'mqtts:': 8883, 'ssl:': 8883 };
const SECURE = new Set(['mqtts:', 'ssl:']);

/** A value Mosquitto's configuration parser reads back unchanged: no whitespace, no control characters, not empty. */
function configWord(what: string, value: unknown): string {
  if (typeof value !== 'string')
    throw new TypeError(`mosquittoBridge(): ${what} must be a string, got ${typeof value}`);
  // biome-ignore lint/suspicious/noControlCharactersInRegex: refusing control characters is the point
  if (value.length === 0 || /[\s\u0000-\u001f\u007f]/.test(value)) {
    throw new RangeError(
      `mosquittoBridge(): ${what} must be non-empty without whitespace or control characters (mosquitto.conf cannot quote)`,
    );
  }
  return value;
}

function seconds(what: string, value: unknown, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new RangeError(
      `mosquittoBridge(): ${what} must be a whole number of seconds from ${min} to ${max}, got ${String(value)}`,
    );
  }
  return value;
}

function cloudAddress(value: unknown): { host: string; port: number; secure: boolean } {
  if (typeof value !== 'string' && !(value instanceof URL)) {
    throw new TypeError('mosquittoBridge(): cloudUrl must be a string or URL, e.g. "mqtts://cloud.example.com:8883"');
  }
  let url: URL;
  try {
    url = new URL(String(value));
  } catch {
    throw new TypeError(`mosquittoBridge(): cloudUrl ${JSON.stringify(redactCredentials(String(value)))} is not a URL`);
  }
  const shown = JSON.stringify(redactCredentials(url.href));
  const defaultPort = SCHEMES[url.protocol];
  if (defaultPort === undefined) {
    throw new RangeError(
      `mosquittoBridge(): cloudUrl ${shown}: a Mosquitto bridge speaks MQTT; use mqtts:// (or mqtt://), not ${url.protocol}`,
    );
  }
  if (url.username !== '' || url.password !== '') {
    throw new TypeError(`mosquittoBridge(): cloudUrl ${shown} has credentials; pass username and password instead`);
  }
  if (url.hostname === '') throw new TypeError(`mosquittoBridge(): cloudUrl ${shown} has no host`);
  if ((url.pathname !== '' && url.pathname !== '/') || url.search !== '' || url.hash !== '') {
    throw new RangeError(`mosquittoBridge(): cloudUrl ${shown} must not have a path, query or fragment`);
  }
  const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
  return { host, port: url.port === '' ? defaultPort : Number(url.port), secure: SECURE.has(url.protocol) };
}

/** The topics one device's bridge carries, in the order the configuration lists them. */
function bridgeTopics(deviceId: string, prefix: string): BridgeTopic[] {
  const t = (address: string) => `${prefix}${address}`;
  return [
    {
      topic: `${t(addresses.upstream(deviceId))}/#`,
      direction: 'out',
      what: 'upstream messages (routes INTO $upstream)',
    },
    { topic: `${t(addresses.deadLetter(deviceId, '+'))}/#`, direction: 'out', what: 'dead letters' },
    { topic: t(addresses.reported(deviceId, '+')), direction: 'out', what: 'reported properties (retained)' },
    { topic: t(addresses.presence(deviceId, '+')), direction: 'out', what: 'module presence (retained)' },
    // A service client's id is one level (edgekit-service-<uuid>); modules' replies to each other (two or three
    // levels) stay on the device.
    {
      topic: `${prefix}${CLIENT_LEVEL}/+/reply`,
      direction: 'out',
      what: 'replies to method calls of cloud service clients',
    },
    { topic: t(addresses.desired(deviceId, '+')), direction: 'in', what: 'desired properties (retained)' },
    { topic: t(addresses.routes(deviceId)), direction: 'in', what: 'the route table (retained)' },
    { topic: t(addresses.deployment(deviceId)), direction: 'in', what: 'the deployment record (retained)' },
    { topic: `${t(addresses.methods(deviceId, '+'))}/#`, direction: 'in', what: 'method requests' },
    {
      topic: `${t(addresses.input(deviceId, '+', '+'))}/#`,
      direction: 'in',
      what: 'inputs sent by operators (replayed dead letters)',
    },
  ];
}

/**
 * Renders the Mosquitto bridge that carries one device's edgekit traffic to a cloud MQTT 5 broker: one outbound
 * connection, MQTT 5, persistent sessions on both sides (so messages for the cloud wait in the device's broker while
 * the link is down, each until its route's time to live ends), QoS 1 each way, and the link state retained at
 * `<prefix>link/<device>` on both brokers (`1` up; `0` written by the bridge on a clean stop and by the cloud broker
 * as the bridge's last will). Only the device's own topics cross, so one device's bridge cannot touch another's.
 *
 * The device's Mosquitto needs, in its main configuration, `persistence true` (queued messages survive a broker
 * restart) and a `max_queued_messages` large enough for an outage (Mosquitto's default, 1000, drops the rest).
 *
 * @example
 * ```ts
 * import { writeFileSync } from 'node:fs';
 * import { mosquittoBridge } from 'edgekit/mqtt';
 *
 * const bridge = mosquittoBridge({
 *   deviceId: 'gw-1',
 *   cloudUrl: 'mqtts://cloud.example.com:8883',
 *   username: 'bridge-gw-1',
 *   password: process.env.BRIDGE_PASSWORD,
 *   tls: { caFile: '/etc/mosquitto/certs/cloud-ca.pem' },
 * });
 * writeFileSync('/etc/mosquitto/conf.d/edgekit-bridge.conf', bridge.config, { mode: 0o600 });
 * ```
 */
export function mosquittoBridge(options: MosquittoBridgeOptions): MosquittoBridge {
  if (typeof options !== 'object' || options === null) {
    throw new TypeError('mosquittoBridge() needs an options object with deviceId and cloudUrl');
  }
  const deviceId = checkName('device id', options.deviceId);
  const cloud = cloudAddress(options.cloudUrl);
  const prefix = checkTopicPrefix(options.topicPrefix, 'mosquittoBridge()');
  const clientId = configWord('clientId', options.clientId ?? `edgekit-bridge-${deviceId}`);
  const username = options.username === undefined ? undefined : configWord('username', options.username);
  const password = options.password === undefined ? undefined : configWord('password', options.password);
  if (password !== undefined && username === undefined)
    throw new TypeError('mosquittoBridge(): a password needs a username');
  const keepalive = seconds('keepaliveInSeconds', options.keepaliveInSeconds ?? DEFAULT_KEEPALIVE, 5, 65_535);
  const reconnect = options.reconnectInSeconds ?? DEFAULT_RECONNECT;
  if (typeof reconnect !== 'object' || reconnect === null) {
    throw new TypeError('mosquittoBridge(): reconnectInSeconds must be { min, max }');
  }
  const min = seconds('reconnectInSeconds.min', reconnect.min, 1, 3600);
  const max = seconds('reconnectInSeconds.max', reconnect.max, min, 86_400);
  const tls = options.tls ?? {};
  if (typeof tls !== 'object' || tls === null) throw new TypeError('mosquittoBridge(): tls must be an object');
  if (!cloud.secure && Object.values(tls).some((v) => v !== undefined)) {
    throw new TypeError('mosquittoBridge(): tls options need an mqtts:// cloudUrl');
  }
  if ((tls.certFile === undefined) !== (tls.keyFile === undefined)) {
    throw new TypeError('mosquittoBridge(): tls.certFile and tls.keyFile go together');
  }

  const topics = bridgeTopics(deviceId, prefix);
  const linkTopic = `${prefix}${addresses.link(deviceId)}`;
  const name = `edgekit-${deviceId}`;
  const host = cloud.host.includes(':') ? `[${cloud.host}]` : cloud.host;
  const lines = [
    `# edgekit: device ${deviceId} <-> cloud ${host}:${cloud.port} (docs/cloud.md).`,
    '# The main configuration also needs: persistence true, and a max_queued_messages that holds an outage.',
    `connection ${configWord('connection name', name)}`,
    `address ${host}:${cloud.port}`,
    'bridge_protocol_version mqttv50',
    `remote_clientid ${clientId}`,
    ...(username === undefined ? [] : [`remote_username ${username}`]),
    ...(password === undefined ? [] : [`remote_password ${password}`]),
    // Persistent sessions on both sides: what the device sends while the link is down waits in its broker.
    'cleansession false',
    'local_cleansession false',
    `keepalive_interval ${keepalive}`,
    `restart_timeout ${min} ${max}`,
    'start_type automatic',
    'notifications true',
    `notification_topic ${linkTopic}`,
  ];
  if (cloud.secure) {
    lines.push(
      tls.caFile === undefined
        ? 'bridge_capath /etc/ssl/certs'
        : `bridge_cafile ${configWord('tls.caFile', tls.caFile)}`,
    );
    if (tls.certFile !== undefined && tls.keyFile !== undefined) {
      lines.push(`bridge_certfile ${configWord('tls.certFile', tls.certFile)}`);
      lines.push(`bridge_keyfile ${configWord('tls.keyFile', tls.keyFile)}`);
    }
    lines.push('bridge_insecure false');
  }
  for (const { topic, direction, what } of topics) lines.push(`# ${what}`, `topic ${topic} ${direction} 1`);

  const cloudAcls: MosquittoAcl[] = [{ acltype: 'publishClientSend', topic: linkTopic, priority: 0, allow: true }];
  for (const { topic, direction } of topics) {
    if (direction === 'out') cloudAcls.push({ acltype: 'publishClientSend', topic, priority: 0, allow: true });
    else {
      cloudAcls.push(
        { acltype: 'subscribePattern', topic, priority: 0, allow: true },
        { acltype: 'unsubscribePattern', topic, priority: 0, allow: true },
        { acltype: 'publishClientReceive', topic, priority: 0, allow: true },
      );
    }
  }
  // The bridge unsubscribes its `out` topics at the cloud when it connects (so nothing flows back).
  for (const { topic, direction } of topics) {
    if (direction === 'out') cloudAcls.push({ acltype: 'unsubscribePattern', topic, priority: 0, allow: true });
  }
  return { config: `${lines.join('\n')}\n`, topics, linkTopic, cloudAcls };
}
