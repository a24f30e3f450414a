/**
 * Runtime values of `$body` queries ("query values" in the engine): a JSON leaf, or one of the markers below.
 * `undefined` means the value is undefined. Query values of different types compare by a fixed type order
 * (bool < number < string < null) instead of being converted.
 */

/** A member or index that is not in the body: the engine's shared `null` value (`is_null` says false for it). */
export const MISSING: unique symbol = Symbol('missing');
/** A JSON `null` in the body, or the `null` literal converted to a query value. */
export const JSON_NULL: unique symbol = Symbol('null');
/** A string-typed value without content: an application property present with a null value. */
export const NULL_STRING: unique symbol = Symbol('null string');

/** A dynamically typed value from a `$body` query or a conversion to one. */
export type QueryValue = boolean | number | string | typeof MISSING | typeof JSON_NULL | typeof NULL_STRING | undefined;

/** Rank in the engine's type order: bool 1, number 2, string 3, null 4. Undefined has none. */
export function rankOf(value: Exclude<QueryValue, undefined>): number {
  switch (typeof value) {
    case 'boolean':
      return 1;
    case 'number':
      return 2;
    case 'string':
      return 3;
    default:
      return value === NULL_STRING ? 3 : 4;
  }
}

/** .NET `double.CompareTo`: NaN equals NaN and sorts before every other number. */
export function compareNumbers(a: number, b: number): number {
  if (a < b) return -1;
  if (a > b) return 1;
  if (a === b) return 0;
  const aNaN = Number.isNaN(a);
  const bNaN = Number.isNaN(b);
  if (aNaN) return bNaN ? 0 : -1;
  return 1;
}

/** Ordinal (UTF-16 code unit) comparison, as .NET `StringComparison.Ordinal`. */
export function compareStrings(a: string, b: string): number {
  return a === b ? 0 : a < b ? -1 : 1;
}

/** Compares two defined query values by the engine's rules; negative, zero or positive. */
export function compareQueryValues(a: Exclude<QueryValue, undefined>, b: Exclude<QueryValue, undefined>): number {
  const ra = rankOf(a);
  const rb = rankOf(b);
  if (ra !== rb) return ra - rb;
  if (typeof a === 'boolean') return (a ? 1 : -1) - (b ? 1 : -1);
  if (typeof a === 'number') return compareNumbers(a, b as number);
  if (ra === 3) {
    // A null string sorts before every string (.NET string.Compare with null).
    if (a === NULL_STRING) return b === NULL_STRING ? 0 : -1;
    if (b === NULL_STRING) return 1;
    return compareStrings(a as string, b as string);
  }
  return 0;
}

/** A number as a query value: NaN (the engine's undefined number) becomes undefined. */
export function numberToQuery(value: number): QueryValue {
  return Number.isNaN(value) ? undefined : value;
}

/** A string-typed value as a query value: a missing property is undefined, a null-valued one a null string. */
export function stringToQuery(value: string | null | undefined): QueryValue {
  return value === undefined ? undefined : value === null ? NULL_STRING : value;
}
