/**
 * Protocol Buffers bodies through protobufjs, as the `edgekit/protobuf` entry point. protobufjs is an optional peer
 * dependency: only modules that import this entry point need it installed.
 */
import type { IConversionOptions, Type } from 'protobufjs';
import { EdgeKitError, messageOf } from '../errors.js';
import { importPeer, withFunction } from '../peer.js';
import type { Codec } from './codec.js';

/** Options for {@link protobuf}. */
export interface ProtobufCodecOptions {
  /**
   * How `decode` turns a message into a plain object (protobufjs `toObject` options), merged over the defaults:
   * `{ longs: String, enums: String, defaults: true }` — 64-bit integers as decimal strings (a `number` cannot hold
   * them exactly), enums by name, and every field present (proto3 does not send default values). So
   * `{ longs: Number }` changes only how 64-bit integers come out.
   */
  readonly conversion?: IConversionOptions;
}

const defaultConversion: IConversionOptions = { longs: String, enums: String, defaults: true };

/** A reflection object's full name as the .proto writes it (protobufjs prefixes a dot). */
const nameOf = (object: { fullName: string }) => object.fullName.replace(/^\./, '');

/**
 * What in `value` (at any depth) protobufjs would drop or change without a word, as a sentence, or `undefined`:
 * a member the type has no field for (`verify` and `fromObject` ignore it, so a misspelt field vanishes) and an enum
 * name the enum does not have (`fromObject` turns it into the default). Numbers are left to `verify`: proto3 enums are
 * open, and a decoded message keeps the numbers it did not know.
 */
function mismatch(type: Type, value: unknown, path: string): string | undefined {
  if (typeof value !== 'object' || value === null || ArrayBuffer.isView(value)) return undefined;
  for (const [key, member] of Object.entries(value)) {
    const at = path === '' ? key : `${path}.${key}`;
    const field = type.fields[key];
    if (field === undefined) {
      // `toObject` with `oneofs: true` names the set member of a oneof under the oneof's name.
      if (type.oneofs?.[key] !== undefined) continue;
      return `it has no field ${at} (fields: ${Object.keys(type.fields).join(', ')})`;
    }
    const nested = field.resolve().resolvedType;
    if (member === null || member === undefined || nested === null) continue;
    const items: [string, unknown][] = field.map
      ? Object.entries(member as object).map(([k, v]) => [`${at}[${JSON.stringify(k)}]`, v])
      : field.repeated && Array.isArray(member)
        ? member.map((v, i) => [`${at}[${i}]`, v])
        : [[at, member]];
    for (const [where, item] of items) {
      if (!('fields' in nested)) {
        if (typeof item === 'string' && !Object.hasOwn(nested.values, item)) {
          return `${where}: ${JSON.stringify(item)} is not a value of ${nameOf(nested)} (${Object.keys(nested.values).join(', ')})`;
        }
        continue;
      }
      const found = mismatch(nested as Type, item, where);
      if (found !== undefined) return found;
    }
  }
  return undefined;
}

/**
 * A codec for one protobufjs message type. `T` is the plain-object shape of the message (protobufjs `toObject`),
 * with the field names protobufjs gives them (camelCase unless the .proto was loaded with `keepCase`). TypeScript
 * cannot read the .proto, so `T` is checked against it at run time: `encode` refuses a member the type has no field
 * for, at any depth, and an enum name the enum does not have (protobufjs alone would drop the one and turn the other
 * into the enum's default without a word), and a value that does not fit a field's type — all
 * `encode-failed`, so a `send` rejects at once. `decode` gives 64-bit integers as strings by default (see
 * {@link ProtobufCodecOptions.conversion}); bytes that are no such message are `decode-failed` and dead-lettered.
 * docs/protobuf.md has a worked example.
 *
 * @example
 * ```ts
 * import protobufjs from 'protobufjs';
 * import { protobuf } from 'edgekit/protobuf';
 * const root = protobufjs.parse(`syntax = "proto3"; message Raw { double value = 1; string unit = 2; }`).root;
 * const Sensor = defineModule({ outputs: { raw: protobuf<{ value: number; unit: string }>(root.lookupType('Raw')) } });
 * ```
 */
export function protobuf<T extends object>(type: Type, options: ProtobufCodecOptions = {}): Codec<T> {
  if (typeof type !== 'object' || type === null || typeof (type as Partial<Type>).encode !== 'function') {
    throw new TypeError('protobuf(type): expected a protobufjs Type (e.g. root.lookupType("pkg.Message"))');
  }
  if (typeof options !== 'object' || options === null)
    throw new TypeError('protobuf(type, options): options must be an object');
  if (options.conversion !== undefined && (typeof options.conversion !== 'object' || options.conversion === null)) {
    throw new TypeError('protobuf(type, options): conversion must be an object of protobufjs toObject options');
  }
  const conversion: IConversionOptions = { ...defaultConversion, ...options.conversion };
  return {
    contentType: 'application/x-protobuf',
    encode(value) {
      const wrong = mismatch(type, value, '');
      if (wrong !== undefined) throw new EdgeKitError('encode-failed', `body does not fit ${nameOf(type)}: ${wrong}`);
      const problem = type.verify(value as Record<string, unknown>);
      // decode() gives 64-bit integers as strings and enums as names (the default conversion); accept those back,
      // but nothing else that protobufjs would silently coerce.
      if (problem && !/integer\|Long expected|enum value expected/.test(problem)) {
        throw new EdgeKitError('encode-failed', `body does not fit ${nameOf(type)}: ${problem}`);
      }
      const message = type.fromObject(value as Record<string, unknown>);
      const converted = problem ? type.verify(message) : null;
      if (converted) throw new EdgeKitError('encode-failed', `body does not fit ${nameOf(type)}: ${converted}`);
      return type.encode(message).finish();
    },
    decode(bytes) {
      try {
        return type.toObject(type.decode(bytes), conversion) as T;
      } catch (error) {
        throw new EdgeKitError('decode-failed', `body is not a valid ${nameOf(type)}: ${messageOf(error)}`, {
          cause: error,
        });
      }
    },
  };
}

/**
 * Loads a `.proto` file and returns the codec for `typeName` in it.
 *
 * @example
 * ```ts
 * const raw = await protobufFromFile<RawReading>('./schema/raw.proto', 'edge.RawReading');
 * ```
 */
export async function protobufFromFile<T extends object>(
  path: string,
  typeName: string,
  options: ProtobufCodecOptions = {},
): Promise<Codec<T>> {
  if (typeof path !== 'string' || path.length === 0)
    throw new TypeError('protobufFromFile: path must be a non-empty string');
  if (typeof typeName !== 'string' || typeName.length === 0) {
    throw new TypeError('protobufFromFile: typeName must be a non-empty string');
  }
  const lib = await loadProtobufjs();
  let root: Awaited<ReturnType<typeof lib.load>>;
  try {
    root = await lib.load(path);
  } catch (error) {
    throw new EdgeKitError('invalid-configuration', `cannot load ${path}: ${messageOf(error)}`, { cause: error });
  }
  let type: Type;
  try {
    type = root.lookupType(typeName);
  } catch (error) {
    throw new EdgeKitError('invalid-configuration', `${path} has no message type ${typeName}`, { cause: error });
  }
  return protobuf<T>(type, options);
}

function loadProtobufjs(): Promise<typeof import('protobufjs')> {
  return importPeer(
    {
      entry: 'edgekit/protobuf',
      pkg: 'protobufjs',
      install: 'npm install protobufjs',
      pick: withFunction<typeof import('protobufjs')>('load'),
    },
    () => import('protobufjs'),
  );
}
