/**
 * Text and number helpers that reproduce the .NET behaviour the IoT Edge route engine inherits: invariant 1:1 case
 * mapping (used for case-insensitive names and by `upper`/`lower`), `double.TryParse` with `NumberStyles.Any` (used by
 * `as_number`) and `Math.Pow` corner cases.
 */

function isAscii(value: string): boolean {
  for (let i = 0; i < value.length; i++) if (value.charCodeAt(i) > 0x7f) return false;
  return true;
}

function mapCodePoints(value: string, map: (ch: string) => string): string {
  let out = '';
  for (const ch of value) {
    const mapped = map(ch);
    // .NET maps one character to one character; mappings that expand (ß → SS) leave the character as it is.
    out += [...mapped].length === 1 ? mapped : ch;
  }
  return out;
}

/** Upper case as .NET `ToUpperInvariant`: one code point to one code point (`upper('ß')` stays `ß`). */
export function invariantUpper(value: string): string {
  return isAscii(value) ? value.toUpperCase() : mapCodePoints(value, (ch) => ch.toUpperCase());
}

/** Lower case as .NET `ToLowerInvariant`: one code point to one code point (`İ` becomes `i`). */
export function invariantLower(value: string): string {
  if (isAscii(value)) return value.toLowerCase();
  return mapCodePoints(value, (ch) => (ch === '\u0130' ? 'i' : ch.toLowerCase()));
}

/** The key under which .NET's `OrdinalIgnoreCase` considers two strings equal. */
export function foldCase(value: string): string {
  return invariantUpper(value);
}

const isWhite = (c: number): boolean => c === 0x20 || (c >= 0x09 && c <= 0x0d);
const isDigit = (c: number): boolean => c >= 0x30 && c <= 0x39;
const CURRENCY = 0xa4; // ¤, the invariant culture's currency symbol

/**
 * Parses `text` as .NET `double.TryParse(text, NumberStyles.Any, CultureInfo.InvariantCulture)` does: surrounding
 * white space, a leading or trailing sign, parentheses for negative numbers, `¤`, `,` thousands separators after
 * the first digit, one `.`, an exponent, and the words `Infinity`/`-Infinity`/`NaN` in any case.
 * Returns `NaN` when the text is not a number (and for `NaN` itself, which the engine treats as undefined).
 *
 * @example
 * ```ts
 * parseDotNetNumber(' 1,000.5 ') // 1000.5
 * parseDotNetNumber('(5)')       // -5
 * parseDotNetNumber('0x10')      // NaN
 * ```
 */
export function parseDotNetNumber(text: string): number {
  const value = parseNumberStyles(text);
  if (value !== undefined) return value;
  const trimmed = trimDotNetWhite(text).toLowerCase();
  if (trimmed === 'infinity' || trimmed === '+infinity') return Number.POSITIVE_INFINITY;
  if (trimmed === '-infinity') return Number.NEGATIVE_INFINITY;
  return Number.NaN;
}

function trimDotNetWhite(text: string): string {
  let start = 0;
  let end = text.length;
  while (start < end && isWhite(text.charCodeAt(start))) start++;
  while (end > start && isWhite(text.charCodeAt(end - 1))) end--;
  return text.slice(start, end);
}

function parseNumberStyles(text: string): number | undefined {
  let end = text.length;
  while (end > 0 && text.charCodeAt(end - 1) === 0) end--; // .NET ignores trailing NULs
  let p = 0;
  let negative = false;
  let sign = false;
  let parens = false;
  let currency = false;
  // Leading part: white space (not after a sign), one sign or '(', one currency symbol.
  for (;;) {
    const c = p < end ? text.charCodeAt(p) : -1;
    if (isWhite(c) && !(sign && !currency)) {
      p++;
    } else if (!sign && (c === 0x2b || c === 0x2d)) {
      sign = true;
      negative = c === 0x2d;
      p++;
    } else if (!sign && c === 0x28) {
      sign = true;
      parens = true;
      negative = true;
      p++;
    } else if (!currency && c === CURRENCY) {
      currency = true;
      p++;
    } else {
      break;
    }
  }
  let digits = '';
  let sawDigit = false;
  let sawPoint = false;
  for (;;) {
    const c = p < end ? text.charCodeAt(p) : -1;
    if (isDigit(c)) {
      digits += text[p];
      sawDigit = true;
    } else if (c === 0x2e && !sawPoint) {
      sawPoint = true;
      digits += '.';
    } else if (c === 0x2c && sawDigit && !sawPoint) {
      // thousands separator: ignored
    } else {
      break;
    }
    p++;
  }
  if (!sawDigit) return undefined;
  let exponent = '';
  if (p < end && (text[p] === 'e' || text[p] === 'E')) {
    let q = p + 1;
    let expSign = '';
    if (q < end && (text[q] === '+' || text[q] === '-')) {
      expSign = text[q] ?? '';
      q++;
    }
    if (q < end && isDigit(text.charCodeAt(q))) {
      let expDigits = '';
      while (q < end && isDigit(text.charCodeAt(q))) {
        expDigits += text[q];
        q++;
      }
      exponent = `e${expSign}${expDigits}`;
      p = q;
    }
  }
  // Trailing part: white space, a sign if none was given, ')' closing '(', the currency symbol.
  for (;;) {
    const c = p < end ? text.charCodeAt(p) : -1;
    if (isWhite(c)) {
      p++;
    } else if (!sign && (c === 0x2b || c === 0x2d)) {
      sign = true;
      negative = c === 0x2d;
      p++;
    } else if (parens && c === 0x29) {
      parens = false;
      p++;
    } else if (!currency && c === CURRENCY) {
      currency = true;
      p++;
    } else {
      break;
    }
  }
  if (parens || p !== end) return undefined;
  const magnitude = Number(`${digits === '.' ? '0' : digits}${exponent}`);
  if (Number.isNaN(magnitude)) return undefined;
  return negative ? -magnitude : magnitude;
}

/** `Math.pow` with the IEEE 754 results .NET returns where JavaScript differs: `1^y = 1`, `(-1)^±∞ = 1`. */
export function dotNetPow(x: number, y: number): number {
  if (x === 1) return 1;
  if (x === -1 && (y === Number.POSITIVE_INFINITY || y === Number.NEGATIVE_INFINITY)) return 1;
  return x ** y;
}
