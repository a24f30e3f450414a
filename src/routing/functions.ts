/**
 * The built-in functions of conditions, with the engine's overloads. Each overload lists parameter types; overloads
 * marked `queryValues` also accept `$body` values for any parameter and then convert every argument to a query value,
 * so their run-time checks decide (a `$body` number passed to `lower` gives undefined). A call whose argument types
 * match no overload is a compile-time error.
 */
import { dotNetPow, foldCase, invariantLower, invariantUpper, parseDotNetNumber } from './text.js';
import { constantBool, type Eval, type StaticType, type Str, type Tri, type Typed, toQuery } from './typed.js';
import { MISSING, NULL_STRING, type QueryValue } from './values.js';

/** One overload of a built-in function. */
export interface Overload {
  /** Parameter types; `{ variadic, min }` repeats one type; `{ anyArity }` takes any types. */
  readonly params:
    | readonly StaticType[]
    | { readonly variadic: StaticType; readonly min: number }
    | { readonly anyArity: number };
  /** `$body` values are accepted for every parameter; all arguments are then passed as query values. */
  readonly queryValues: boolean;
  build(args: readonly Typed[]): Typed;
}

/** A built-in function: its overloads in the order the engine tries them, and signatures for messages. */
export interface Builtin {
  readonly name: string;
  readonly signatures: readonly string[];
  readonly overloads: readonly Overload[];
}

/** True when an argument list of these static types matches `overload`. */
export function matchesOverload(overload: Overload, types: readonly StaticType[]): boolean {
  const { params } = overload;
  const fits = (param: StaticType, given: StaticType) => given === param || (overload.queryValues && given === 'any');
  if ('anyArity' in params) return types.length === params.anyArity;
  if ('variadic' in params) return types.length >= params.min && types.every((t) => fits(params.variadic, t));
  return types.length === params.length && params.every((p, i) => fits(p, types[i] ?? 'undefined'));
}

const queries = (args: readonly Typed[]): Eval<QueryValue>[] => args.map(toQuery);

function numberOf(arg: Typed, fn: (x: number) => number): Typed {
  const q = toQuery(arg);
  return {
    type: 'number',
    fn: (m) => {
      const v = q(m);
      return typeof v === 'number' ? fn(v) : Number.NaN;
    },
  };
}

const math = (name: string, fn: (x: number) => number): Builtin => ({
  name,
  signatures: [`${name}(number)`],
  overloads: [{ params: ['number'], queryValues: true, build: ([a]) => numberOf(a as Typed, fn) }],
});

const isString = (v: QueryValue): v is string => typeof v === 'string';

const isNumber = (v: QueryValue): v is number => typeof v === 'number';

/**
 * A built-in of two arguments of one type: `op` runs when both values have that type at run time; otherwise the
 * result is `missing` (undefined, which for numbers is NaN).
 */
function binary<T extends QueryValue>(
  name: string,
  param: 'number' | 'string',
  is: (v: QueryValue) => v is T,
  result: (fn: (m: Parameters<Eval<QueryValue>>[0]) => unknown) => Typed,
  op: (a: T, b: T) => unknown,
  missing: unknown,
): Builtin {
  return {
    name,
    signatures: [`${name}(${param}, ${param})`],
    overloads: [
      {
        params: [param, param],
        queryValues: true,
        build(args) {
          const [a, b] = queries(args) as [Eval<QueryValue>, Eval<QueryValue>];
          return result((m) => {
            const x = a(m);
            const y = b(m);
            return is(x) && is(y) ? op(x, y) : missing;
          });
        },
      },
    ],
  };
}

const numberResult = (fn: (m: Parameters<Eval<QueryValue>>[0]) => unknown): Typed => ({
  type: 'number',
  fn: fn as Eval<number>,
});
const boolResult = (fn: (m: Parameters<Eval<QueryValue>>[0]) => unknown): Typed => ({
  type: 'bool',
  fn: fn as Eval<Tri>,
});

const stringPredicate = (name: string, test: (s: string, t: string) => boolean): Builtin =>
  binary(name, 'string', isString, boolResult, test, undefined);

function stringMap(name: string, fn: (s: string) => string): Builtin {
  return {
    name,
    signatures: [`${name}(string)`],
    overloads: [
      {
        params: ['string'],
        queryValues: true,
        build([arg]) {
          const q = toQuery(arg as Typed);
          return {
            type: 'string',
            fn: (m): Str => {
              const v = q(m);
              return isString(v) ? fn(v) : undefined;
            },
          };
        },
      },
    ],
  };
}

const alwaysFalse: Overload = { params: { anyArity: 1 }, queryValues: false, build: () => constantBool(false) };

function exact(type: StaticType, build: (arg: Typed) => Typed): Overload {
  return { params: [type], queryValues: false, build: ([arg]) => build(arg as Typed) };
}

const BUILTINS: readonly Builtin[] = [
  math('abs', Math.abs),
  math('exp', Math.exp),
  math('ceiling', Math.ceil),
  math('floor', Math.floor),
  math('sign', (x) => (x > 0 ? 1 : x < 0 ? -1 : x === 0 ? 0 : Number.NaN)),
  math('sqrt', Math.sqrt),
  math('square', (x) => x * x),
  binary('power', 'number', isNumber, numberResult, dotNetPow, Number.NaN),
  {
    name: 'as_number',
    signatures: ['as_number(string)', 'as_number(number)'],
    overloads: [
      {
        params: ['string'],
        queryValues: true,
        build([arg]) {
          const q = toQuery(arg as Typed);
          return {
            type: 'number',
            fn: (m) => {
              const v = q(m);
              return typeof v === 'string' ? parseDotNetNumber(v) : typeof v === 'number' ? v : Number.NaN;
            },
          };
        },
      },
      exact('number', (arg) => arg),
    ],
  },
  {
    name: 'is_bool',
    signatures: ['is_bool(any)'],
    overloads: [
      {
        params: ['bool'],
        queryValues: true,
        build([arg]) {
          const q = toQuery(arg as Typed);
          return {
            type: 'bool',
            fn: (m): Tri => {
              const v = q(m);
              return v === undefined ? undefined : typeof v === 'boolean';
            },
          };
        },
      },
      alwaysFalse,
    ],
  },
  {
    name: 'is_defined',
    signatures: ['is_defined(any)'],
    overloads: [
      exact('string', (arg) => {
        const fn = (arg as Extract<Typed, { type: 'string' }>).fn;
        return { type: 'bool', fn: (m) => fn(m) !== undefined };
      }),
      exact('number', (arg) => {
        const fn = (arg as Extract<Typed, { type: 'number' }>).fn;
        return {
          type: 'bool',
          fn: (m) => {
            const v = fn(m);
            return !Number.isNaN(v);
          },
        };
      }),
      exact('bool', (arg) => {
        const fn = (arg as Extract<Typed, { type: 'bool' }>).fn;
        return { type: 'bool', fn: (m) => fn(m) !== undefined };
      }),
      exact('undefined', () => constantBool(false)),
      exact('null', () => constantBool(true)),
      exact('any', (arg) => {
        const fn = (arg as Extract<Typed, { type: 'any' }>).fn;
        return { type: 'bool', fn: (m) => fn(m) !== undefined };
      }),
    ],
  },
  {
    name: 'is_null',
    signatures: ['is_null(any)'],
    overloads: [
      exact('string', (arg) => {
        const fn = (arg as Extract<Typed, { type: 'string' }>).fn;
        return { type: 'bool', fn: (m) => fn(m) === null };
      }),
      // The engine compares by reference with its shared null value, which only a missing member returns: every
      // present $body value (JSON null included) is "null", a missing one is not.
      exact('any', (arg) => {
        const fn = (arg as Extract<Typed, { type: 'any' }>).fn;
        return {
          type: 'bool',
          fn: (m): Tri => {
            const v = fn(m);
            return v === undefined ? undefined : v !== MISSING;
          },
        };
      }),
      exact('null', () => constantBool(true)),
      alwaysFalse,
    ],
  },
  {
    name: 'is_number',
    signatures: ['is_number(any)'],
    overloads: [
      {
        params: ['number'],
        queryValues: true,
        build([arg]) {
          const q = toQuery(arg as Typed);
          return {
            type: 'bool',
            fn: (m) => {
              const v = q(m);
              return typeof v === 'number' && Number.isFinite(v);
            },
          };
        },
      },
      alwaysFalse,
    ],
  },
  {
    name: 'is_string',
    signatures: ['is_string(any)'],
    overloads: [
      {
        params: ['string'],
        queryValues: true,
        build([arg]) {
          const q = toQuery(arg as Typed);
          return { type: 'bool', fn: (m) => typeof q(m) === 'string' };
        },
      },
      alwaysFalse,
    ],
  },
  {
    name: 'concat',
    signatures: ['concat(string, string, …)'],
    overloads: [
      {
        params: { variadic: 'string', min: 2 },
        queryValues: true,
        build(args) {
          const parts = queries(args);
          return {
            type: 'string',
            fn: (m): Str => {
              let out = '';
              for (const part of parts) {
                const v = part(m);
                if (typeof v === 'string') out += v;
                else if (v !== NULL_STRING) return undefined; // a property present without a value counts as ''
              }
              return out;
            },
          };
        },
      },
    ],
  },
  {
    name: 'length',
    signatures: ['length(string)'],
    overloads: [
      {
        params: ['string'],
        queryValues: true,
        build([arg]) {
          const q = toQuery(arg as Typed);
          return {
            type: 'number',
            fn: (m) => {
              const v = q(m);
              return isString(v) ? v.length : Number.NaN;
            },
          };
        },
      },
    ],
  },
  stringMap('lower', invariantLower),
  stringMap('upper', invariantUpper),
  {
    name: 'substring',
    signatures: ['substring(string, number)', 'substring(string, number, number)'],
    overloads: [
      {
        params: ['string', 'number'],
        queryValues: true,
        build(args) {
          const [a, b] = queries(args) as [Eval<QueryValue>, Eval<QueryValue>];
          return {
            type: 'string',
            fn: (m): Str => {
              const s = a(m);
              const start = b(m);
              if (!isString(s) || typeof start !== 'number') return undefined;
              return start >= 0 && start <= s.length ? s.slice(Math.trunc(start)) : undefined;
            },
          };
        },
      },
      {
        params: ['string', 'number', 'number'],
        queryValues: true,
        build(args) {
          const [a, b, c] = queries(args) as [Eval<QueryValue>, Eval<QueryValue>, Eval<QueryValue>];
          return {
            type: 'string',
            fn: (m): Str => {
              const s = a(m);
              const start = b(m);
              const length = c(m);
              if (!isString(s) || typeof start !== 'number' || typeof length !== 'number') return undefined;
              const valid = start >= 0 && start < s.length && length >= 0 && length <= s.length - start;
              if (!valid) return undefined;
              const from = Math.trunc(start);
              return s.slice(from, from + Math.trunc(length));
            },
          };
        },
      },
    ],
  },
  binary('index_of', 'string', isString, numberResult, (s, t) => s.indexOf(t), Number.NaN),
  stringPredicate('starts_with', (s, t) => s.startsWith(t)),
  stringPredicate('ends_with', (s, t) => s.endsWith(t)),
  stringPredicate('contains', (s, t) => s.includes(t)),
];

const BY_NAME = new Map(BUILTINS.map((b) => [foldCase(b.name), b]));

/** The built-in function called `name` (any case), if there is one. `twin_change_includes` is handled separately. */
export function findBuiltin(name: string): Builtin | undefined {
  return BY_NAME.get(foldCase(name));
}

/** Names of all built-in functions, for documentation and suggestions. */
export const BUILTIN_NAMES: readonly string[] = [...BUILTINS.map((b) => b.name), 'twin_change_includes'];
