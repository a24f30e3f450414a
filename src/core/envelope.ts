/**
 * The message envelope: the exact bytes every transport carries for a message, so modules on different transports
 * interoperate through a broker that speaks both protocols. Specified in docs/protocol.md:
 *
 *   offset 0  2 bytes  magic 0xEE 0x4B
 *   offset 2  1 byte   version (1)
 *   offset 3  1 byte   flags (0; reserved)
 *   offset 4  4 bytes  header length H, unsigned big-endian
 *   offset 8  H bytes  header: a sequence of fields, each  tag (1 byte) · length L (4 bytes, big-endian) · L bytes
 *   offset 8+H         body bytes, as encoded by the message's codec
 *
 * A binary header (rather than JSON) keeps encoding and decoding to a few native string copies per message; the
 * tagged fields let later versions add fields that older readers skip.
 */
import { isUtf8 } from 'node:buffer';
import { EdgeKitError } from '../errors.js';

export const ENVELOPE_VERSION = 1;
const MAGIC0 = 0xee;
const MAGIC1 = 0x4b;
const PREFIX = 8;
const FIELD = 5;

/** Header field tags (docs/protocol.md). Text fields are UTF-8. */
const Tag = {
  MessageId: 1,
  CorrelationId: 2,
  ContentType: 3,
  ContentEncoding: 4,
  /** 8 bytes: epoch milliseconds as an IEEE-754 double, big-endian. */
  CreatedAt: 5,
  SourceDeviceId: 6,
  SourceModuleId: 7,
  SourceOutput: 8,
  /** One per application property: name length (2 bytes, big-endian) · name · value. */
  Property: 9,
  /** UTF-8 JSON of {@link DeadLetterInfo}. */
  DeadLetter: 10,
} as const;
type Tag = (typeof Tag)[keyof typeof Tag];

/** Largest encoded message (envelope included), as IoT Hub / edgeHub: 256 KiB. */
export const MAX_MESSAGE_BYTES = 256 * 1024;

/**
 * Why a message was dead-lettered: its handler kept failing, its bytes or body could not be decoded, its body failed
 * the schema, it arrived over the {@link MAX_MESSAGE_BYTES} limit (sent by something other than edgekit; its body is
 * not kept), or its `source` named another module than the identity it was published under.
 */
export type DeadLetterReason = 'handler-failed' | 'decode-failed' | 'validation-failed' | 'too-large' | 'forged-source';

/** The dead-letter field of an envelope (tag 10): why and when a module gave the message up. */
export interface DeadLetterInfo {
  readonly reason: DeadLetterReason;
  /** The error's message, at most a few hundred characters. */
  readonly error: string;
  /** The input the message arrived on. */
  readonly input: string;
  /** How many times the handler ran (0 when it never did: decoding or validation failed first). */
  readonly attempts: number;
  /** Epoch milliseconds. */
  readonly at: number;
}

/** The header of a message envelope: its system properties and application properties (docs/protocol.md). */
export interface EnvelopeHeader {
  /** Unique per message; kept across redeliveries and replays, so a consumer can de-duplicate. */
  readonly messageId: string;
  readonly correlationId?: string;
  /** E.g. `application/json` for bodies of `json()`. */
  readonly contentType?: string;
  /** E.g. `utf-8`. */
  readonly contentEncoding?: string;
  /** Epoch milliseconds when the message was sent. */
  readonly createdAt: number;
  /**
   * The device of the module that sent it, as the envelope claims (a receiver checks the claim against the
   * publisher's identity); empty on the dead letter of bytes that were no envelope.
   */
  readonly sourceDeviceId: string;
  /** The module that sent it, as the envelope claims; empty on the dead letter of bytes that were no envelope. */
  readonly sourceModuleId: string;
  /** The output it was sent on. */
  readonly sourceOutput?: string;
  /** Application properties. */
  readonly properties: Readonly<Record<string, string>>;
  /** Present only on dead letters. */
  readonly deadLetter?: DeadLetterInfo;
}

/** A decoded message envelope: header and body bytes (as the message's codec encoded them). */
export interface Envelope {
  readonly header: EnvelopeHeader;
  /** The body; a view into the decoded bytes, not a copy. */
  readonly body: Uint8Array;
}

const DEAD_LETTER_REASONS: readonly string[] = [
  'handler-failed',
  'decode-failed',
  'validation-failed',
  'too-large',
  'forged-source',
] satisfies readonly DeadLetterReason[];

/** Checks every member of a dead-letter field as strictly as the writer's; throws `decode-failed`. */
function checkDeadLetter(value: unknown): DeadLetterInfo {
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw malformed('dead-letter field is not an object');
  const { reason, error, input, attempts, at } = value as Record<string, unknown>;
  if (typeof reason !== 'string' || !DEAD_LETTER_REASONS.includes(reason))
    throw malformed(`dead-letter reason ${JSON.stringify(reason)} is not one of ${DEAD_LETTER_REASONS.join(', ')}`);
  if (typeof error !== 'string') throw malformed('dead-letter error is not a string');
  if (typeof input !== 'string') throw malformed('dead-letter input is not a string');
  if (typeof attempts !== 'number' || !Number.isInteger(attempts) || attempts < 0)
    throw malformed('dead-letter attempts is not a non-negative integer');
  if (typeof at !== 'number' || !Number.isFinite(at)) throw malformed('dead-letter time is not a number');
  return { reason: reason as DeadLetterReason, error, input, attempts, at };
}

const EMPTY: Readonly<Record<string, string>> = Object.freeze({});

/** Writes tag + length + text at `at`; returns the next offset. */
function writeText(out: Buffer, at: number, tag: Tag, text: string): number {
  const n = out.write(text, at + FIELD, 'utf8');
  out[at] = tag;
  out.writeUInt32BE(n, at + 1);
  return at + FIELD + n;
}

const textSize = (text: string | undefined) => (text === undefined ? 0 : FIELD + Buffer.byteLength(text));

function propertiesSize(properties: Readonly<Record<string, string>>): number {
  let size = 0;
  for (const name in properties)
    size += FIELD + 2 + Buffer.byteLength(name) + Buffer.byteLength(properties[name] as string);
  return size;
}

function writeProperties(out: Buffer, at: number, properties: Readonly<Record<string, string>>): number {
  for (const name in properties) {
    const nameLength = out.write(name, at + FIELD + 2, 'utf8');
    const valueLength = out.write(properties[name] as string, at + FIELD + 2 + nameLength, 'utf8');
    out[at] = Tag.Property;
    out.writeUInt32BE(2 + nameLength + valueLength, at + 1);
    out.writeUInt16BE(nameLength, at + FIELD);
    at += FIELD + 2 + nameLength + valueLength;
  }
  return at;
}

function writePrefix(out: Buffer, headerLength: number): void {
  out[0] = MAGIC0;
  out[1] = MAGIC1;
  out[2] = ENVELOPE_VERSION;
  out[3] = 0;
  out.writeUInt32BE(headerLength, 4);
}

/** Encodes header + body. */
export function encodeEnvelope(header: EnvelopeHeader, body: Uint8Array): Uint8Array {
  const deadLetter = header.deadLetter === undefined ? undefined : JSON.stringify(header.deadLetter);
  const headerLength =
    textSize(header.messageId) +
    textSize(header.correlationId) +
    textSize(header.contentType) +
    textSize(header.contentEncoding) +
    FIELD +
    8 +
    textSize(header.sourceDeviceId) +
    textSize(header.sourceModuleId) +
    textSize(header.sourceOutput) +
    propertiesSize(header.properties) +
    textSize(deadLetter);
  const out = Buffer.allocUnsafe(PREFIX + headerLength + body.length);
  writePrefix(out, headerLength);
  let at = writeText(out, PREFIX, Tag.MessageId, header.messageId);
  if (header.correlationId !== undefined) at = writeText(out, at, Tag.CorrelationId, header.correlationId);
  if (header.contentType !== undefined) at = writeText(out, at, Tag.ContentType, header.contentType);
  if (header.contentEncoding !== undefined) at = writeText(out, at, Tag.ContentEncoding, header.contentEncoding);
  out[at] = Tag.CreatedAt;
  out.writeUInt32BE(8, at + 1);
  out.writeDoubleBE(header.createdAt, at + FIELD);
  at += FIELD + 8;
  at = writeText(out, at, Tag.SourceDeviceId, header.sourceDeviceId);
  at = writeText(out, at, Tag.SourceModuleId, header.sourceModuleId);
  if (header.sourceOutput !== undefined) at = writeText(out, at, Tag.SourceOutput, header.sourceOutput);
  at = writeProperties(out, at, header.properties);
  if (deadLetter !== undefined) at = writeText(out, at, Tag.DeadLetter, deadLetter);
  out.set(body, at);
  return out;
}

/** The header fields that stay the same for every message a module sends on one output. */
export interface HeaderTemplate {
  readonly contentType: string | undefined;
  readonly contentEncoding: string | undefined;
  readonly sourceDeviceId: string;
  readonly sourceModuleId: string;
  readonly sourceOutput: string;
}

/**
 * Encodes envelopes for one output quickly: the constant fields are encoded once and copied, so a send only writes
 * what changes (ids, time, properties). The bytes decode exactly like {@link encodeEnvelope}'s.
 */
export function envelopeEncoder(
  template: HeaderTemplate,
): (
  messageId: string,
  correlationId: string | undefined,
  createdAt: number,
  properties: Readonly<Record<string, string>>,
  body: Uint8Array,
) => Uint8Array {
  const fixed = Buffer.alloc(
    textSize(template.contentType) +
      textSize(template.contentEncoding) +
      textSize(template.sourceDeviceId) +
      textSize(template.sourceModuleId) +
      textSize(template.sourceOutput),
  );
  let at = 0;
  if (template.contentType !== undefined) at = writeText(fixed, at, Tag.ContentType, template.contentType);
  if (template.contentEncoding !== undefined) at = writeText(fixed, at, Tag.ContentEncoding, template.contentEncoding);
  at = writeText(fixed, at, Tag.SourceDeviceId, template.sourceDeviceId);
  at = writeText(fixed, at, Tag.SourceModuleId, template.sourceModuleId);
  writeText(fixed, at, Tag.SourceOutput, template.sourceOutput);
  return (messageId, correlationId, createdAt, properties, body) => {
    const headerLength =
      textSize(messageId) +
      textSize(correlationId) +
      FIELD +
      8 +
      fixed.length +
      (properties === EMPTY ? 0 : propertiesSize(properties));
    const out = Buffer.allocUnsafe(PREFIX + headerLength + body.length);
    writePrefix(out, headerLength);
    let p = writeText(out, PREFIX, Tag.MessageId, messageId);
    if (correlationId !== undefined) p = writeText(out, p, Tag.CorrelationId, correlationId);
    out[p] = Tag.CreatedAt;
    out.writeUInt32BE(8, p + 1);
    out.writeDoubleBE(createdAt, p + FIELD);
    p += FIELD + 8;
    fixed.copy(out, p);
    p += fixed.length;
    if (properties !== EMPTY) p = writeProperties(out, p, properties);
    out.set(body, p);
    return out;
  };
}

/** The shared empty property map; `envelopeEncoder` skips property work for it. */
export const NO_PROPERTIES = EMPTY;

/**
 * Strict UTF-8 text of `buf[start, end)`. Decoding replaces invalid bytes with U+FFFD, so only a result that
 * contains U+FFFD needs the (slower) validity check.
 */
function text(buf: Buffer, start: number, end: number): string {
  const value = buf.toString('utf8', start, end);
  if (value.includes('\uFFFD') && !isUtf8(buf.subarray(start, end))) throw malformed('a text field is not UTF-8');
  return value;
}

function malformed(why: string, cause?: unknown): EdgeKitError {
  return new EdgeKitError('decode-failed', `malformed envelope: ${why}`, cause === undefined ? {} : { cause });
}

/**
 * Decodes the bytes of a message envelope (docs/protocol.md) — what edgekit carries on every queue: module inputs,
 * `upstream/<device>`, `deadletter/<device>/<module>` — and checks it strictly: the magic, version and flags, every
 * field's bounds, UTF-8 text, the required fields and the dead-letter field's members. Fields of later versions
 * (tags above 10) are skipped. For consumers of those queues that are not edgekit clients, e.g. a broker bridge's
 * far end; the service client's `upstream` and `deadLetters` use it.
 *
 * @throws `EdgeKitError` with code `decode-failed` (the message says what is wrong) on anything malformed; never
 * anything else.
 * @example
 * ```ts
 * import { decodeEnvelope, isEdgeKitError } from 'edgekit';
 * try {
 *   const { header, body } = decodeEnvelope(bytes);
 *   console.log(header.messageId, header.sourceModuleId, new TextDecoder().decode(body));
 * } catch (error) {
 *   if (isEdgeKitError(error, 'decode-failed')) console.warn(`not an edgekit message: ${error.message}`);
 * }
 * ```
 */
export function decodeEnvelope(bytes: Uint8Array): Envelope {
  if (!(bytes instanceof Uint8Array)) throw malformed('not a byte array');
  if (bytes.length < PREFIX) throw malformed(`${bytes.length} bytes is shorter than the 8-byte prefix`);
  if (bytes[0] !== MAGIC0 || bytes[1] !== MAGIC1) throw malformed('bad magic (not an edgekit message)');
  if (bytes[2] !== ENVELOPE_VERSION) throw malformed(`unsupported version ${bytes[2]}`);
  if (bytes[3] !== 0) throw malformed(`unknown flags ${bytes[3]}`);
  const buf = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerEnd = PREFIX + buf.readUInt32BE(4);
  if (headerEnd > buf.length)
    throw malformed(`header length ${headerEnd - PREFIX} runs past the end (${buf.length} bytes)`);
  let messageId: string | undefined;
  let correlationId: string | undefined;
  let contentType: string | undefined;
  let contentEncoding: string | undefined;
  let createdAt: number | undefined;
  let sourceDeviceId: string | undefined;
  let sourceModuleId: string | undefined;
  let sourceOutput: string | undefined;
  let properties: Record<string, string> | undefined;
  let deadLetter: DeadLetterInfo | undefined;
  let at = PREFIX;
  while (at < headerEnd) {
    if (at + FIELD > headerEnd) throw malformed('truncated field');
    const tag = buf[at] as number;
    if (tag === 0) throw malformed('field tag 0');
    const start = at + FIELD;
    const end = start + buf.readUInt32BE(at + 1);
    if (end > headerEnd) throw malformed(`field ${tag} runs past the header`);
    at = end;
    if (tag === Tag.CreatedAt) {
      if (end - start !== 8) throw malformed('createdAt is not 8 bytes');
      createdAt = buf.readDoubleBE(start);
      continue;
    }
    if (tag > Tag.DeadLetter) continue; // a field of a later version: skip it
    switch (tag) {
      case Tag.MessageId:
        messageId = text(buf, start, end);
        break;
      case Tag.CorrelationId:
        correlationId = text(buf, start, end);
        break;
      case Tag.ContentType:
        contentType = text(buf, start, end);
        break;
      case Tag.ContentEncoding:
        contentEncoding = text(buf, start, end);
        break;
      case Tag.SourceDeviceId:
        sourceDeviceId = text(buf, start, end);
        break;
      case Tag.SourceModuleId:
        sourceModuleId = text(buf, start, end);
        break;
      case Tag.SourceOutput:
        sourceOutput = text(buf, start, end);
        break;
      case Tag.Property: {
        if (end - start < 2) throw malformed('property field too short');
        const nameEnd = start + 2 + buf.readUInt16BE(start);
        if (nameEnd > end) throw malformed('property name runs past its field');
        properties ??= {};
        const name = text(buf, start + 2, nameEnd);
        const value = text(buf, nameEnd, end);
        // A property named __proto__ must stay an ordinary property.
        if (name === '__proto__')
          Object.defineProperty(properties, name, { value, enumerable: true, writable: true, configurable: true });
        else properties[name] = value;
        break;
      }
      case Tag.DeadLetter: {
        let parsed: unknown;
        try {
          parsed = JSON.parse(text(buf, start, end));
        } catch (error) {
          throw malformed('dead-letter field is not JSON', error);
        }
        deadLetter = checkDeadLetter(parsed);
        break;
      }
      default:
        throw malformed(`unknown field tag ${tag}`);
    }
  }
  if (!messageId) throw malformed('messageId missing');
  if (createdAt === undefined || !Number.isFinite(createdAt)) throw malformed('createdAt missing');
  if (sourceDeviceId === undefined || sourceModuleId === undefined) throw malformed('source missing');
  const header: EnvelopeHeader = {
    messageId,
    correlationId,
    contentType,
    contentEncoding,
    createdAt,
    sourceDeviceId,
    sourceModuleId,
    sourceOutput,
    properties: properties ?? EMPTY,
    deadLetter,
  };
  return { header, body: buf.subarray(headerEnd) };
}
