/**
 * What routing reads from a message: property lookup with the engine's case-insensitive names, and the JSON body,
 * decoded and parsed at most once per message however many routes query it.
 */
import { foldCase } from './text.js';

/** Property maps as routing reads them; names are matched case-insensitively. */
export type PropertyMap = Readonly<Record<string, string | null | undefined>>;

/**
 * The view of a message routing needs. Property maps: names are looked up case-insensitively, as the engine does;
 * a `null` value is a property that is present without a value. Routing caches per message object (the parsed body,
 * a case-folded property index), so treat a message as immutable once it has been routed.
 */
export interface RoutingMessage {
  /** Where the message comes from, e.g. `/messages/modules/sensor/outputs/temperature`; `/messages` for devices. */
  readonly source: string;
  /** Application properties (strings). */
  readonly properties: PropertyMap;
  /**
   * System properties: `messageId`, `correlationId`, `contentType`, `contentEncoding`, `connectionDeviceId`,
   * `connectionModuleId`, `outputName`, `creationTime`, …
   */
  readonly systemProperties: PropertyMap;
  readonly body: Uint8Array;
}

const foldedIndexes = new WeakMap<object, Map<string, string | null>>();

function foldedIndex(map: PropertyMap): Map<string, string | null> {
  let index = foldedIndexes.get(map);
  if (index === undefined) {
    index = new Map();
    for (const key of Object.keys(map)) {
      const value = map[key];
      if (typeof value !== 'string' && value !== null) continue;
      const folded = foldCase(key);
      if (!index.has(folded)) index.set(folded, value);
    }
    foldedIndexes.set(map, index);
  }
  return index;
}

/**
 * The value of property `name` in `map`: a string, `null` (present without a value) or `undefined` (absent).
 * `folded` is `foldCase(name)`, computed once by the caller. An exact-case match is found without allocating.
 */
export function getProperty(map: PropertyMap | undefined, name: string, folded: string): string | null | undefined {
  if (typeof map !== 'object' || map === null) return undefined;
  const value = map[name];
  if (typeof value === 'string') return value;
  if (value === null && Object.hasOwn(map, name)) return null;
  return foldedIndex(map).get(folded);
}

/** Marker of a body that is not a JSON object routing can query. */
export const NOT_JSON: unique symbol = Symbol('not json');

const parsedBodies = new WeakMap<object, object | typeof NOT_JSON>();
const utf8 = new TextDecoder('utf-8', { ignoreBOM: true });
const utf16 = new TextDecoder('utf-16le', { ignoreBOM: true });

function decodeUtf32(bytes: Uint8Array): string {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let out = '';
  const whole = bytes.byteLength - (bytes.byteLength % 4);
  for (let i = 0; i < whole; i += 4) {
    const cp = view.getUint32(i, true);
    out += cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff) ? '\ufffd' : String.fromCodePoint(cp);
  }
  if (whole < bytes.byteLength) out += '\ufffd';
  return out;
}

const CONTENT_TYPE = foldCase('contentType');
const CONTENT_ENCODING = foldCase('contentEncoding');

function parseBody(message: RoutingMessage): object | typeof NOT_JSON {
  const contentType = getProperty(message.systemProperties, 'contentType', CONTENT_TYPE);
  if (typeof contentType !== 'string' || foldCase(contentType) !== 'APPLICATION/JSON') return NOT_JSON;
  const encoding = getProperty(message.systemProperties, 'contentEncoding', CONTENT_ENCODING);
  const body = message.body;
  if (typeof encoding !== 'string' || !(body instanceof Uint8Array)) return NOT_JSON;
  let text: string;
  switch (foldCase(encoding)) {
    case 'UTF-8':
      text = utf8.decode(body);
      break;
    case 'UTF-16':
      text = utf16.decode(body);
      break;
    case 'UTF-32':
      text = decodeUtf32(body);
      break;
    default:
      return NOT_JSON;
  }
  try {
    const root: unknown = JSON.parse(text);
    return typeof root === 'object' && root !== null && !Array.isArray(root) ? root : NOT_JSON;
  } catch {
    return NOT_JSON;
  }
}

/**
 * The message body as a parsed JSON object, or {@link NOT_JSON} when it is not one: the system properties must say
 * `contentType` `application/json` and `contentEncoding` `utf-8`, `utf-16` or `utf-32` (any case; UTF-16/32 are
 * little-endian), and the text must be a JSON object. Parsed once per message object.
 */
export function parsedBody(message: RoutingMessage): object | typeof NOT_JSON {
  if (typeof message !== 'object' || message === null) return NOT_JSON;
  let root = parsedBodies.get(message);
  if (root === undefined) {
    root = parseBody(message);
    parsedBodies.set(message, root);
  }
  return root;
}
