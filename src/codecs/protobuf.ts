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
  /** How `decode` turns a message into a plain object (protobufjs `toObject` options). Default: longs and enums as strings, defaults filled. */
  readonly conversion?: IConversionOptions;
}

const defaultConversion: IConversionOptions = { longs: String, enums: String, defaults: true };

/**
 * A codec for one protobufjs message type. `T` is the plain-object shape of the message (protobufjs `toObject`).
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
  const conversion = options.conversion ?? defaultConversion;
  return {
    contentType: 'application/x-protobuf',
    encode(value) {
      const problem = type.verify(value as Record<string, unknown>);
      // decode() gives 64-bit integers as strings and enums as names (the default conversion); accept those back,
      // but nothing else that protobufjs would silently coerce.
      if (problem && !/integer\|Long expected|enum value expected/.test(problem)) {
        throw new EdgeKitError('encode-failed', `body does not fit ${type.fullName}: ${problem}`);
      }
      const message = type.fromObject(value as Record<string, unknown>);
      const converted = problem ? type.verify(message) : null;
      if (converted) throw new EdgeKitError('encode-failed', `body does not fit ${type.fullName}: ${converted}`);
      return type.encode(message).finish();
    },
    decode(bytes) {
      try {
        return type.toObject(type.decode(bytes), conversion) as T;
      } catch (error) {
        throw new EdgeKitError('decode-failed', `body is not a valid ${type.fullName}: ${messageOf(error)}`, {
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
