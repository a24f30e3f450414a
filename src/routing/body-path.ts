/**
 * `$body.<path>` paths. Compile time checks them as the engine does (`name(.name)*`, each step with an optional
 * `[index]`; all-digit names, empty steps and other index forms are errors). Evaluation reads the path as the engine's
 * JSON library (Newtonsoft JSONPath) does: members are case-sensitive, a member or index that is not there gives the
 * shared null value, several matches or a non-leaf give undefined, and ISO-8601-looking strings are dates, which the
 * engine cannot compare (undefined).
 */
import { RouteLanguageError } from './diagnostics.js';
import { JSON_NULL, MISSING, type QueryValue } from './values.js';

// Characters that end a path name: ( ) < > @ , ; : \ " / [ ] ? = { } . and tab, CR, LF.
const NAME_STOP = new Uint8Array(128);
for (const ch of '()<>@,;:\\"/[]?={}.\t\r\n') NAME_STOP[ch.charCodeAt(0)] = 1;
const isNameChar = (c: number): boolean => c >= 128 || (c >= 0 && NAME_STOP[c] === 0);
const isDigit = (c: number): boolean => c >= 0x30 && c <= 0x39;

type Step =
  | { readonly kind: 'member'; readonly name: string }
  | { readonly kind: 'anyMember' }
  | { readonly kind: 'index'; readonly index: number }
  | { readonly kind: 'anyIndex' };

/** A compiled `$body` path. */
export interface BodyPath {
  /** The path as written after `$body.`. */
  readonly text: string;
  /** The value at this path in a parsed JSON object body. */
  evaluate(root: object): QueryValue;
}

/**
 * Checks `path` (the text after `$body.`) and compiles it. `offset` is where the path starts in the route or
 * condition, for error positions. Throws {@link RouteLanguageError}.
 */
export function compileBodyPath(path: string, offset: number): BodyPath {
  validate(path, offset);
  const steps = stepsOf(path);
  if (steps === undefined) return { text: path, evaluate: () => undefined };
  if (steps.every((s) => s.kind === 'member' || s.kind === 'index')) return simplePath(path, steps);
  return { text: path, evaluate: (root) => selectAll(root, steps) };
}

function validate(path: string, offset: number): void {
  const fail = (at: number, expected: string, found: string): never => {
    throw new RouteLanguageError(offset + at, `invalid $body path: expected ${expected}, found ${found}`, {
      expected,
      found,
      hint: 'a $body path is name(.name)* where each name may be followed by one [index], e.g. $body.readings[0].value',
    });
  };
  const describe = (at: number) => (at >= path.length ? 'end of path' : JSON.stringify(path[at]));
  if (path === '') fail(0, 'a member name after $body.', 'end of path');
  let i = 0;
  for (;;) {
    // A name: the engine's lexer reads an all-digit run as a number, which is not a name.
    const start = i;
    while (i < path.length && isNameChar(path.charCodeAt(i))) i++;
    if (i === start) fail(i, 'a member name', describe(i));
    let allDigits = true;
    for (let k = start; k < i; k++) if (!isDigit(path.charCodeAt(k))) allDigits = false;
    if (allDigits) fail(start, 'a member name (not a number)', JSON.stringify(path.slice(start, i)));
    if (path[i] === '[') {
      i++;
      const indexStart = i;
      while (i < path.length && isNameChar(path.charCodeAt(i))) i++;
      const index = path.slice(indexStart, i);
      if (index === '' || !/^[0-9]+$/.test(index))
        fail(indexStart, 'an array index (digits)', index === '' ? describe(indexStart) : JSON.stringify(index));
      if (path[i] !== ']') fail(i, "']'", describe(i));
      i++;
    }
    if (path[i] !== '.') return; // the engine's path rule does not require the end: anything else is left to evaluation
    i++;
  }
}

/** Steps as the JSON library reads the whole path, or `undefined` when it would reject it (the value is undefined). */
function stepsOf(path: string): Step[] | undefined {
  const steps: Step[] = [];
  let i = 0;
  // The library reads a leading '$' as the root when '.' or '[' follows; otherwise it is part of a member name.
  if (path === '$') return steps;
  if (path.startsWith('$.') || path.startsWith('$[')) i = 1;
  let partStart = i;
  let afterIndexer = false;
  const pushMember = (end: number) => {
    if (end > partStart) {
      const name = path.slice(partStart, end);
      steps.push(name === '*' ? { kind: 'anyMember' } : { kind: 'member', name });
    }
  };
  while (i < path.length) {
    const ch = path[i];
    if (ch === '[') {
      pushMember(i);
      const close = path.indexOf(']', i + 1);
      if (close < 0) return undefined;
      const inner = path.slice(i + 1, close);
      if (inner === '*') steps.push({ kind: 'anyIndex' });
      else if (/^[0-9]+$/.test(inner) && Number(inner) <= 0x7fffffff)
        steps.push({ kind: 'index', index: Number(inner) });
      else if (/^'[^'\\]*'$/.test(inner)) steps.push({ kind: 'member', name: inner.slice(1, -1) });
      else return undefined;
      i = close + 1;
      partStart = i;
      afterIndexer = true;
    } else if (ch === ']') {
      return undefined;
    } else if (ch === '.') {
      pushMember(i);
      i++;
      partStart = i;
      afterIndexer = false;
    } else {
      if (afterIndexer) return undefined;
      i++;
    }
  }
  pushMember(i);
  return steps;
}

function hasOwn(value: object, key: string): boolean {
  return Object.hasOwn(value, key);
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function simplePath(text: string, steps: readonly Step[]): BodyPath {
  const keys: (string | number)[] = steps.map((s) => (s.kind === 'member' ? s.name : s.kind === 'index' ? s.index : 0));
  const isIndex = steps.map((s) => s.kind === 'index');
  const count = keys.length;
  return {
    text,
    evaluate(root) {
      let current: unknown = root;
      for (let k = 0; k < count; k++) {
        const key = keys[k];
        if (isIndex[k]) {
          if (!Array.isArray(current) || (key as number) >= current.length) return MISSING;
          current = current[key as number];
        } else {
          if (!isPlainObject(current) || !hasOwn(current, key as string)) return MISSING;
          current = current[key as string];
        }
      }
      return leaf(current);
    },
  };
}

function selectAll(root: object, steps: readonly Step[]): QueryValue {
  let current: unknown[] = [root];
  for (const step of steps) {
    const next: unknown[] = [];
    for (const value of current) {
      if (step.kind === 'member') {
        if (isPlainObject(value) && hasOwn(value, step.name)) next.push(value[step.name]);
      } else if (step.kind === 'anyMember') {
        if (isPlainObject(value)) for (const key of Object.keys(value)) next.push(value[key]);
      } else if (step.kind === 'index') {
        if (Array.isArray(value) && step.index < value.length) next.push(value[step.index]);
      } else if (Array.isArray(value)) {
        for (const element of value) next.push(element); // not push(...value): large arrays overflow the stack
      }
    }
    current = next;
  }
  if (current.length === 0) return MISSING;
  if (current.length > 1) return undefined;
  return leaf(current[0]);
}

function leaf(value: unknown): QueryValue {
  switch (typeof value) {
    case 'number':
    case 'boolean':
      return value;
    case 'string':
      return isNewtonsoftDate(value) ? undefined : value;
    default:
      return value === null ? JSON_NULL : undefined; // objects and arrays are not comparable
  }
}

const digitAt = (s: string, i: number): number => {
  const c = s.charCodeAt(i) - 0x30;
  return c >= 0 && c <= 9 ? c : -1;
};

function twoDigits(s: string, i: number): number {
  const a = digitAt(s, i);
  const b = digitAt(s, i + 1);
  return a < 0 || b < 0 ? -1 : a * 10 + b;
}

function daysInMonth(year: number, month: number): number {
  const leap = (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0;
  return month === 2 ? (leap ? 29 : 28) : month === 4 || month === 6 || month === 9 || month === 11 ? 30 : 31;
}

/**
 * True for strings the engine's JSON reader turns into dates: ISO 8601 date-times (`yyyy-MM-ddTHH:mm:ss[.f…][zone]`,
 * 19 to 40 characters) and Microsoft JSON dates (`/Date(ticks[±hhmm])/`). Such values are not strings in conditions.
 */
export function isNewtonsoftDate(s: string): boolean {
  if (s.charCodeAt(0) === 0x2f) return s.length >= 9 && /^\/Date\(-?\d+([+-]\d{4})?\)\/$/.test(s);
  if (s.length < 19 || s.length > 40 || digitAt(s, 0) < 0 || s[10] !== 'T') return false;
  const century = twoDigits(s, 0);
  const yy = twoDigits(s, 2);
  const year = century * 100 + yy;
  const month = twoDigits(s, 5);
  const day = twoDigits(s, 8);
  if (century < 0 || yy < 0 || year < 1 || s[4] !== '-' || s[7] !== '-') return false;
  if (month < 1 || month > 12 || day < 1 || day > daysInMonth(year, month)) return false;
  const hour = twoDigits(s, 11);
  const minute = twoDigits(s, 14);
  const second = twoDigits(s, 17);
  if (
    hour < 0 ||
    hour > 24 ||
    s[13] !== ':' ||
    minute < 0 ||
    minute > 59 ||
    s[16] !== ':' ||
    second < 0 ||
    second > 59
  ) {
    return false;
  }
  if (hour === 24 && (minute !== 0 || second !== 0)) return false;
  let i = 19;
  if (s[i] === '.') {
    let digits = 0;
    let fraction = 0;
    i++;
    while (i < s.length && digits < 7 && digitAt(s, i) >= 0) {
      fraction = fraction * 10 + digitAt(s, i);
      digits++;
      i++;
    }
    if (digits === 0 || (hour === 24 && fraction !== 0)) return false;
  }
  // Zone: 'Z', or an optional [+-]hh followed by an optional [:]mm, as the reader's lenient zone parser accepts.
  if (i < s.length) {
    const ch = s[i];
    if (ch === 'Z' || ch === 'z') {
      i++;
    } else {
      if (i + 2 < s.length && twoDigits(s, i + 1) >= 0 && (ch === '+' || ch === '-')) i += 3;
      if (i < s.length) {
        if (s[i] === ':') {
          i++;
          if (i + 1 < s.length && twoDigits(s, i) >= 0) i += 2;
        } else if (i + 1 < s.length && twoDigits(s, i) >= 0) {
          i += 2;
        }
      }
    }
  }
  return i === s.length;
}
