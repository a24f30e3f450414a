/**
 * Module contracts: the typed description of a module's inputs, outputs, twin documents and direct methods, from
 * which every handler and call is typed. A contract is plain data and can be shared between the module and its
 * callers (a method invoker imports the target's contract).
 */
import { bytes, type Codec, isCodec } from '../codecs/codec.js';
import { isSchema, type Schema, typed } from '../codecs/schema.js';
import { checkName } from '../names.js';

/** A direct method's request and response schemas. */
export interface MethodDefinition<Req, Res> {
  readonly request: Schema<Req>;
  readonly response: Schema<Res>;
}

/**
 * Declares a direct method. Pass Standard Schemas to validate both payloads, or `typed<T>()` to only type them.
 *
 * @example
 * ```ts
 * methods: { reset: method(typed<{ hard?: boolean }>(), typed<{ ok: boolean }>()) }
 * ```
 */
export function method<Req = unknown, Res = unknown>(
  request: Schema<Req> = typed<Req>(),
  response: Schema<Res> = typed<Res>(),
): MethodDefinition<Req, Res> {
  if (!isSchema(request)) throw new TypeError('method(request, response): request must be a Standard Schema');
  if (!isSchema(response)) throw new TypeError('method(request, response): response must be a Standard Schema');
  return { request, response };
}

/** What {@link defineModule} accepts. Every part is optional. */
export interface ModuleDefinition {
  readonly inputs?: Readonly<Record<string, Codec<unknown>>>;
  readonly outputs?: Readonly<Record<string, Codec<unknown>>>;
  /** Schema of the desired properties document (validated on every change). */
  readonly desired?: Schema<object>;
  /** Schema of the reported properties document (types `report`; validated before sending). */
  readonly reported?: Schema<object>;
  readonly methods?: Readonly<Record<string, MethodDefinition<unknown, unknown>>>;
}

/** A validated module contract; pass it to `connect`. */
export interface ModuleContract<D extends ModuleDefinition = ModuleDefinition> {
  readonly definition: D;
  /** True for {@link untypedModule}: any input/output/method name, bodies as bytes. */
  readonly open: boolean;
  /** @internal */
  codecOf(kind: 'input' | 'output', name: string): Codec<unknown> | undefined;
  /** @internal */
  methodOf(name: string): MethodDefinition<unknown, unknown> | undefined;
}

type Strings<T> = Extract<keyof T, string>;
type Empty = Record<never, never>;

/** Names of the contract's inputs. */
export type InputName<C extends ModuleContract> = C['open'] extends true ? string : Strings<DefOf<C>['inputs']>;
/** Names of the contract's outputs. */
export type OutputName<C extends ModuleContract> = C['open'] extends true ? string : Strings<DefOf<C>['outputs']>;
/** Names of the contract's methods. */
export type MethodName<C extends ModuleContract> = C['open'] extends true ? string : Strings<DefOf<C>['methods']>;

type DefOf<C extends ModuleContract> = C extends ModuleContract<infer D> ? D : never;
type CodecValue<X> = X extends Codec<infer T> ? T : never;

/** Body type of input `K`. */
export type InputBody<C extends ModuleContract, K extends string> = C['open'] extends true
  ? Uint8Array
  : CodecValue<NonNullable<DefOf<C>['inputs']>[K & keyof NonNullable<DefOf<C>['inputs']>]>;
/** Body type of output `K`. */
export type OutputBody<C extends ModuleContract, K extends string> = C['open'] extends true
  ? Uint8Array
  : CodecValue<NonNullable<DefOf<C>['outputs']>[K & keyof NonNullable<DefOf<C>['outputs']>]>;
/** The desired properties document. */
export type DesiredOf<C extends ModuleContract> =
  DefOf<C>['desired'] extends Schema<infer T> ? T : Record<string, unknown>;
/** The reported properties document. */
export type ReportedOf<C extends ModuleContract> =
  DefOf<C>['reported'] extends Schema<infer T> ? T : Record<string, unknown>;
type MethodDef<C extends ModuleContract, K extends string> = NonNullable<DefOf<C>['methods']>[K &
  keyof NonNullable<DefOf<C>['methods']>];
/** Request payload of method `K`. */
export type MethodRequest<C extends ModuleContract, K extends string> = C['open'] extends true
  ? unknown
  : MethodDef<C, K> extends MethodDefinition<infer Req, unknown>
    ? Req
    : never;
/** Response payload of method `K`. */
export type MethodResponse<C extends ModuleContract, K extends string> = C['open'] extends true
  ? unknown
  : MethodDef<C, K> extends MethodDefinition<unknown, infer Res>
    ? Res
    : never;

function checkCodecs(kind: 'input' | 'output', map: unknown): void {
  if (map === undefined) return;
  if (typeof map !== 'object' || map === null) throw new TypeError(`defineModule: ${kind}s must be an object`);
  for (const [name, codec] of Object.entries(map)) {
    checkName(kind, name);
    if (!isCodec(codec)) {
      throw new TypeError(`defineModule: ${kind} "${name}" must be a codec such as json(), bytes() or protobuf(type)`);
    }
  }
}

/**
 * Declares a module's contract. Every name, body, document and payload of the module is typed from it, and checked at
 * run time: names when defined, incoming data against its schemas.
 *
 * @example
 * ```ts
 * const Filter = defineModule({
 *   inputs: { telemetry: json<Telemetry>() },
 *   outputs: { alerts: json<Alert>() },
 *   desired: typed<{ TemperatureThreshold: number }>(),
 *   methods: { reset: method(typed<{}>(), typed<{ ok: boolean }>()) },
 * });
 * ```
 */
export function defineModule<const D extends ModuleDefinition = Empty>(
  definition: D = {} as D,
): ModuleContract<D> & { readonly open: false } {
  if (typeof definition !== 'object' || definition === null) throw new TypeError('defineModule: expected an object');
  checkCodecs('input', definition.inputs);
  checkCodecs('output', definition.outputs);
  for (const key of ['desired', 'reported'] as const) {
    const schema = definition[key];
    if (schema !== undefined && !isSchema(schema))
      throw new TypeError(`defineModule: ${key} must be a Standard Schema`);
  }
  if (definition.methods !== undefined) {
    for (const [name, def] of Object.entries(definition.methods)) {
      checkName('method', name);
      if (!def || !isSchema(def.request) || !isSchema(def.response)) {
        throw new TypeError(`defineModule: method "${name}" must be declared with method(request, response)`);
      }
    }
  }
  const inputs = new Map(Object.entries(definition.inputs ?? {}));
  const outputs = new Map(Object.entries(definition.outputs ?? {}));
  const methods = new Map(Object.entries(definition.methods ?? {}));
  return Object.freeze({
    definition,
    open: false as const,
    codecOf: (kind: 'input' | 'output', name: string) => (kind === 'input' ? inputs : outputs).get(name),
    methodOf: (name: string) => methods.get(name),
  });
}

const anyBytes = bytes();
const anyMethod = method<unknown, unknown>();

/** The untyped contract: any input, output and method name; bodies are `Uint8Array`, payloads `unknown`. */
export type UntypedModule = ModuleContract<ModuleDefinition> & { readonly open: true };

/**
 * A contract for modules that pass data through without a schema: any input/output/method name (still validated),
 * bodies as `Uint8Array` (content type kept as sent), method payloads as `unknown`.
 */
export const untypedModule: UntypedModule = Object.freeze({
  definition: {},
  open: true as const,
  codecOf: () => anyBytes,
  methodOf: () => anyMethod,
});
