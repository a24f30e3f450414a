/**
 * One MQTT 5 connection implementing the transport contract on mqtt.js: QoS 1 queues with PUBACK-after-handler,
 * retained values read with an ordering sentinel, request/response with response topic and correlation data, and a
 * last will. It never reconnects by itself: when the connection drops, `closed` resolves with `connection-lost` and
 * the core connects again with the same client id, resuming the broker-side session.
 */
import { randomBytes, randomInt } from 'node:crypto';
import type { IClientOptions, IClientPublishOptions, IConnackPacket, IPublishPacket, MqttClient } from 'mqtt';
import { systemClock } from '../../clock.js';
import { abortError, EdgeKitError, messageOf, servedRequestFailed } from '../../errors.js';
import { checkIdentity, parseIdentity } from '../../names.js';
import { redactError } from '../../redact.js';
import type {
  ConsumeOptions,
  Delivery,
  ObserveHandler,
  PublishOptions,
  RequestHandler,
  RequestOptions,
  Subscription,
  TransportCloseOptions,
  TransportConnection,
  TransportConnectOptions,
} from '../../transport.js';
import { closeTimeout } from '../kit.js';
import { connectFailed, describeReason, operationFailed } from './errors.js';
import { type InboundMessage, InboundQueue } from './inbound-queue.js';
import { type MqttLibrary, mqttModule, type ResolvedMqttOptions } from './options.js';
import {
  DirectWriter,
  encodeTopic,
  nothingStore,
  type PublishProperties,
  publishOptionsOf,
  publishPacketSize,
} from './packets.js';
import {
  checkAddress,
  checkClientId,
  checkPattern,
  IDENTITY_LEVELS,
  MAX_SUBSCRIPTION_IDENTIFIER,
  SubscriptionKind,
  suffixOf,
  TopicLayout,
  type TopicSuffix,
} from './topics.js';

/**
 * Handed to mqtt.js's `handleMessage` callback to skip its automatic PUBACK while letting it read the next packet
 * (its reader is sequential: holding the callback would stall every other packet, PUBACKs of our own publishes
 * included). The PUBACK is sent later, when the core acks the delivery.
 */
const DEFER_PUBACK = new Error('edgekit: PUBACK deferred until the delivery is acknowledged');

/** User property on a reply whose handler failed; its value is the error message. */
export const REPLY_ERROR_PROPERTY = 'edgekit-error';

/**
 * User property with the publisher's deadline (epoch ms) of a message with a ttl. MQTT counts expiry in whole
 * seconds and Mosquitto drops a message only once a full second past its interval has begun, so a 1 s ttl would end
 * anywhere between 1 and 2 s; the consumer uses this property to drop it on time (see {@link localExpiry}).
 */
export const EXPIRES_AT_PROPERTY = 'edgekit-expires-at';

/**
 * Longest ttl that gets {@link EXPIRES_AT_PROPERTY}: the broker's whole-second expiry is off by at most a second, which
 * matters for short ttls only, while a user property costs about a third of a publish's encoding time (mqtt-packet).
 */
export const PRECISE_EXPIRY_MAX_MS = 60_000;

/**
 * QoS of the subscriptions that carry control traffic: retained values (twins, presence, the route table), the
 * ordering sentinels of retained reads, and method replies. The broker sends at most its in-flight maximum
 * (Mosquitto's `max_inflight_messages`, default 20) of unacknowledged QoS 1 messages to a client, and inputs stay
 * unacknowledged until their handler is done — or, after a reconnect, until the module has registered the handler at
 * all, which it does only after reading its twin and route table. At QoS 1 those reads would queue behind the
 * inputs and a module returning to a backlog larger than the window would never finish connecting. QoS 0 messages
 * are not counted in the window. Nothing is lost by it: these are last values, re-read on every connection, and
 * replies to a connection that is gone find no caller anyway.
 */
const CONTROL_QOS = 0;

/** The properties of a message without a ttl from a connection with an identity: one object, made once. */
const IDENTIFIED: PublishProperties = { identified: true };

/** A queue address's topic, as text and as encoded for a PUBLISH. */
interface QueueTopic {
  readonly name: string;
  readonly bytes: Buffer;
}
/** Correlation data of a request: {@link CORRELATION_PREFIX_BYTES} random bytes and a 4-byte counter. */
const CORRELATION_BYTES = 16;
const CORRELATION_PREFIX_BYTES = 12;
/**
 * Addresses whose topic {@link MqttConnection} remembers, and received topics whose queue and publisher it remembers;
 * a module uses a handful, a gateway a few hundred.
 */
const TOPIC_CACHE_LIMIT = 1024;

/** How long a graceful close waits for outstanding PUBACKs before dropping the socket. */
const CLOSE_GRACE_MS = 5_000;
/** Requests held for an address that is served again soon after a reconnect; older ones are dropped. */
const EARLY_REQUEST_LIMIT = 1_000;
const EMPTY = new Uint8Array(0);
const MAX_EXPIRY_SECONDS = 0xffff_ffff;

/** mqtt.js's own packet writer; it uses it for the PUBACKs it sends itself (handlers/publish.js). */
interface PacketWriter {
  _sendPacket(packet: { cmd: 'puback'; messageId: number; reasonCode: number }): void;
}

interface RetainedReader {
  /** False while the current value is being established, true once changes go to `onChange`. */
  live: boolean;
  value: Uint8Array | undefined;
  readonly onChange?: (value: Uint8Array | undefined) => void;
}

/**
 * One pattern filter this connection subscribes for `observe` and `listRetained`, shared by every observer and lister
 * of the same pattern, and unsubscribed when the last of them goes.
 */
interface PatternSubscription {
  /** Its first filter, which names it in {@link MqttConnection.patterns}. */
  readonly filter: string;
  /** Every filter it subscribes (see `TopicLayout.patternFilters`). */
  readonly filters: readonly string[];
  readonly segments: readonly string[];
  /** Its own subscription identifier (see {@link SubscriptionKind}). */
  readonly identifier: number;
  /** A wrapper per `observe` call, so one function may observe twice. */
  readonly observers: Set<{ readonly onMessage: ObserveHandler }>;
  /** The maps of the `listRetained` calls waiting for their sentinel. */
  readonly listers: Set<Map<string, Uint8Array>>;
  /** The first SUBSCRIBE (and its SUBACK); later `listRetained` calls subscribe again for the retained messages. */
  subscribed: Promise<void> | undefined;
}

interface EarlyRequest {
  readonly packet: IPublishPacket;
  readonly payload: Uint8Array;
  readonly receivedAt: number;
}

/** A queue message that arrived before this connection consumed its address, with the topic it arrived on. */
interface UnclaimedMessage {
  readonly topic: string;
  readonly message: InboundMessage;
}

/** A received topic resolved: the queue it belongs to and its publisher. */
interface InboundTarget {
  readonly queue: InboundQueue;
  readonly publisher: string | undefined;
}

/**
 * What a connection dropped because it broke the topic layout: counted, never thrown. With the broker permissions
 * edgekit generates, neither can happen; without them, any client can cause both.
 */
export interface MqttConnectionDiagnostics {
  /**
   * Messages and requests on a topic below a consumed or served address that is not `<address>/<identity>`: no
   * edgekit client publishes there. Acknowledged and dropped.
   */
  readonly invalidTopics: number;
  /**
   * Requests whose response topic is not a reply topic of this layout (`<prefix>@client/<clientId>/reply`), e.g. a
   * caller pointing the reply at another module's input: not executed, nothing published.
   */
  readonly refusedReplyTopics: number;
}

type State = 'connecting' | 'open' | 'closing' | 'ended';

/** A QoS 1 publish sent and not yet acknowledged. */
interface InFlightPublish {
  /** Its packet size in bytes. */
  readonly size: number;
  reject(error: unknown): void;
}

/**
 * What a transport's connections learn about the broker's size limit and keep for the next connection: the smallest
 * packet it refused without announcing a limit (Infinity until then).
 */
export interface MqttSizeMemory {
  refused: number;
}

/** MQTT 5's default Receive Maximum, when the broker announces none. */
const MQTT_MAX_RECEIVE_MAXIMUM = 65_535;

/** mqtt-packet's error for an acknowledgement whose reason code MQTT 5 does not allow there. */
const INVALID_ACK = /^Invalid (puback|pubrec|pubrel|pubcomp) reason code/;

/** The payload as bytes; a Buffer is one already (the core and its decoders take Buffers without copying). */
function view(payload: Buffer | string): Uint8Array {
  return typeof payload === 'string' ? new TextEncoder().encode(payload) : payload;
}

function toBuffer(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

function checkBytes(value: unknown, what: string): Uint8Array {
  if (!(value instanceof Uint8Array)) throw new TypeError(`${what} must be a Uint8Array, got ${typeof value}`);
  return value;
}

function checkDuration(value: unknown, what: string): number {
  if (typeof value !== 'number') throw new TypeError(`${what} must be a number of milliseconds, got ${typeof value}`);
  if (!Number.isFinite(value) || value <= 0) throw new RangeError(`${what} must be a positive number, got ${value}`);
  return value;
}

function expirySeconds(ms: number): number {
  return Math.min(MAX_EXPIRY_SECONDS, Math.max(1, Math.ceil(ms / 1000)));
}

function subscriptionKinds(packet: IPublishPacket): readonly number[] {
  const ids = packet.properties?.subscriptionIdentifier;
  if (ids === undefined) return [];
  return Array.isArray(ids) ? ids : [ids];
}

/**
 * When a received queue message expires locally. The publisher's deadline is trusted only inside the last second of
 * the expiry the broker forwarded (the broker's remaining interval, free of clock skew between hosts): a skewed clock
 * can move the drop by at most about a second, never throw away a message with time to live.
 */
function localExpiry(packet: IPublishPacket): number | undefined {
  const property = packet.properties?.userProperties?.[EXPIRES_AT_PROPERTY];
  if (property === undefined) return undefined;
  const receivedAt = Date.now();
  // Absent on a message that carries a deadline: the broker had 0 s left and omitted the property (Mosquitto does).
  const remaining = packet.properties?.messageExpiryInterval ?? 0;
  const deadline = Number(Array.isArray(property) ? property[0] : property);
  if (!Number.isFinite(deadline)) return undefined;
  return Math.max(deadline, receivedAt + Math.max(0, remaining - 1) * 1000);
}

/**
 * The longest of `bases` that `topic` is or starts with (followed by `/`), trying the topic itself and then each
 * shorter level prefix; `undefined` when none is.
 */
function baseOf(topic: string, bases: { has(topic: string): boolean }): string | undefined {
  let base = topic;
  while (!bases.has(base)) {
    const slash = base.lastIndexOf('/');
    if (slash <= 0) return undefined;
    base = base.slice(0, slash);
  }
  return base;
}

/**
 * The address an observed or listed `address` (a topic without the prefix) stands for under a pattern's `segments`,
 * and its publisher: the address has the pattern's levels, followed by an identity's two levels when the message is
 * `identified` (see `PublishProperties.identified`). Without the mark the levels are all address: `inputs/d/m/i` from
 * a publisher without an identity would otherwise pass for `inputs/d` published by `m/i`.
 */
function matchPattern(
  segments: readonly string[],
  address: string,
  identified: boolean,
): { readonly address: string; readonly publisher: string | undefined } | undefined {
  const parts = address.split('/');
  const n = segments.length;
  let publisher: string | undefined;
  if (identified) {
    if (parts.length !== n + IDENTITY_LEVELS) return undefined;
    publisher = parts.slice(n).join('/');
    if (parseIdentity(publisher) === undefined) return undefined;
  } else if (parts.length !== n) {
    return undefined;
  }
  for (let i = 0; i < n; i++) {
    if (segments[i] !== '*' && segments[i] !== parts[i]) return undefined;
  }
  return { address: publisher === undefined ? address : parts.slice(0, n).join('/'), publisher };
}

/** Whether a message carries the mark of a topic that ends in an identity (see `PublishProperties.identified`). */
function isIdentified(packet: IPublishPacket): boolean {
  return packet.properties?.payloadFormatIndicator !== undefined;
}

/** An open connection; see the module comment. Created by {@link openConnection}. */
export class MqttConnection implements TransportConnection {
  readonly closed: Promise<Error | undefined>;

  private resolveClosed!: (cause: Error | undefined) => void;
  private state: State = 'connecting';
  private endError: EdgeKitError | undefined;
  private lastError: unknown;
  /** What the broker said it supports in its CONNACK (MQTT 5 defaults: everything). */
  private subscriptionIdentifiers = true;
  private sharedSubscriptions = true;
  private serverDisconnectReason: number | undefined;
  private closing: Promise<void> | undefined;
  private finishClose: (() => void) | undefined;
  /** Rejecters of every operation in flight, called with the terminal error when the connection ends. */
  private readonly pending = new Set<(error: EdgeKitError) => void>();
  private readonly queues = new Map<string, InboundQueue>();
  /** Queue messages whose address has no consumer on this connection yet (a resumed session's), in arrival order. */
  private readonly unclaimed: UnclaimedMessage[] = [];
  /** Received queue topics resolved to their queue and publisher (a topic per address and publisher). */
  private readonly inboundTopics = new Map<string, InboundTarget | 'invalid'>();
  private readonly counters = { invalidTopics: 0, refusedReplyTopics: 0 };
  /** This connection publishes messages and requests under an identity (see `PublishProperties.identified`). */
  private readonly identified: true | undefined;
  /** The broker resumed a session: it may hold subscriptions of a version that did not carry identities. */
  private sessionPresent = false;
  /** Publish topics by address (with this connection's identity): publishing is the hot path. */
  private readonly topicCache = new Map<string, QueueTopic>();
  /** Writes the hot-path packets itself; undefined with an mqtt.js that lacks the fields it needs. */
  private readonly writer: DirectWriter | undefined;
  private readonly queueSubscriptions = new Map<string, Promise<void>>();
  private readonly retained = new Map<string, Set<RetainedReader>>();
  private readonly servers = new Map<string, RequestHandler>();
  /** Requests for addresses not served (yet) on this connection, with their topics, oldest first. */
  private readonly earlyRequests: Array<{ readonly topic: string; readonly request: EarlyRequest }> = [];
  private readonly replies = new Map<number, (packet: IPublishPacket, payload: Uint8Array) => void>();
  /**
   * Correlation data of this connection's requests: a random prefix, then a counter. The prefix keeps replies meant
   * for an earlier connection of the same session (same reply topic) from matching; no need for 16 random bytes each.
   */
  private readonly correlationPrefix = randomBytes(CORRELATION_PREFIX_BYTES);
  private correlationCounter = 0;
  private readonly syncs = new Map<string, () => void>();
  /** Pattern subscriptions by filter, and by subscription identifier. */
  private readonly patterns = new Map<string, PatternSubscription>();
  private readonly patternsById = new Map<number, PatternSubscription>();
  /**
   * The last pattern identifier handed out. It starts at random: a pattern subscription that a crashed connection left
   * in the persistent session keeps sending with its old identifier, which should not name a new pattern.
   */
  private patternIdentifier = SubscriptionKind.observe + randomInt(0, 1 << 27);
  private clientTopics: Promise<void> | undefined;
  /** The largest packet the broker takes: its CONNACK Maximum Packet Size, or the transport's `maxPacketBytes`. */
  private sendLimit: number;
  /** The broker's CONNACK Receive Maximum: QoS 1 publishes it takes unacknowledged at once. */
  private sendQuota = MQTT_MAX_RECEIVE_MAXIMUM;
  /** Publishes sent and not yet acknowledged. */
  private readonly inFlight = new Set<InFlightPublish>();
  /** Publishes waiting for the broker's Receive Maximum, in order. */
  private readonly waitingPublishes: Array<() => void> = [];
  private syncCounter = 0;
  /** Makes sentinel tokens unique per connection: a late sentinel of an earlier connection must not match. */
  private readonly syncNonce = randomBytes(6).toString('hex');

  constructor(
    private readonly client: MqttClient,
    private readonly topics: TopicLayout,
    private readonly url: string,
    /** Credentials to mask in messages made from mqtt.js and socket errors. */
    private readonly secrets: readonly string[],
    maxPacketBytes: number,
    /** Shared by the transport's connections: see {@link MqttSizeMemory}. */
    private readonly sizes: MqttSizeMemory,
  ) {
    this.closed = new Promise((resolve) => {
      this.resolveClosed = resolve;
    });
    this.sendLimit = maxPacketBytes;
    this.identified = topics.publisherSuffix === '' ? undefined : true;
    this.writer = DirectWriter.for(client);
    client.handleMessage = (packet, callback) => this.onMessage(packet, callback);
    client.on('error', (error) => {
      this.lastError = error;
      if (INVALID_ACK.test(error.message)) this.onUnreadableAck(error);
    });
    client.on('disconnect', (packet) => {
      this.serverDisconnectReason = packet.reasonCode ?? 0;
    });
    client.on('close', () => this.onClose());
  }

  /** Connects; resolves on a successful CONNACK. On failure everything is torn down. */
  start(timeoutInMs: number, signal: AbortSignal | undefined): Promise<void> {
    const client = this.client;
    return new Promise<void>((resolve, reject) => {
      const cleanup = () => {
        timer.cancel();
        signal?.removeEventListener('abort', onAbort);
        client.removeListener('connect', onConnect);
        client.removeListener('error', onError);
        client.removeListener('close', onCloseEarly);
      };
      const fail = (error: EdgeKitError) => {
        cleanup();
        this.state = 'ended';
        client.end(true);
        reject(error);
      };
      const onConnect = (connack: IConnackPacket) => {
        cleanup();
        this.sessionPresent = connack.sessionPresent;
        this.subscriptionIdentifiers = connack.properties?.subscriptionIdentifiersAvailable !== false;
        this.sharedSubscriptions = connack.properties?.sharedSubscriptionAvailable !== false;
        const maximumPacketSize = connack.properties?.maximumPacketSize;
        if (maximumPacketSize !== undefined && maximumPacketSize > 0) {
          this.sendLimit = Math.min(this.sendLimit, maximumPacketSize);
        }
        const receiveMaximum = connack.properties?.receiveMaximum;
        if (receiveMaximum !== undefined && receiveMaximum > 0) this.sendQuota = receiveMaximum;
        this.state = 'open';
        resolve();
      };
      const onError = (error: unknown) => fail(connectFailed(error, this.url, this.secrets));
      const onCloseEarly = () =>
        fail(
          connectFailed(
            this.lastError ?? new Error('the connection closed before the broker answered'),
            this.url,
            this.secrets,
          ),
        );
      const onAbort = () => fail(abortError(signal!));
      const timer = systemClock.setTimer(
        () => fail(new EdgeKitError('timeout', `connecting to ${this.url} took longer than ${timeoutInMs} ms`)),
        timeoutInMs,
      );
      signal?.addEventListener('abort', onAbort, { once: true });
      client.once('connect', onConnect);
      client.on('error', onError);
      client.once('close', onCloseEarly);
      try {
        client.connect();
      } catch (error) {
        fail(connectFailed(error, this.url, this.secrets));
        return;
      }
      // mqtt.js leaves Nagle's algorithm on; a QoS 1 request/response then waits ~40 ms for delayed ACKs.
      (client.stream as unknown as { setNoDelay?: (noDelay: boolean) => void }).setNoDelay?.(true);
    });
  }

  // ---- messages -------------------------------------------------------------------------------------------------

  publish(address: string, bytes: Uint8Array, options?: PublishOptions): Promise<void> {
    try {
      const topic = this.queueTopic(address);
      checkBytes(bytes, 'bytes');
      // MQTT has no priorities: `priority` is checked, then ignored (the broker delivers in order).
      const priority = options?.priority;
      if (priority !== undefined && (!Number.isInteger(priority) || priority < 0 || priority > 9)) {
        throw new RangeError(`priority must be an integer from 0 to 9, got ${priority}`);
      }
      const ttlInMs = options?.ttlInMs;
      const identified = this.identified;
      let properties: PublishProperties | undefined = identified ? IDENTIFIED : undefined;
      if (ttlInMs !== undefined) {
        checkDuration(ttlInMs, 'ttlInMs');
        properties =
          ttlInMs <= PRECISE_EXPIRY_MAX_MS
            ? {
                identified,
                messageExpiryInterval: expirySeconds(ttlInMs),
                userProperty: [EXPIRES_AT_PROPERTY, String(Date.now() + ttlInMs)],
              }
            : { identified, messageExpiryInterval: expirySeconds(ttlInMs) };
      }
      return this.publishQos1(topic, bytes, properties);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /** Publishes at QoS 1 and resolves on the PUBACK; written by {@link DirectWriter} when it can take the packet. */
  private publishQos1(topic: QueueTopic, bytes: Uint8Array, properties: PublishProperties | undefined): Promise<void> {
    const size = publishPacketSize(topic.bytes.length, bytes.byteLength, properties);
    return this.inPublishSlot(topic.name, size, (done) => {
      // The direct writer declines when the client cannot take the packet now; mqtt.js then queues or refuses it.
      if (this.writer?.publish(topic.bytes, bytes, properties, done)) return;
      this.client.publish(topic.name, toBuffer(bytes), publishOptionsOf(properties), done);
    });
  }

  /**
   * Runs one QoS 1 publish within the broker's limits: refused with `message-too-large` when the packet is over the
   * largest the broker takes (never sent: an oversize packet makes Mosquitto end the connection, or answer with a
   * PUBACK that mqtt.js cannot read), and held back while the broker's Receive Maximum of unacknowledged publishes
   * is in flight (MQTT 5 flow control, which mqtt.js does not do). Publishes leave in the order they were made.
   */
  private inPublishSlot(topic: string, size: number, send: (done: (error?: Error) => void) => void): Promise<void> {
    return this.track<void>((resolve, reject) => {
      const limit = Math.min(this.sendLimit, this.sizes.refused - 1);
      if (size > limit) {
        reject(
          new EdgeKitError(
            'message-too-large',
            `mqtt publish on ${JSON.stringify(topic)} is a ${size}-byte packet; the broker at ${this.url} takes at most ${limit}`,
            { details: { topic, size, limit } },
          ),
        );
        return;
      }
      const start = () => {
        const entry: InFlightPublish = { size, reject };
        this.inFlight.add(entry);
        send((error) => {
          this.inFlight.delete(entry);
          this.releasePublishSlots();
          if (error) reject(operationFailed(error, 'publish', topic));
          else resolve();
        });
      };
      if (this.inFlight.size < this.sendQuota && this.waitingPublishes.length === 0) start();
      else this.waitingPublishes.push(start);
    });
  }

  private releasePublishSlots(): void {
    while (this.inFlight.size < this.sendQuota && this.state === 'open') {
      const next = this.waitingPublishes.shift();
      if (next === undefined) return;
      next();
    }
  }

  /**
   * The topic a message or request to `address` is published to — with this connection's identity, if it has one —
   * validated and encoded once per address (publishing is the hot path).
   */
  private queueTopic(address: string): QueueTopic {
    let topic = this.topicCache.get(address);
    if (topic === undefined) {
      const name = this.topics.publishTopic(checkAddress('address', address));
      topic = { name, bytes: encodeTopic(name) };
      if (this.topicCache.size >= TOPIC_CACHE_LIMIT) this.topicCache.clear();
      this.topicCache.set(address, topic);
    }
    return topic;
  }

  async consume(
    address: string,
    options: ConsumeOptions,
    onDelivery: (delivery: Delivery) => void,
  ): Promise<Subscription> {
    const topic = this.topics.topic(checkAddress('address', address));
    const prefetch = options?.prefetch;
    if (typeof prefetch !== 'number' || !Number.isInteger(prefetch) || prefetch < 1) {
      throw new RangeError(`prefetch must be an integer of at least 1, got ${String(prefetch)}`);
    }
    if (typeof onDelivery !== 'function') throw new TypeError('onDelivery must be a function');
    this.assertUsable();
    const queue = this.queueFor(topic);
    const consumer = queue.addConsumer(prefetch, onDelivery);
    try {
      await this.subscribeQueue(topic);
    } catch (error) {
      queue.removeConsumer(consumer);
      throw error;
    }
    queue.activate(consumer);
    // The broker subscription stays when the consumer closes, so the queue keeps filling in the session (as a durable
    // queue does); messages already handed to this connection wait here for the next consumer of the address.
    return { close: async () => queue.removeConsumer(consumer) };
  }

  /**
   * Subscribes the queue's filter in this session, exactly as `consume` does, with no consumer: the broker keeps the
   * queue's messages in the session from now on, and what it hands this connection meanwhile waits here, unacked, for
   * a consumer (or, once this connection closes, for the session's next connection).
   */
  async keep(address: string): Promise<void> {
    const topic = this.topics.topic(checkAddress('address', address));
    this.assertUsable();
    this.queueFor(topic);
    await this.subscribeQueue(topic);
  }

  // ---- retained values ------------------------------------------------------------------------------------------

  async setRetained(key: string, value: Uint8Array | null): Promise<void> {
    const topic = this.topics.topic(checkAddress('key', key));
    if (value !== null) {
      checkBytes(value, 'value');
      if (value.byteLength === 0) {
        throw new RangeError('an MQTT retained value cannot be empty (an empty retained message deletes); use null');
      }
    }
    await this.publishPacket(topic, value ?? EMPTY, { qos: 1, retain: true });
  }

  async getRetained(key: string): Promise<Uint8Array | undefined> {
    const topic = this.topics.topic(checkAddress('key', key));
    this.assertUsable();
    const reader: RetainedReader = { live: false, value: undefined };
    await this.readRetained(topic, reader);
    void this.releaseRetained(topic, reader);
    return reader.value;
  }

  async watchRetained(key: string, onValue: (value: Uint8Array | undefined) => void): Promise<Subscription> {
    const topic = this.topics.topic(checkAddress('key', key));
    if (typeof onValue !== 'function') throw new TypeError('onValue must be a function');
    this.assertUsable();
    const reader: RetainedReader = { live: false, value: undefined, onChange: onValue };
    await this.readRetained(topic, reader);
    reader.live = true;
    try {
      onValue(reader.value);
    } catch (error) {
      await this.releaseRetained(topic, reader);
      throw error;
    }
    let closed = false;
    return {
      close: async () => {
        if (closed) return;
        closed = true;
        await this.releaseRetained(topic, reader);
      },
    };
  }

  // ---- observing and listing -------------------------------------------------------------------------------------

  /**
   * Subscribes the pattern's wildcard filter at QoS 0 — a plain subscription, so this connection gets its own copy of
   * each message and takes nothing from the address's consumers — and hands the copies to `onMessage`. Retained
   * values (sent on SUBSCRIBE, or written while observing: the filter is subscribed with retain-as-published) are not
   * messages and are not observed. Resolves on the SUBACK, when the broker routes new messages to the filter.
   */
  async observe(pattern: string, onMessage: ObserveHandler): Promise<Subscription> {
    const segments = checkPattern(pattern);
    if (typeof onMessage !== 'function') throw new TypeError('observe: onMessage must be a function');
    this.assertUsable();
    const entry = this.patternFor(segments);
    const observer = { onMessage };
    entry.observers.add(observer);
    try {
      await (entry.subscribed ?? this.subscribePattern(entry));
    } catch (error) {
      entry.observers.delete(observer);
      await this.releasePattern(entry);
      throw error;
    }
    let closed = false;
    return {
      close: async () => {
        if (closed) return;
        closed = true;
        entry.observers.delete(observer);
        await this.releasePattern(entry);
      },
    };
  }

  /**
   * Reads every retained value whose key matches as {@link getRetained} reads one: subscribes the pattern's filter
   * (the broker sends the matching retained messages while it handles the SUBSCRIBE), publishes a sentinel behind it
   * and collects what arrives before the sentinel; then unsubscribes.
   */
  async listRetained(pattern: string): Promise<ReadonlyMap<string, Uint8Array>> {
    const segments = checkPattern(pattern);
    this.assertUsable();
    if (!segments.includes('*')) {
      // One key: read as getRetained reads it, on the key's own filter (an exact pattern's filters are observe's).
      const value = await this.getRetained(pattern);
      return new Map(value === undefined ? [] : [[pattern, value]]);
    }
    const entry = this.patternFor(segments);
    const found = new Map<string, Uint8Array>();
    entry.listers.add(found);
    try {
      // Always a SUBSCRIBE of its own, even when the filter is observed already: rh 0 sends the retained messages again.
      await Promise.all([this.subscribePattern(entry), this.sync()]);
    } finally {
      entry.listers.delete(found);
      void this.releasePattern(entry);
    }
    return found;
  }

  /** The pattern subscription of `segments`, registered (not yet subscribed) when new. */
  private patternFor(segments: readonly string[]): PatternSubscription {
    const filters = this.topics.patternFilters(segments);
    const filter = filters[0] ?? '';
    let entry = this.patterns.get(filter);
    if (entry === undefined) {
      let identifier = this.patternIdentifier;
      do {
        identifier = identifier >= MAX_SUBSCRIPTION_IDENTIFIER ? SubscriptionKind.observe : identifier + 1;
      } while (this.patternsById.has(identifier));
      this.patternIdentifier = identifier;
      entry = {
        filter,
        filters,
        segments,
        identifier,
        observers: new Set(),
        listers: new Set(),
        subscribed: undefined,
      };
      this.patterns.set(filter, entry);
      this.patternsById.set(identifier, entry);
    }
    return entry;
  }

  /** Sends a SUBSCRIBE for the pattern; the first one is kept as `entry.subscribed` for later observers. */
  private subscribePattern(entry: PatternSubscription): Promise<void> {
    const subscribed = Promise.all(
      entry.filters.map((filter) => this.subscribeFilter(filter, SubscriptionKind.observe, entry.identifier)),
    ).then(() => undefined);
    if (entry.subscribed === undefined) {
      entry.subscribed = subscribed;
      subscribed.catch(() => {
        if (entry.subscribed === subscribed) entry.subscribed = undefined;
      });
    }
    return subscribed;
  }

  /** Forgets the pattern and unsubscribes its filter once nobody observes or lists it any more. */
  private async releasePattern(entry: PatternSubscription): Promise<void> {
    if (entry.observers.size > 0 || entry.listers.size > 0) return;
    if (this.patterns.get(entry.filter) !== entry) return;
    this.patterns.delete(entry.filter);
    this.patternsById.delete(entry.identifier);
    // An observe() that comes next registers a new entry; its SUBSCRIBE follows this UNSUBSCRIBE on the wire.
    if (this.state === 'open') {
      await Promise.all(entry.filters.map((filter) => this.unsubscribeFilter(filter).catch(() => undefined)));
    }
  }

  /** Hands a packet of a pattern subscription to its listers (retained) or, unless told not to, observers (messages). */
  private onPattern(
    entry: PatternSubscription | undefined,
    packet: IPublishPacket,
    payload: Uint8Array,
    toObservers = true,
  ): void {
    // Undefined: a subscription that was released, or that an earlier connection left in the session.
    if (entry === undefined) return;
    const topicAddress = this.topics.addressOf(packet.topic);
    // A pattern's `#` also matches levels below its addresses that are none of the layout's: ignored.
    const match =
      topicAddress === undefined ? undefined : matchPattern(entry.segments, topicAddress, isIdentified(packet));
    if (match === undefined) return;
    const { address, publisher } = match;
    if (packet.retain) {
      // Sent on SUBSCRIBE, or a retained write (retain as published): a current value, or a deletion when empty.
      // Retained keys never carry an identity.
      if (publisher !== undefined) return;
      for (const found of entry.listers) {
        if (payload.byteLength === 0) found.delete(address);
        else found.set(address, new Uint8Array(payload));
      }
      return;
    }
    if (!toObservers) return;
    for (const { onMessage } of entry.observers) {
      try {
        onMessage(address, new Uint8Array(payload), publisher);
      } catch {
        // an observer must not throw; what it throws is ignored
      }
    }
  }

  /**
   * Without subscription identifiers: hands a QoS 0 packet to every pattern its topic matches; true if there was one.
   * (Patterns are subscribed at QoS 0 and queues at QoS 1, so a QoS 1 packet is a queue's copy.) On a retained key
   * read on this connection, a copy without the retain flag may be that read's copy of a retained write (its
   * subscription is not retain-as-published): not given to observers.
   */
  private routeToPatterns(packet: IPublishPacket, payload: Uint8Array): boolean {
    const address = this.topics.addressOf(packet.topic);
    if (address === undefined) return false;
    const toObservers = !this.retained.has(packet.topic);
    let matched = false;
    for (const entry of this.patterns.values()) {
      if (matchPattern(entry.segments, address, isIdentified(packet)) === undefined) continue;
      matched = true;
      this.onPattern(entry, packet, payload, toObservers);
    }
    return matched;
  }

  // ---- requests -------------------------------------------------------------------------------------------------

  async request(address: string, bytes: Uint8Array, options: RequestOptions): Promise<Uint8Array> {
    const topic = this.queueTopic(address);
    checkBytes(bytes, 'bytes');
    const timeoutInMs = checkDuration(options?.timeoutInMs, 'timeoutInMs');
    const signal = options.abortSignal;
    if (signal?.aborted) throw abortError(signal);
    this.assertUsable();
    const deadline = Date.now() + timeoutInMs;
    const key = this.nextCorrelation();
    const correlation = Buffer.allocUnsafe(CORRELATION_BYTES);
    this.correlationPrefix.copy(correlation, 0);
    correlation.writeUInt32BE(key, CORRELATION_BYTES - 4);
    return new Promise<Uint8Array>((resolve, reject) => {
      let settled = false;
      const settle = (outcome: () => void) => {
        if (settled) return;
        settled = true;
        timer.cancel();
        signal?.removeEventListener('abort', onAbort);
        this.replies.delete(key);
        this.pending.delete(onEnd);
        outcome();
      };
      const onEnd = (error: EdgeKitError) => settle(() => reject(error));
      const onAbort = () => settle(() => reject(abortError(signal!)));
      const timer = systemClock.setTimer(
        () =>
          settle(() =>
            reject(new EdgeKitError('timeout', `no reply to the request on ${address} within ${timeoutInMs} ms`)),
          ),
        timeoutInMs,
      );
      signal?.addEventListener('abort', onAbort, { once: true });
      this.pending.add(onEnd);
      this.replies.set(key, (packet, payload) =>
        settle(() => {
          const failure = packet.properties?.userProperties?.[REPLY_ERROR_PROPERTY];
          if (failure === undefined) resolve(payload);
          else {
            reject(servedRequestFailed(address, Array.isArray(failure) ? failure.join('; ') : failure));
          }
        }),
      );
      this.ensureClientTopics()
        .then(() => {
          if (settled) return;
          return this.publishQos1(topic, bytes, {
            identified: this.identified,
            responseTopic: this.topics.replies,
            correlationData: correlation,
            // The broker drops the request when the caller has given up (seconds: MQTT's granularity).
            messageExpiryInterval: expirySeconds(deadline - Date.now()),
          });
        })
        .catch((error: unknown) => settle(() => reject(error)));
    });
  }

  async serve(address: string, handler: RequestHandler): Promise<Subscription> {
    const topic = this.topics.topic(checkAddress('address', address));
    if (typeof handler !== 'function') throw new TypeError('handler must be a function');
    this.assertUsable();
    if (this.servers.has(topic)) {
      throw new EdgeKitError('transport-error', `${address} is already served on this connection`);
    }
    this.checkSharing();
    const filter = this.topics.queueFilter(topic);
    this.servers.set(topic, handler);
    try {
      await this.subscribeFilter(filter, SubscriptionKind.serve);
    } catch (error) {
      this.servers.delete(topic);
      throw error;
    }
    this.dropLegacySubscription(topic);
    for (let i = 0; i < this.earlyRequests.length; ) {
      const held = this.earlyRequests[i]!;
      if (baseOf(held.topic, this.servers) === topic) {
        this.earlyRequests.splice(i, 1);
        this.acceptRequest(handler, topic, held.topic, held.request);
      } else i++;
    }
    let closed = false;
    return {
      close: async () => {
        if (closed) return;
        closed = true;
        if (this.servers.get(topic) !== handler) return; // the connection ended (or closed) meanwhile
        this.servers.delete(topic);
        if (this.state === 'open') await this.unsubscribeFilter(filter).catch(() => undefined);
      },
    };
  }

  /** The next request's correlation counter, skipping one still waiting after a wrap-around. */
  private nextCorrelation(): number {
    do {
      this.correlationCounter = (this.correlationCounter + 1) >>> 0;
    } while (this.replies.has(this.correlationCounter));
    return this.correlationCounter;
  }

  // ---- lifecycle ------------------------------------------------------------------------------------------------

  /** What this connection dropped for breaking the topic layout (not part of the transport contract). */
  diagnostics(): MqttConnectionDiagnostics {
    return { ...this.counters };
  }

  close(options: TransportCloseOptions = {}): Promise<void> {
    if (this.closing) return this.closing;
    if (this.state === 'ended') return Promise.resolve();
    const grace = closeTimeout(options, CLOSE_GRACE_MS);
    this.state = 'closing';
    // Served addresses are unsubscribed first: requests queued in a closed session would wait unanswered until they
    // expire — with shared subscriptions a share of every replica's requests. Queues stay subscribed, so a module's
    // inputs keep waiting for it while it is away.
    // Pattern filters too: a session keeps them, and the broker would go on sending copies to the closed session.
    const served = [
      ...[...this.servers.keys()].map((topic) => this.topics.queueFilter(topic)),
      ...[...this.patterns.values()].flatMap((entry) => entry.filters),
    ];
    this.servers.clear();
    this.patterns.clear();
    this.patternsById.clear();
    this.closing = new Promise<void>((resolve) => {
      // No answer within the grace (a silent partition): drop the socket; the broker fires the will, as for a crash.
      const timer = systemClock.setTimer(() => {
        this.client.stream?.destroy();
        resolve();
      }, grace);
      this.finishClose = () => {
        timer.cancel();
        resolve();
      };
      if (grace === 0) {
        this.finishClose = undefined;
        return;
      }
      if (served.length > 0) this.client.unsubscribe(served);
      // A normal DISCONNECT (reason 0), sent once the UNSUBACK and outstanding PUBACKs are in: the broker discards the
      // will and keeps the session for its expiry.
      this.client.end(false, { reasonCode: 0 }, () => this.finishClose?.());
    }).then(() => this.terminate(undefined));
    return this.closing;
  }

  // ---- internals ------------------------------------------------------------------------------------------------

  private onClose(): void {
    if (this.state === 'closing') {
      this.finishClose?.();
      return;
    }
    if (this.state !== 'open') return;
    const reason = this.serverDisconnectReason;
    const cause = redactError(
      reason === undefined ? this.lastError : new Error(`the broker ended the connection: ${describeReason(reason)}`),
      this.secrets,
    );
    const why = cause === undefined ? '' : `: ${messageOf(cause)}`;
    this.terminate(
      new EdgeKitError('connection-lost', `the connection to ${this.url} was lost${why}`, {
        cause,
        details: reason === undefined ? {} : { reasonCode: reason },
      }),
    );
  }

  /**
   * mqtt.js could not read an acknowledgement: its parser stops for good, so the connection is dead and only the
   * keep-alive would notice (after 1.5 times its interval). Mosquitto sends one for a publish over its
   * `message_size_limit` (a PUBACK with reason 0x95, which MQTT 5 does not allow there) — that limit is not announced
   * in the CONNACK, so which publish it was is not known. The largest publish in flight was over it: it is refused
   * with `message-too-large` (sending it again would end every later connection the same way), its size remembered
   * for the transport's later publishes, and the connection ended at once.
   */
  private onUnreadableAck(error: Error): void {
    let largest: InFlightPublish | undefined;
    for (const entry of this.inFlight) if (largest === undefined || entry.size > largest.size) largest = entry;
    if (largest !== undefined) {
      this.sizes.refused = Math.min(this.sizes.refused, largest.size);
      this.inFlight.delete(largest);
      largest.reject(
        new EdgeKitError(
          'message-too-large',
          `the broker at ${this.url} refused a ${largest.size}-byte publish with an acknowledgement mqtt.js cannot read ` +
            "(Mosquitto's message_size_limit does this; set the transport's maxPacketBytes to that limit, or use " +
            'max_packet_size, which brokers announce)',
          { cause: error, details: { size: largest.size } },
        ),
      );
    }
    this.fail(error, 'the broker sent an acknowledgement that cannot be read');
  }

  /** Ends the connection after an error of its own: the socket is dropped and `closed` resolves with the reason. */
  private fail(error: unknown, what: string): void {
    if (this.state === 'ended') return;
    this.client.stream?.destroy();
    this.terminate(
      new EdgeKitError('connection-lost', `the connection was dropped: ${what}: ${messageOf(error)}`, { cause: error }),
    );
  }

  /** Ends the connection for good: `cause` is undefined after close(). */
  private terminate(cause: EdgeKitError | undefined): void {
    if (this.state === 'ended') return;
    this.state = 'ended';
    this.endError = cause ?? new EdgeKitError('closed', 'the connection is closed');
    const rejecters = [...this.pending];
    this.pending.clear();
    for (const reject of rejecters) reject(this.endError);
    for (const queue of this.queues.values()) queue.stop();
    this.queues.clear();
    this.unclaimed.length = 0;
    this.inboundTopics.clear();
    this.queueSubscriptions.clear();
    this.retained.clear();
    this.servers.clear();
    this.patterns.clear();
    this.patternsById.clear();
    this.earlyRequests.length = 0;
    this.replies.clear();
    this.syncs.clear();
    // Their promises were rejected above with the rest of the pending operations.
    this.inFlight.clear();
    this.waitingPublishes.length = 0;
    this.client.end(true);
    this.resolveClosed(cause);
  }

  private assertUsable(): void {
    if (this.state === 'open') return;
    throw this.state === 'ended' && this.endError
      ? this.endError
      : new EdgeKitError('closed', 'the connection is closed');
  }

  /** Runs an mqtt.js operation as a promise that also rejects when the connection ends first. */
  private track<T>(run: (resolve: (value: T) => void, reject: (error: unknown) => void) => void): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      if (this.state !== 'open') {
        reject(
          this.state === 'ended' && this.endError
            ? this.endError
            : new EdgeKitError('closed', 'the connection is closed'),
        );
        return;
      }
      const onEnd = (error: EdgeKitError) => reject(error);
      this.pending.add(onEnd);
      run(
        (value) => {
          this.pending.delete(onEnd);
          resolve(value);
        },
        (error) => {
          this.pending.delete(onEnd);
          reject(error);
        },
      );
    });
  }

  private publishPacket(topic: string, payload: Uint8Array, options: IClientPublishOptions): Promise<void> {
    const size = publishPacketSize(2 + Buffer.byteLength(topic, 'utf8'), payload.byteLength, undefined);
    return this.inPublishSlot(topic, size, (done) => this.client.publish(topic, toBuffer(payload), options, done));
  }

  /**
   * Subscribes and resolves to the granted QoS. Queues and served addresses are subscribed at QoS 1; retained keys,
   * the per-client topics (sentinels, replies) and patterns at QoS 0 — see {@link CONTROL_QOS}. A pattern gets its own
   * `identifier` and retain-as-published, which tells retained values from messages.
   */
  private subscribeFilter(filter: string, kind: SubscriptionKind, identifier: number = kind): Promise<number> {
    const qos = kind === SubscriptionKind.queue || kind === SubscriptionKind.serve ? 1 : CONTROL_QOS;
    const rap = kind === SubscriptionKind.observe;
    return this.track<number>((resolve, reject) => {
      // rh 0: retained messages are sent on every SUBSCRIBE, also when the subscription exists (getRetained relies on it).
      // Without subscription identifiers, messages are routed by what is registered on this connection.
      const options = this.subscriptionIdentifiers
        ? ({ qos, rh: 0, rap, properties: { subscriptionIdentifier: identifier } } as const)
        : ({ qos, rh: 0, rap } as const);
      this.client.subscribe(filter, options, (error, granted) => {
        if (error) {
          reject(operationFailed(error, 'subscribe', filter));
          return;
        }
        const qos = granted?.[0]?.qos;
        if (qos === undefined || qos >= 0x80) {
          const refusal = Object.assign(new Error(`the broker refused with ${qos ?? 'no reason'}`), { code: qos });
          reject(operationFailed(refusal, 'subscribe', filter));
        } else resolve(qos);
      });
    });
  }

  private unsubscribeFilter(filter: string): Promise<void> {
    return this.track<void>((resolve, reject) => {
      this.client.unsubscribe(filter, (error) => {
        if (error) reject(operationFailed(error, 'unsubscribe', filter));
        else resolve();
      });
    });
  }

  /** Refuses a share group on a broker without shared subscriptions. */
  private checkSharing(): void {
    if (this.topics.shareGroup !== undefined && !this.sharedSubscriptions) {
      throw new EdgeKitError('unsupported', `the broker at ${this.url} has no shared subscriptions; remove shareGroup`);
    }
  }

  /** The local queue of a consumed topic; a new one takes the messages that arrived for it before. */
  private queueFor(topic: string): InboundQueue {
    let queue = this.queues.get(topic);
    if (queue === undefined) {
      queue = new InboundQueue();
      this.queues.set(topic, queue);
      // A new base can change what a received topic resolves to.
      this.inboundTopics.clear();
      this.claimUnclaimed();
    }
    return queue;
  }

  /** Moves held messages whose queue is now known into it, keeping their order; drops invalid ones. */
  private claimUnclaimed(): void {
    let kept = 0;
    for (const held of this.unclaimed) {
      const target = this.inboundTarget(held.topic);
      if (target === undefined) this.unclaimed[kept++] = held;
      else if (target === 'invalid') this.dropInvalid(held.message.puback);
      else target.queue.push({ ...held.message, publisher: target.publisher });
    }
    this.unclaimed.length = kept;
  }

  /**
   * The queue a received topic belongs to — the consumed topic it is or starts with — and its publisher; `invalid`
   * for a topic below a consumed one that is not `<topic>/<identity>`; `undefined` when no consumed topic covers it.
   */
  private inboundTarget(topic: string): InboundTarget | 'invalid' | undefined {
    const known = this.inboundTopics.get(topic);
    if (known !== undefined) return known;
    const base = baseOf(topic, this.queues);
    if (base === undefined) return undefined;
    const suffix: TopicSuffix = suffixOf(topic, base);
    const target = suffix === 'invalid' ? 'invalid' : { queue: this.queues.get(base)!, publisher: suffix.publisher };
    if (this.inboundTopics.size >= TOPIC_CACHE_LIMIT) this.inboundTopics.clear();
    this.inboundTopics.set(topic, target);
    return target;
  }

  /** A message on a topic that breaks the layout: acknowledged (or it would come back forever) and counted. */
  private dropInvalid(puback: () => void): void {
    this.counters.invalidTopics++;
    puback();
  }

  /**
   * A session resumed from a version before identities may still hold the address's plain filter besides
   * `<topic>/#`, and Mosquitto sends a message matching both once per subscription — for every message published
   * without an identity, as long as the session lives. The plain filter is removed once the new one is in place, so
   * nothing is missed; a message published just then may come twice. A fresh session has no such filter.
   */
  private dropLegacySubscription(topic: string): void {
    if (!this.sessionPresent || this.state !== 'open') return;
    // The plain filter may be one of this connection's own: a retained read or an exact observation of the topic.
    if (this.retained.has(topic) || this.patterns.has(topic)) return;
    void this.unsubscribeFilter(this.topics.legacyQueueFilter(topic)).catch(() => undefined);
  }

  private subscribeQueue(topic: string): Promise<void> {
    let subscribed = this.queueSubscriptions.get(topic);
    if (subscribed === undefined) {
      this.checkSharing();
      subscribed = this.subscribeFilter(this.topics.queueFilter(topic), SubscriptionKind.queue).then((qos) => {
        if (qos < 1) {
          throw new EdgeKitError('unsupported', `the broker granted QoS ${qos} on ${topic}; at-least-once needs QoS 1`);
        }
        this.dropLegacySubscription(topic);
      });
      this.queueSubscriptions.set(topic, subscribed);
      subscribed.catch(() => this.queueSubscriptions.delete(topic));
    }
    return subscribed;
  }

  private ensureClientTopics(): Promise<void> {
    if (this.clientTopics === undefined) {
      const subscribed = this.subscribeFilter(this.topics.clientFilter, SubscriptionKind.client).then(() => undefined);
      this.clientTopics = subscribed;
      subscribed.catch(() => {
        if (this.clientTopics === subscribed) this.clientTopics = undefined;
      });
    }
    return this.clientTopics;
  }

  /**
   * Resolves once every message the broker sent this connection before now has arrived. MQTT has no GET: while it
   * handles a SUBSCRIBE, Mosquitto queues the topic's retained message to us, so a sentinel published to our own
   * topic after the SUBSCRIBE comes back after it; if the retained message did not come first, there is none.
   */
  private async sync(): Promise<void> {
    await this.ensureClientTopics();
    this.syncCounter += 1;
    const token = `${this.syncNonce}:${this.syncCounter}`;
    const arrived = this.track<void>((resolve) => this.syncs.set(token, resolve));
    // When the connection ends, both the publish and the wait for the sentinel reject; only the publish's error is
    // thrown, so the other rejection must be handled here or it is an unhandled rejection that kills the process.
    arrived.catch(() => undefined);
    try {
      await this.publishPacket(this.topics.sync, new TextEncoder().encode(token), { qos: 1 });
    } catch (error) {
      this.syncs.get(token)?.();
      this.syncs.delete(token);
      throw error;
    }
    await arrived;
  }

  private async readRetained(topic: string, reader: RetainedReader): Promise<void> {
    let readers = this.retained.get(topic);
    if (readers === undefined) {
      readers = new Set();
      this.retained.set(topic, readers);
    }
    readers.add(reader);
    try {
      // No need to wait for the SUBACK before the sentinel: the SUBSCRIBE is on the wire already and the broker handles
      // a client's packets in order, queueing the retained message while it handles the SUBSCRIBE. One round trip.
      await Promise.all([this.subscribeFilter(topic, SubscriptionKind.retained), this.sync()]);
    } catch (error) {
      await this.releaseRetained(topic, reader);
      throw error;
    }
  }

  private async releaseRetained(topic: string, reader: RetainedReader): Promise<void> {
    const readers = this.retained.get(topic);
    if (readers === undefined || !readers.delete(reader)) return;
    if (readers.size > 0) return;
    this.retained.delete(topic);
    if (this.state === 'open') await this.unsubscribeFilter(topic).catch(() => undefined);
  }

  /** mqtt.js's per-message hook; it reads the next packet when `callback` is called. */
  private onMessage(packet: IPublishPacket, callback: (error?: Error) => void): void {
    let deferAck = false;
    try {
      deferAck = this.route(packet);
    } catch (error) {
      // A packet this connection cannot handle must not crash the process: the connection ends with the reason
      // (the core reconnects, and the unacknowledged message comes again).
      this.fail(error, `a message on ${packet.topic} could not be handled`);
      deferAck = true;
    }
    if (deferAck && packet.qos > 0) callback(DEFER_PUBACK);
    else callback();
  }

  /** Dispatches one incoming message; returns true when its PUBACK waits for the core's ack. */
  private route(packet: IPublishPacket): boolean {
    if (this.state === 'ended') return true;
    const topic = packet.topic;
    const kinds = subscriptionKinds(packet);
    const payload = view(packet.payload);
    if (kinds.length > 0 && kinds.some((kind) => kind >= SubscriptionKind.observe)) {
      // A copy for patterns, maybe in one packet with the copy of a queue, retained key or served address.
      for (const kind of kinds) {
        if (kind >= SubscriptionKind.observe) this.onPattern(this.patternsById.get(kind), packet, payload);
      }
      if (kinds.every((kind) => kind >= SubscriptionKind.observe)) return false;
    }
    if (kinds.includes(SubscriptionKind.client) || topic === this.topics.sync || topic === this.topics.replies) {
      this.onClientMessage(packet, payload);
      return false;
    }
    if (kinds.length === 0 && packet.qos === 0 && this.patterns.size > 0 && this.routeToPatterns(packet, payload)) {
      // Without identifiers: a pattern's copy — unless the topic is also a retained key read on this connection.
      if (!this.retained.has(topic)) return false;
    }
    if (kinds.includes(SubscriptionKind.serve) || (kinds.length === 0 && baseOf(topic, this.servers) !== undefined)) {
      this.onRequest(topic, packet, payload);
      return false;
    }
    if (kinds.includes(SubscriptionKind.retained) || (kinds.length === 0 && this.retained.has(topic))) {
      this.onRetained(topic, packet, payload);
      return false;
    }
    // Queues are subscribed at QoS 1: a QoS 0 message is none of theirs (a stale subscription's), and not held.
    if (packet.qos === 0) return false;
    const messageId = packet.messageId;
    const puback = () => {
      if (this.state !== 'open' || messageId === undefined || packet.qos === 0) return;
      if (this.writer) this.writer.puback(messageId);
      else (this.client as unknown as PacketWriter)._sendPacket({ cmd: 'puback', messageId, reasonCode: 0 });
    };
    const target = this.inboundTarget(topic);
    if (target === 'invalid') {
      this.dropInvalid(puback);
      return true;
    }
    const expiresAt = localExpiry(packet);
    if (target !== undefined) {
      target.queue.push({ bytes: payload, redelivered: packet.dup, expiresAt, publisher: target.publisher, puback });
      return true;
    }
    // A queue message that a resumed session delivers before its consumer registered again: kept unacked until then.
    const message = { bytes: payload, redelivered: packet.dup, expiresAt, publisher: undefined, puback };
    this.unclaimed.push({ topic, message });
    return true;
  }

  private onClientMessage(packet: IPublishPacket, payload: Uint8Array): void {
    if (packet.topic === this.topics.sync) {
      const token = new TextDecoder().decode(payload);
      const arrived = this.syncs.get(token);
      this.syncs.delete(token);
      arrived?.();
      return;
    }
    const correlation = packet.properties?.correlationData;
    if (packet.topic !== this.topics.replies || correlation === undefined) return;
    // Replies to requests of an earlier connection (same session, other prefix) find no waiter and are dropped.
    if (
      correlation.length !== CORRELATION_BYTES ||
      correlation.compare(this.correlationPrefix, 0, CORRELATION_PREFIX_BYTES, 0, CORRELATION_PREFIX_BYTES) !== 0
    ) {
      return;
    }
    // Replies to requests of an earlier connection (same session) find no waiter and are dropped.
    this.replies.get(correlation.readUInt32BE(CORRELATION_PREFIX_BYTES))?.(packet, payload);
  }

  private onRetained(topic: string, packet: IPublishPacket, payload: Uint8Array): void {
    const readers = this.retained.get(topic);
    if (readers === undefined) return;
    const value = payload.byteLength === 0 ? undefined : payload;
    for (const reader of readers) {
      if (!reader.live) {
        reader.value = value;
      } else if (!packet.retain) {
        // Live changes arrive with retain=0; retain=1 copies are answers to another reader's SUBSCRIBE.
        try {
          reader.onChange?.(value);
        } catch (error) {
          this.fail(error, `a watcher of ${topic} failed`);
        }
      }
    }
  }

  private onRequest(topic: string, packet: IPublishPacket, payload: Uint8Array): void {
    const request: EarlyRequest = { packet, payload, receivedAt: Date.now() };
    const base = baseOf(topic, this.servers);
    const handler = base === undefined ? undefined : this.servers.get(base);
    if (base !== undefined && handler !== undefined) {
      this.acceptRequest(handler, base, topic, request);
      return;
    }
    // Served again soon (after a reconnect the session delivers before serve() is called): hold it until then.
    this.earlyRequests.push({ topic, request });
    if (this.earlyRequests.length > EARLY_REQUEST_LIMIT) this.earlyRequests.shift();
  }

  /** Runs a request that arrived on `topic` below the served `base`, whose levels below it name the caller. */
  private acceptRequest(handler: RequestHandler, base: string, topic: string, request: EarlyRequest): void {
    const suffix = suffixOf(topic, base);
    if (suffix === 'invalid') {
      this.counters.invalidTopics++;
      return;
    }
    this.runRequest(handler, request, suffix.publisher);
  }

  private runRequest(
    handler: RequestHandler,
    { packet, payload, receivedAt }: EarlyRequest,
    publisher: string | undefined,
  ): void {
    const properties = packet.properties ?? {};
    const responseTopic = properties.responseTopic;
    if (responseTopic === undefined) return;
    // A reply goes only where callers of this layout take theirs: a caller must not be able to make this module
    // publish its answer into another module's input, twin or presence (nor will the broker let it, with edgekit's
    // permissions). Such a request is not executed.
    if (!this.topics.isReplyTopic(responseTopic)) {
      this.counters.refusedReplyTopics++;
      return;
    }
    const expiry = properties.messageExpiryInterval;
    const deadline = expiry === undefined ? undefined : receivedAt + expiry * 1000;
    // A request whose deadline has passed is not executed.
    if (deadline !== undefined && Date.now() >= deadline) return;
    const reply = (bytes: Uint8Array, failure: string | undefined) => {
      if (this.state !== 'open') return;
      const remaining = deadline === undefined ? undefined : deadline - Date.now();
      if (remaining !== undefined && remaining <= 0) return;
      const replyProperties: PublishProperties = {
        ...(properties.correlationData === undefined ? {} : { correlationData: properties.correlationData }),
        ...(remaining === undefined ? {} : { messageExpiryInterval: expirySeconds(remaining) }),
        ...(failure === undefined ? {} : { userProperty: [REPLY_ERROR_PROPERTY, failure] as const }),
      };
      // A reply that cannot be published is lost; the requester times out.
      let topic: QueueTopic;
      try {
        topic = { name: responseTopic, bytes: encodeTopic(responseTopic) };
      } catch {
        return;
      }
      this.publishQos1(topic, bytes, replyProperties).catch(() => undefined);
    };
    Promise.resolve()
      .then(() => handler(payload, publisher === undefined ? {} : { publisher }))
      .then(
        (bytes) =>
          bytes instanceof Uint8Array
            ? reply(bytes, undefined)
            : reply(EMPTY, `the request handler returned ${typeof bytes}, not a Uint8Array`),
        (error: unknown) => reply(EMPTY, messageOf(error) || 'the request handler failed'),
      );
  }
}

/** Connects with the core's options; see {@link MqttConnection}. */
export async function openConnection(
  lib: MqttLibrary,
  settings: ResolvedMqttOptions,
  options: TransportConnectOptions,
  sizes: MqttSizeMemory = { refused: Number.POSITIVE_INFINITY },
): Promise<MqttConnection> {
  if (typeof options !== 'object' || options === null) throw new TypeError('connect() needs an options object');
  const coreClientId = checkClientId(options.clientId);
  const clientId = settings.clientId ?? checkClientId(settings.clientIdPrefix + coreClientId);
  const timeoutInMs =
    options.timeoutInMs === undefined ? settings.connectTimeoutInMs : checkDuration(options.timeoutInMs, 'timeoutInMs');
  const signal = options.abortSignal;
  if (signal?.aborted) throw abortError(signal);
  const identity = options.identity === undefined ? undefined : checkIdentity(options.identity);
  const topics = new TopicLayout(settings.topicPrefix, settings.shareGroup, clientId, identity);
  let will: IClientOptions['will'];
  if (options.will !== undefined) {
    const value = checkBytes(options.will.value, 'will.value');
    if (value.byteLength === 0)
      throw new RangeError('will.value must not be empty (an empty retained message deletes)');
    will = {
      topic: topics.topic(checkAddress('key', options.will.key)),
      payload: toBuffer(value),
      qos: 1,
      retain: true,
    };
  }
  const tls = settings.tls;
  const clientOptions: IClientOptions & { passphrase?: string } = {
    protocol: settings.protocol,
    host: settings.host,
    hostname: settings.host,
    port: settings.port,
    protocolVersion: 5,
    clientId,
    // A persistent session: subscriptions and queued QoS 1 messages survive a disconnect for sessionExpiry seconds.
    clean: false,
    properties: {
      sessionExpiryInterval: options.durableSession
        ? settings.queueSessionExpiryInSeconds
        : settings.sessionExpiryInSeconds,
      // Bounds what the broker sends: no packet over this size, no more than this many unacknowledged at once.
      maximumPacketSize: settings.maxPacketBytes,
      receiveMaximum: settings.receiveMaximum,
    },
    keepalive: settings.keepaliveInSeconds,
    // The core owns reconnecting; mqtt.js must not reconnect, resubscribe or replay anything on its own.
    reconnectPeriod: 0,
    resubscribe: false,
    manualConnect: true,
    // Our own timer gives the `timeout` error; mqtt.js's is a backstop.
    connectTimeout: timeoutInMs + 1_000,
    queueQoSZero: false,
    // Saves memory: mqtt-packet otherwise keeps a cache of every 2-byte number it ever wrote.
    writeCache: false,
    // mqtt.js keeps a copy of every QoS 1 packet to resend after reconnecting by itself, which it never does here.
    outgoingStore: nothingStore(),
  };
  if (will !== undefined) clientOptions.will = will;
  if (settings.username !== undefined) clientOptions.username = settings.username;
  if (settings.password !== undefined) clientOptions.password = settings.password;
  if (tls !== undefined) {
    clientOptions.rejectUnauthorized = tls.rejectUnauthorized;
    if (tls.ca !== undefined) clientOptions.ca = tls.ca;
    if (tls.cert !== undefined) clientOptions.cert = tls.cert;
    if (tls.key !== undefined) clientOptions.key = tls.key;
    if (tls.passphrase !== undefined) clientOptions.passphrase = tls.passphrase;
    if (tls.servername !== undefined) clientOptions.servername = tls.servername;
  }
  let client: MqttClient;
  try {
    client = mqttModule(lib).connect(clientOptions);
  } catch (error) {
    throw connectFailed(error, settings.displayUrl, settings.secrets);
  }
  const connection = new MqttConnection(
    client,
    topics,
    settings.displayUrl,
    settings.secrets,
    settings.maxPacketBytes,
    sizes,
  );
  await connection.start(timeoutInMs, signal);
  return connection;
}
