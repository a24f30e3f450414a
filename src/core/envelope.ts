/**
 * The message envelope: the exact bytes every transport carries for a message, so modules on different transports
 * interoperate through a broker that speaks both protocols. Specified in docs/protocol.md.
 *
 *   offset 0  2 bytes  magic 0xEE 0x4B
 *   offset 2  1 byte   version (1)
 *   offset 3  1 byte   flags (0; reserved)
 *   offset 4  4 bytes  header length H, unsigned big-endian
 *   offset 8  H bytes  header: UTF-8 JSON object (see EnvelopeHeader)
 *   offset 8+H         body bytes, as encoded by the message's codec
 */
import { EdgeKitError, messageOf } from '../errors.js';

export const ENVELOPE_VERSION = 1;
const MAGIC0 = 0xee;
const MAGIC1 = 0x4b;
const PREFIX = 8;

/** Largest encoded message (envelope included), as IoT Hub / edgeHub: 256 KiB. */
export const MAX_MESSAGE_BYTES = 256 * 1024;

/** Why a message went to the dead-letter queue. */
export interface DeadLetterInfo {
  /** `handler-failed`, `decode-failed` or `validation-failed`. */
  readonly reason: 'handler-failed' | 'decode-failed' | 'validation-failed';
  readonly error: string;
  readonly input: string;
  readonly attempts: number;
  /** Epoch milliseconds. */
  readonly at: number;
}

/** The envelope header as it travels (JSON member names are the wire names). */
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

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

/** Encodes header + body. */
export function encodeEnvelope(header: EnvelopeHeader, body: Uint8Array): Uint8Array {
  const head = encoder.encode(JSON.stringify(header));
  const out = new Uint8Array(PREFIX + head.length + body.length);
  out[0] = MAGIC0;
  out[1] = MAGIC1;
  out[2] = ENVELOPE_VERSION;
  out[3] = 0;
  const h = head.length;
  out[4] = h >>> 24;
  out[5] = (h >>> 16) & 0xff;
  out[6] = (h >>> 8) & 0xff;
  out[7] = h & 0xff;
  out.set(head, PREFIX);
  out.set(body, PREFIX + h);
  return out;
}

function malformed(why: string, cause?: unknown): EdgeKitError {
  return new EdgeKitError('decode-failed', `malformed envelope: ${why}`, cause === undefined ? {} : { cause });
}

const optionalString = (v: unknown) => v === undefined || typeof v === 'string';

/** Decodes and strictly checks an envelope; throws `EdgeKitError('decode-failed')` on anything malformed. */
export function decodeEnvelope(bytes: Uint8Array): Envelope {
  if (!(bytes instanceof Uint8Array)) throw malformed('not a byte array');
  if (bytes.length < PREFIX) throw malformed(`${bytes.length} bytes is shorter than the 8-byte prefix`);
  if (bytes[0] !== MAGIC0 || bytes[1] !== MAGIC1) throw malformed('bad magic (not an edgekit message)');
  if (bytes[2] !== ENVELOPE_VERSION) throw malformed(`unsupported version ${bytes[2]}`);
  if (bytes[3] !== 0) throw malformed(`unknown flags ${bytes[3]}`);
  const h = ((bytes[4]! << 24) | (bytes[5]! << 16) | (bytes[6]! << 8) | bytes[7]!) >>> 0;
  if (PREFIX + h > bytes.length) throw malformed(`header length ${h} runs past the end (${bytes.length} bytes)`);
  let header: unknown;
  try {
    header = JSON.parse(decoder.decode(bytes.subarray(PREFIX, PREFIX + h)));
  } catch (error) {
    throw malformed(`header is not UTF-8 JSON (${messageOf(error)})`, error);
  }
  checkHeader(header);
  return { header, body: bytes.subarray(PREFIX + h) };
}

function checkHeader(value: unknown): asserts value is EnvelopeHeader {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw malformed('header is not an object');
  const h = value as Record<string, unknown>;
  if (typeof h.messageId !== 'string' || h.messageId.length === 0) throw malformed('messageId missing');
  if (typeof h.createdAt !== 'number' || !Number.isFinite(h.createdAt)) throw malformed('createdAt missing');
  if (typeof h.sourceDeviceId !== 'string' || typeof h.sourceModuleId !== 'string') throw malformed('source missing');
  for (const key of ['correlationId', 'contentType', 'contentEncoding', 'sourceOutput'] as const) {
    if (!optionalString(h[key])) throw malformed(`${key} is not a string`);
  }
  const props = h.properties;
  if (typeof props !== 'object' || props === null || Array.isArray(props)) throw malformed('properties missing');
  for (const key in props) {
    if (typeof (props as Record<string, unknown>)[key] !== 'string') {
      throw malformed(`property ${JSON.stringify(key)} is not a string`);
    }
  }
  if (h.deadLetter !== undefined && (typeof h.deadLetter !== 'object' || h.deadLetter === null)) {
    throw malformed('deadLetter is not an object');
  }
}
