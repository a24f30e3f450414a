/**
 * Twin documents: JSON merge patches (RFC 7396: `null` deletes), the patch between two versions (for catch-up
 * after a reconnect), IoT Hub's limits, and the retained wire form `{ "version": n, "properties": {…} }`.
 */
import { EdgeKitError, messageOf } from '../errors.js';

export type JsonObject = { [key: string]: unknown };

/** A twin document with its monotonic version (0 = never written). */
export interface TwinDocument<T = JsonObject> {
  readonly version: number;
  readonly properties: T;
}

/** IoT Hub's limits for one twin section. */
export const TWIN_LIMITS = { maxBytes: 32 * 1024, maxDepth: 10, maxNameBytes: 1024 } as const;

/**
 * The largest version a twin document may have: `Number.MAX_SAFE_INTEGER - 1`, so that `version + 1` is always an
 * exact integer larger than `version`. A reader rejects a document above it (it could never be followed by a larger
 * version, and a module that took it would ignore every later update); a writer never goes above it.
 */
export const MAX_TWIN_VERSION = Number.MAX_SAFE_INTEGER - 1;

/** Whether `value` is a version a twin document may have: an integer from 0 to {@link MAX_TWIN_VERSION}. */
export const isTwinVersion = (value: unknown): value is number =>
  typeof value === 'number' && Number.isInteger(value) && value >= 0 && value <= MAX_TWIN_VERSION;

const isObject = (v: unknown): v is JsonObject => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Applies a JSON merge patch to `target`, returning a new object; `target` is not changed. */
export function mergePatch(target: JsonObject, patch: JsonObject): JsonObject {
  const out: JsonObject = { ...target };
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete out[key];
    else if (isObject(value))
      set(out, key, mergePatch(Object.hasOwn(out, key) && isObject(out[key]) ? (out[key] as JsonObject) : {}, value));
    else set(out, key, value);
  }
  return out;
}

/** Assigns an own property, also for names like `__proto__` that plain assignment would not create. */
function set(target: JsonObject, key: string, value: unknown): void {
  Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
}

/** The merge patch that turns `from` into `to` (deleted members become `null`). */
export function diffPatch(from: JsonObject, to: JsonObject): JsonObject {
  const patch: JsonObject = {};
  for (const key of Object.keys(from)) if (!Object.hasOwn(to, key)) set(patch, key, null);
  for (const [key, value] of Object.entries(to)) {
    const before = Object.hasOwn(from, key) ? from[key] : undefined;
    if (isObject(value) && isObject(before)) {
      const inner = diffPatch(before, value);
      if (Object.keys(inner).length > 0) set(patch, key, inner);
    } else if (!jsonEqual(before, value)) {
      set(patch, key, value);
    }
  }
  return patch;
}

function jsonEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  return JSON.stringify(a) === JSON.stringify(b);
}

/** Twin property names may not contain `.`, `$`, spaces or control characters. */
function badName(name: string): boolean {
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    if (c < 0x20 || c === 0x2e || c === 0x24 || c === 0x20 || c === 0x7f) return true;
  }
  return false;
}

/**
 * Checks a patch or document against IoT Hub's twin rules before it is sent: a JSON object, property names without
 * `.`, `$`, spaces or control characters, nesting depth ≤ 10, and (for `document`) encoded size ≤ 32 KB.
 * Throws `EdgeKitError('twin-limit')` naming the offending path.
 */
export function checkTwin(value: unknown, what: string, options: { allowNull: boolean }): asserts value is JsonObject {
  if (!isObject(value)) throw new TypeError(`${what} must be a plain JSON object`);
  walk(value, what, 1, options.allowNull);
}

function walk(obj: JsonObject, path: string, depth: number, allowNull: boolean): void {
  if (depth > TWIN_LIMITS.maxDepth) {
    throw new EdgeKitError('twin-limit', `${path} is nested deeper than ${TWIN_LIMITS.maxDepth} levels`);
  }
  for (const [key, value] of Object.entries(obj)) {
    const at = `${path}.${key}`;
    if (key.length === 0 || badName(key) || Buffer.byteLength(key) > TWIN_LIMITS.maxNameBytes) {
      throw new EdgeKitError(
        'twin-limit',
        `property name ${JSON.stringify(key)} at ${path} is not allowed (no . $ space or control characters, at most 1 KB)`,
      );
    }
    if (value === null) {
      if (!allowNull) throw new EdgeKitError('twin-limit', `${at} is null; null only deletes, in a patch`);
    } else checkValue(value, at, depth, allowNull);
  }
}

function checkValue(value: unknown, at: string, depth: number, allowNull: boolean): void {
  if (isObject(value)) walk(value, at, depth + 1, allowNull);
  else if (Array.isArray(value)) {
    if (depth + 1 > TWIN_LIMITS.maxDepth) {
      throw new EdgeKitError('twin-limit', `${at} is nested deeper than ${TWIN_LIMITS.maxDepth} levels`);
    }
    // Inside arrays null is a value, not a deletion.
    value.forEach((item, i) => {
      if (item !== null) checkValue(item, `${at}[${i}]`, depth + 1, allowNull);
    });
  } else if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new EdgeKitError('twin-limit', `${at} is not a finite number`);
  } else if (typeof value !== 'string' && typeof value !== 'boolean') {
    throw new EdgeKitError('twin-limit', `${at} has type ${typeof value}; twins hold JSON values only`);
  }
}

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

/** Encodes a twin document for its retained key; throws `twin-limit` over 32 KB or above {@link MAX_TWIN_VERSION}. */
export function encodeTwin(doc: TwinDocument<JsonObject>, what: string): Uint8Array {
  if (!isTwinVersion(doc.version)) {
    // Written, it would be a document every reader rejects: refuse here, where the writer can still be told.
    throw new EdgeKitError(
      'twin-limit',
      `${what} would get version ${doc.version}; versions are integers from 0 to ${MAX_TWIN_VERSION}`,
      { details: { version: doc.version, limit: MAX_TWIN_VERSION } },
    );
  }
  const bytes = encoder.encode(JSON.stringify({ version: doc.version, properties: doc.properties }));
  if (bytes.length > TWIN_LIMITS.maxBytes + 64) {
    throw new EdgeKitError(
      'twin-limit',
      `${what} would be ${bytes.length} bytes; the limit is ${TWIN_LIMITS.maxBytes}`,
      {
        details: { size: bytes.length, limit: TWIN_LIMITS.maxBytes },
      },
    );
  }
  return bytes;
}

/**
 * Decodes a retained twin document as strictly as a writer's input is checked: valid UTF-8 JSON
 * `{ version, properties }` of at most 32 KB, `version` an integer from 0 to {@link MAX_TWIN_VERSION}, `properties`
 * within IoT Hub's twin rules (names, depth, no `null`). Absent → version 0, empty. Anything else → `decode-failed`,
 * so a module ignores the document through its error path instead of adopting an absurd version.
 */
export function decodeTwin(bytes: Uint8Array | undefined, what: string): TwinDocument<JsonObject> {
  if (bytes === undefined || bytes.length === 0) return { version: 0, properties: {} };
  if (bytes.length > TWIN_LIMITS.maxBytes + 64) {
    throw new EdgeKitError(
      'decode-failed',
      `${what}: ${bytes.length} bytes; a twin document is at most ${TWIN_LIMITS.maxBytes}`,
    );
  }
  let value: unknown;
  try {
    value = JSON.parse(decoder.decode(bytes));
  } catch (error) {
    throw new EdgeKitError('decode-failed', `${what}: not valid JSON`, { cause: error });
  }
  const v = value as { version?: unknown; properties?: unknown };
  if (!isObject(value) || !isObject(v.properties) || typeof v.version !== 'number') {
    throw new EdgeKitError('decode-failed', `${what}: not a twin document { version, properties }`);
  }
  if (!isTwinVersion(v.version)) {
    throw new EdgeKitError(
      'decode-failed',
      `${what}: version ${v.version} is out of range (an integer from 0 to ${MAX_TWIN_VERSION})`,
      { details: { version: v.version, limit: MAX_TWIN_VERSION } },
    );
  }
  const properties = v.properties;
  try {
    checkTwin(properties, what, { allowNull: false });
  } catch (error) {
    throw new EdgeKitError('decode-failed', `${what}: the twin rules are broken: ${messageOf(error)}`, {
      cause: error,
    });
  }
  return { version: v.version, properties };
}
