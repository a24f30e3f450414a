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

/** Why a message went to the dead-letter queue. */
/**
 * Why a message was dead-lettered: its handler kept failing, its bytes or body could not be decoded, its body failed
 * the schema, it arrived over the {@link MAX_MESSAGE_BYTES} limit (sent by something other than edgekit; its body is
 * not kept), or its `source` named another module than the identity it was published under.
 */
export type DeadLetterReason = 'handler-failed' | 'decode-failed' | 'validation-failed' | 'too-large' | 'forged-source';

export interface DeadLetterInfo {
  readonly reason: DeadLetterReason;
  readonly error: string;
  readonly input: string;
  readonly attempts: number;
  /** Epoch milliseconds. */
  readonly at: number;
}

/** The envelope header. */
export interface EnvelopeHeader {
  readonly messageId: string;
  readonly correlationId?: string;
  readonly contentType?: string;
  readonly contentEncoding?: string;
  /** Epoch milliseconds. */
  readonly createdAt: number;
  readonly sourceDeviceId: string;
  readonly sourceModuleId: string;
  readonly sourceOutput?: string;
  readonly properties: Readonly<Record<string, string>>;
  /** Present only on dead letters. */
  readonly deadLetter?: DeadLetterInfo;
}

export interface Envelope {
  readonly header: EnvelopeHeader;
  readonly body: Uint8Array;
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

/** Decodes and strictly checks an envelope; throws `EdgeKitError('decode-failed')` on anything malformed. */
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
      case Tag.DeadLetter:
        try {
          deadLetter = JSON.parse(text(buf, start, end)) as DeadLetterInfo;
        } catch (error) {
          throw malformed('dead-letter field is not JSON', error);
        }
        if (typeof deadLetter !== 'object' || deadLetter === null)
          throw malformed('dead-letter field is not an object');
        break;
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
