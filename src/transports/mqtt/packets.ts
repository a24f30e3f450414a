/**
 * The packets on the message hot path — QoS 1 PUBLISHes of messages, method requests and replies, and PUBACKs —
 * encoded here into one buffer each and written to the socket together once per event-loop turn. mqtt.js would
 * encode them with mqtt-packet, which writes every field (and every property) as a separate small buffer, and would
 * deep-copy each QoS 1 PUBLISH into its store for a resend this transport never does (the core republishes on a new
 * connection instead); that was about a third of the CPU time of a `send`. Everything else still goes through mqtt.js,
 * and the PUBACKs of these PUBLISHes still come back through it (see {@link DirectWriter.publish}). Encodings follow
 * MQTT 5.0, sections 3.3 and 3.4.
 */
import type { Duplex } from 'node:stream';
import { Readable } from 'node:stream';
import type { IClientPublishOptions, IStore, MqttClient } from 'mqtt';

/** PUBLISH, QoS 1, no DUP, no RETAIN (fixed header byte 1). */
const PUBLISH_QOS1 = 0x32;
/** PUBACK (fixed header byte 1). */
const PUBACK = 0x40;
const PAYLOAD_FORMAT_INDICATOR = 0x01;
const MESSAGE_EXPIRY_INTERVAL = 0x02;
const RESPONSE_TOPIC = 0x08;
const CORRELATION_DATA = 0x09;
const USER_PROPERTY = 0x26;
/** Largest Remaining Length MQTT can express (four variable-byte-integer bytes). */
const MAX_REMAINING_LENGTH = 268_435_455;

function varIntSize(value: number): number {
  return value < 0x80 ? 1 : value < 0x4000 ? 2 : value < 0x20_0000 ? 3 : 4;
}

function writeVarInt(buffer: Buffer, offset: number, value: number): number {
  let rest = value;
  let at = offset;
  do {
    let byte = rest % 0x80;
    rest = Math.floor(rest / 0x80);
    if (rest > 0) byte |= 0x80;
    buffer[at++] = byte;
  } while (rest > 0);
  return at;
}

/** A topic name as MQTT writes it: two length bytes and the UTF-8 bytes; encode once per topic. */
export function encodeTopic(topic: string): Buffer {
  const length = Buffer.byteLength(topic, 'utf8');
  if (length > 0xffff) throw new RangeError(`topic ${JSON.stringify(topic.slice(0, 40))}… is over 65535 bytes`);
  const buffer = Buffer.allocUnsafe(2 + length);
  buffer.writeUInt16BE(length, 0);
  buffer.write(topic, 2, 'utf8');
  return buffer;
}

/** The MQTT 5 properties a QoS 1 PUBLISH of this transport may carry. */
export interface PublishProperties {
  /**
   * Marks a topic that ends in the publisher's identity: written as a Payload Format Indicator of 0 ("unspecified
   * bytes", what an absent one means too), so it changes nothing for other MQTT clients. An observer needs it to
   * tell `<address>/<identity>` from a longer address published without an identity (see `TopicLayout`).
   */
  readonly identified?: true;
  readonly messageExpiryInterval?: number;
  /** Where a request wants its reply. */
  readonly responseTopic?: string;
  /** Matches a reply to its request. */
  readonly correlationData?: Uint8Array;
  /** One user property (the publisher's deadline of a short ttl, or the error of a failed request). */
  readonly userProperty?: readonly [name: string, value: string];
}

const MAX_TWO_BYTE_LENGTH = 0xffff;

function twoByteLength(what: string, length: number): number {
  if (length > MAX_TWO_BYTE_LENGTH) throw new RangeError(`${what} is ${length} bytes; MQTT allows at most 65535`);
  return length;
}

/** Encodes a QoS 1 PUBLISH with the given packet identifier. */
export function encodePublish(
  topic: Buffer,
  messageId: number,
  payload: Uint8Array,
  properties: PublishProperties | undefined,
): Buffer {
  const expiry = properties?.messageExpiryInterval;
  const responseTopic = properties?.responseTopic;
  const correlation = properties?.correlationData;
  const user = properties?.userProperty;
  const { propertiesLength, responseTopicLength, nameLength, valueLength, remaining } = publishLayout(
    topic.length,
    payload.byteLength,
    properties,
  );
  if (remaining > MAX_REMAINING_LENGTH) throw new RangeError(`a ${remaining}-byte PUBLISH is too large for MQTT`);
  const buffer = Buffer.allocUnsafe(1 + varIntSize(remaining) + remaining);
  buffer[0] = PUBLISH_QOS1;
  let at = writeVarInt(buffer, 1, remaining);
  at += topic.copy(buffer, at);
  buffer[at++] = messageId >> 8;
  buffer[at++] = messageId & 0xff;
  at = writeVarInt(buffer, at, propertiesLength);
  if (properties?.identified) {
    buffer[at++] = PAYLOAD_FORMAT_INDICATOR;
    buffer[at++] = 0;
  }
  if (expiry !== undefined) {
    buffer[at++] = MESSAGE_EXPIRY_INTERVAL;
    at = buffer.writeUInt32BE(expiry, at);
  }
  if (responseTopic !== undefined) {
    buffer[at++] = RESPONSE_TOPIC;
    at = buffer.writeUInt16BE(responseTopicLength, at);
    at += buffer.write(responseTopic, at, 'utf8');
  }
  if (correlation !== undefined) {
    buffer[at++] = CORRELATION_DATA;
    at = buffer.writeUInt16BE(correlation.byteLength, at);
    buffer.set(correlation, at);
    at += correlation.byteLength;
  }
  if (user !== undefined) {
    buffer[at++] = USER_PROPERTY;
    at = buffer.writeUInt16BE(nameLength, at);
    at += buffer.write(user[0], at, 'utf8');
    at = buffer.writeUInt16BE(valueLength, at);
    at += buffer.write(user[1], at, 'utf8');
  }
  buffer.set(payload, at);
  return buffer;
}

interface PublishLayout {
  readonly propertiesLength: number;
  readonly responseTopicLength: number;
  readonly nameLength: number;
  readonly valueLength: number;
  /** The packet's Remaining Length. */
  readonly remaining: number;
}

function publishLayout(
  topicBytes: number,
  payloadBytes: number,
  properties: PublishProperties | undefined,
): PublishLayout {
  let propertiesLength = 0;
  let responseTopicLength = 0;
  let nameLength = 0;
  let valueLength = 0;
  if (properties?.identified) propertiesLength += 2;
  if (properties?.messageExpiryInterval !== undefined) propertiesLength += 5;
  if (properties?.responseTopic !== undefined) {
    responseTopicLength = twoByteLength('the response topic', Buffer.byteLength(properties.responseTopic, 'utf8'));
    propertiesLength += 3 + responseTopicLength;
  }
  const correlation = properties?.correlationData;
  if (correlation !== undefined) propertiesLength += 3 + twoByteLength('correlation data', correlation.byteLength);
  const user = properties?.userProperty;
  if (user !== undefined) {
    nameLength = twoByteLength('a user property name', Buffer.byteLength(user[0], 'utf8'));
    valueLength = twoByteLength('a user property value', Buffer.byteLength(user[1], 'utf8'));
    propertiesLength += 5 + nameLength + valueLength;
  }
  // Topic (with its length prefix), packet identifier, properties (with their length), payload.
  const remaining = topicBytes + 2 + varIntSize(propertiesLength) + propertiesLength + payloadBytes;
  return { propertiesLength, responseTopicLength, nameLength, valueLength, remaining };
}

/**
 * The size in bytes of a QoS 1 PUBLISH as {@link encodePublish} (and mqtt.js) writes it — what a broker compares
 * with its Maximum Packet Size. `topicBytes` is the encoded topic with its 2-byte length prefix.
 */
export function publishPacketSize(
  topicBytes: number,
  payloadBytes: number,
  properties: PublishProperties | undefined,
): number {
  const { remaining } = publishLayout(topicBytes, payloadBytes, properties);
  return 1 + varIntSize(remaining) + remaining;
}

/** Encodes a successful PUBACK (reason code 0 and no properties may be left out: Remaining Length 2). */
export function encodePuback(messageId: number): Buffer {
  const buffer = Buffer.allocUnsafe(4);
  buffer[0] = PUBACK;
  buffer[1] = 2;
  buffer[2] = messageId >> 8;
  buffer[3] = messageId & 0xff;
  return buffer;
}

/**
 * An mqtt.js outgoing store that keeps nothing. mqtt.js stores each QoS 1 packet it sends so that it can resend it
 * after reconnecting by itself; this transport never lets it reconnect (the core opens a new connection and
 * republishes what was not acknowledged), so the copies were dead weight. It also answers the removal of packets it
 * never saw, which the PUBACKs of {@link DirectWriter} PUBLISHes cause.
 */
class NothingStore {
  put(_packet: unknown, cb: (error?: Error) => void): this {
    cb();
    return this;
  }
  createStream(): Readable {
    return Readable.from([]);
  }
  del(_packet: unknown, cb: (error?: Error) => void): this {
    cb();
    return this;
  }
  get(_packet: unknown, cb: (error?: Error) => void): this {
    cb(new Error('missing packet'));
    return this;
  }
  close(cb: (error?: Error) => void): void {
    cb();
  }
}

/**
 * A {@link NothingStore} as mqtt.js's store type, whose `createStream` is typed with the readable-stream package's
 * `Readable`; mqtt.js only calls `read`, `once`, `on` and `destroy` on it, which Node's own `Readable` has.
 */
export function nothingStore(): IStore {
  return new NothingStore() as unknown as IStore;
}

type PublishCallback = (error?: Error) => void;

/**
 * Writes PUBLISH and PUBACK packets straight to an mqtt.js client's socket. A PUBLISH is registered in the client's
 * `outgoing` table under an id from its own `messageIdProvider` (both public fields), so mqtt.js matches the PUBACK
 * and calls back exactly as for its own publishes. The socket is corked until the end of the event-loop turn
 * (`setImmediate`), so everything written in one turn — e.g. the PUBACKs of all messages that arrived in one socket
 * read, which mqtt.js hands over one tick each — leaves in one `writev`.
 */
export class DirectWriter {
  private corked = false;
  private readonly uncork = () => {
    this.corked = false;
    (this.client.stream as Duplex).uncork();
  };

  private constructor(private readonly client: MqttClient) {}

  /** A writer for `client`, or `undefined` when this mqtt.js does not have the fields it relies on. */
  static for(client: MqttClient): DirectWriter | undefined {
    const c = client as Partial<MqttClient>;
    if (typeof c.messageIdProvider?.allocate !== 'function' || typeof c.outgoing !== 'object' || c.outgoing === null) {
      return undefined;
    }
    return new DirectWriter(client);
  }

  /**
   * Sends a QoS 1 PUBLISH; `done` is called on the PUBACK (with an error for a failure reason code) or with an
   * error when the connection ends first. Returns false, having sent nothing, when the client cannot take a packet
   * now (not connected, no free packet identifier): use mqtt.js's `publish` then.
   */
  publish(
    topic: Buffer,
    payload: Uint8Array,
    properties: PublishProperties | undefined,
    done: PublishCallback,
  ): boolean {
    const client = this.client;
    if (!client.connected || client.disconnecting) return false;
    const messageId = client.messageIdProvider.allocate();
    // null: no identifier free; taken: the default provider wrapped around onto one still waiting for its PUBACK.
    if (messageId === null || client.outgoing[messageId] !== undefined) return false;
    let packet: Buffer;
    try {
      packet = encodePublish(topic, messageId, payload, properties);
    } catch (error) {
      client.messageIdProvider.deallocate(messageId);
      throw error;
    }
    client.outgoing[messageId] = { volatile: false, cmd: 'publish', cb: (error) => done(error ?? undefined) };
    this.write(packet);
    return true;
  }

  /** Sends the PUBACK of a received QoS 1 message. */
  puback(messageId: number): void {
    this.write(encodePuback(messageId));
  }

  private write(packet: Buffer): void {
    const stream = this.client.stream as Duplex;
    if (!this.corked) {
      this.corked = true;
      stream.cork();
      setImmediate(this.uncork);
    }
    stream.write(packet);
  }
}

/** The publish options mqtt.js would need for the same message (the fallback when {@link DirectWriter} declines). */
export function publishOptionsOf(properties: PublishProperties | undefined): IClientPublishOptions {
  if (properties === undefined) return { qos: 1 };
  const mqttProperties: NonNullable<IClientPublishOptions['properties']> = {};
  if (properties.identified) mqttProperties.payloadFormatIndicator = false;
  if (properties.messageExpiryInterval !== undefined) {
    mqttProperties.messageExpiryInterval = properties.messageExpiryInterval;
  }
  if (properties.responseTopic !== undefined) mqttProperties.responseTopic = properties.responseTopic;
  if (properties.correlationData !== undefined) {
    const data = properties.correlationData;
    mqttProperties.correlationData = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  }
  if (properties.userProperty !== undefined) {
    mqttProperties.userProperties = { [properties.userProperty[0]]: properties.userProperty[1] };
  }
  return { qos: 1, properties: mqttProperties };
}
