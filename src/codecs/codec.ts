/**
 * Codecs turn typed bodies into bytes and back. A module contract names one codec per input and output; the core
 * puts the codec's content type and encoding on every message it sends.
 */
import { isUtf8 } from 'node:buffer';
import { EdgeKitError, messageOf } from '../errors.js';
import { type InferSchema, isPassThrough, type Schema, typed, validate } from './schema.js';

/**
 * Encodes values of type `T` to bytes and decodes (and validates) bytes from the wire. `decode` may return a promise
 * when its schema validates asynchronously. Implement it to carry another format (CBOR, Avro…).
 */
export interface Codec<T> {
  /** `$contentType` of messages sent with this codec, e.g. `application/json`. */
  readonly contentType: string;
  /** `$contentEncoding`, e.g. `utf-8`; absent for binary formats. */
  readonly contentEncoding?: string;
  /** Turns a value into bytes; throws on a value the format cannot represent. */
  encode(value: T): Uint8Array;
  /** Turns bytes into a value; throws on malformed bytes or a value that fails the codec's schema. */
  decode(bytes: Uint8Array): T | Promise<T>;
}

/** The body type a codec carries. */
export type InferCodec<C> = C extends Codec<infer T> ? T : never;

const utf8Decoder = new TextDecoder('utf-8', { fatal: true });
const utf8Encoder = new TextEncoder();

/**
 * JSON bodies (`application/json`, `utf-8`), the default. Pass a Standard Schema to validate incoming bodies and
 * infer the type from it, or give the type only: `json<Telemetry>()`.
 *
 * @example
 * ```ts
 * const Telemetry = z.object({ temperature: z.number() });
 * const Filter = defineModule({ inputs: { telemetry: json(Telemetry) }, outputs: { alerts: json<Alert>() } });
 * ```
 */
export function json<T>(): Codec<T>;
export function json<S extends Schema<unknown>>(schema: S): Codec<InferSchema<S>>;
export function json(schema: Schema<unknown> = typed<unknown>()): Codec<unknown> {
  const check = isPassThrough(schema) ? undefined : schema;
  return {
    contentType: 'application/json',
    contentEncoding: 'utf-8',
    encode(value) {
      let text: string | undefined;
      try {
        text = JSON.stringify(value);
      } catch (error) {
        throw new EdgeKitError('encode-failed', `body cannot be encoded as JSON: ${messageOf(error)}`, {
          cause: error,
        });
      }
      if (text === undefined) throw new EdgeKitError('encode-failed', `body of type ${typeof value} has no JSON form`);
      return Buffer.from(text, 'utf8');
    },
    decode(bytes) {
      let value: unknown;
      try {
        const buf = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
        const text = buf.toString('utf8');
        // Decoding replaces invalid bytes with U+FFFD: only then is the strict check needed.
        if (text.includes('\uFFFD') && !isUtf8(buf)) throw new Error('invalid UTF-8');
        value = JSON.parse(text);
      } catch (error) {
        throw new EdgeKitError('decode-failed', `body is not valid UTF-8 JSON: ${messageOf(error)}`, { cause: error });
      }
      return check ? validate(check, value, 'body') : value;
    },
  };
}

/**
 * Raw bytes, passed through untouched (`application/octet-stream` unless you name another content type).
 *
 * @example
 * ```ts
 * const Relay = defineModule({ inputs: { in: bytes() }, outputs: { out: bytes('image/jpeg') } });
 * ```
 */
export function bytes(contentType = 'application/octet-stream'): Codec<Uint8Array> {
  if (typeof contentType !== 'string' || contentType.length === 0) {
    throw new TypeError('bytes(contentType): contentType must be a non-empty string');
  }
  return {
    contentType,
    encode(value) {
      if (!(value instanceof Uint8Array)) throw new EdgeKitError('encode-failed', 'bytes() body must be a Uint8Array');
      return value;
    },
    decode: (data) => data,
  };
}

/**
 * UTF-8 text bodies (`text/plain`).
 */
export function text(contentType = 'text/plain'): Codec<string> {
  return {
    contentType,
    contentEncoding: 'utf-8',
    encode(value) {
      if (typeof value !== 'string') throw new EdgeKitError('encode-failed', 'text() body must be a string');
      return utf8Encoder.encode(value);
    },
    decode(data) {
      try {
        return utf8Decoder.decode(data);
      } catch (error) {
        throw new EdgeKitError('decode-failed', 'body is not valid UTF-8', { cause: error });
      }
    },
  };
}

/** True if `value` implements {@link Codec}. */
export function isCodec(value: unknown): value is Codec<unknown> {
  if (typeof value !== 'object' || value === null) return false;
  const c = value as Partial<Codec<unknown>>;
  return typeof c.contentType === 'string' && typeof c.encode === 'function' && typeof c.decode === 'function';
}
