/**
 * Statically typed evaluators: what the compiler turns each condition node into. The engine types every expression
 * at compile time (number, string, bool, null, undefined, or a dynamic `$body` value) and rejects mismatches then;
 * at run time each node is a closure over the message returning a value of its static type.
 */
import type { RoutingMessage } from './message.js';
import { JSON_NULL, numberToQuery, type QueryValue, stringToQuery } from './values.js';

/** Three-valued boolean: `undefined` is the engine's Undefined. */
export type Tri = boolean | undefined;
/** A string-typed value: `null` for a property present without a value, `undefined` when missing. */
export type Str = string | null | undefined;
/** A compiled node: a function of the message. */
export type Eval<T> = (message: RoutingMessage) => T;

/** The static types of the language. `any` is a `$body` value, typed only at run time. */
export type StaticType = 'number' | 'string' | 'bool' | 'null' | 'undefined' | 'any';

/** A compiled node with its static type. A number is undefined when NaN. `constant` is set for literals. */
export type Typed =
  | { readonly type: 'number'; readonly fn: Eval<number>; readonly constant?: { readonly value: number } }
  | { readonly type: 'string'; readonly fn: Eval<Str>; readonly constant?: { readonly value: Str } }
  | { readonly type: 'bool'; readonly fn: Eval<Tri>; readonly constant?: { readonly value: Tri } }
  | { readonly type: 'null' }
  | { readonly type: 'undefined' }
  | { readonly type: 'any'; readonly fn: Eval<QueryValue>; readonly constant?: { readonly value: QueryValue } };

/** Names of static types as error messages show them. */
export const TYPE_NAMES: Readonly<Record<StaticType, string>> = {
  number: 'number',
  string: 'string',
  bool: 'bool',
  null: 'null',
  undefined: 'undefined',
  any: '$body value',
};

/** A constant of the given type. */
export function constantNumber(value: number): Typed {
  return { type: 'number', fn: () => value, constant: { value } };
}

export function constantString(value: Str): Typed {
  return { type: 'string', fn: () => value, constant: { value } };
}

export function constantBool(value: Tri): Typed {
  return { type: 'bool', fn: () => value, constant: { value } };
}

export const NULL_TYPED: Typed = { type: 'null' };
export const UNDEFINED_TYPED: Typed = { type: 'undefined' };

/** Converts a node of a type that mixes with `$body` values (number, string, bool, null) to a query value. */
export function toQuery(typed: Typed): Eval<QueryValue> {
  switch (typed.type) {
    case 'any':
      return typed.fn;
    case 'number': {
      const fn = typed.fn;
      if (typed.constant) {
        const value = numberToQuery(typed.constant.value);
        return () => value;
      }
      return (m) => numberToQuery(fn(m));
    }
    case 'string': {
      const fn = typed.fn;
      if (typed.constant) {
        const value = stringToQuery(typed.constant.value);
        return () => value;
      }
      return (m) => stringToQuery(fn(m));
    }
    case 'bool':
      return typed.fn;
    case 'null':
      return () => JSON_NULL;
    case 'undefined':
      return () => undefined;
  }
}

/** The constant query value of a literal node, if it is one. */
export function constantQuery(typed: Typed): { value: QueryValue } | undefined {
  switch (typed.type) {
    case 'number':
      return typed.constant && { value: numberToQuery(typed.constant.value) };
    case 'string':
      return typed.constant && { value: stringToQuery(typed.constant.value) };
    case 'bool':
      return typed.constant && { value: typed.constant.value };
    case 'null':
      return { value: JSON_NULL };
    case 'any':
      return typed.constant && { value: typed.constant.value };
    default:
      return undefined;
  }
}
