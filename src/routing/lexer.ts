/**
 * The lexer of the route language, token for token as the IoT Edge engine's ANTLR lexer: at each position every rule
 * is tried, the longest match wins and a tie goes to the rule declared first. That is why `3+4`, `my-prop` and
 * `'a'||'b'` are single identifiers (those characters are identifier characters) while `key1='x'` is three tokens.
 */

/** Token kinds, named after the engine's lexer rules. Punctuation kinds are the punctuation itself. */
export type TokenType =
  | '{'
  | '}'
  | 'SELECT'
  | 'FROM'
  | 'WHERE'
  | 'INTO'
  | 'STRING'
  | 'UNTERMINATED_STRING'
  | 'INTEGER'
  | 'HEX'
  | 'REAL'
  | 'TRUE'
  | 'FALSE'
  | 'NULL'
  | 'UNDEFINED'
  | '('
  | ')'
  | ','
  | '+'
  | '-'
  | '*'
  | '/'
  | '%'
  | 'AND'
  | 'OR'
  | 'NOT'
  | '='
  | '!='
  | '<>'
  | '<='
  | '>='
  | '>'
  | '<'
  | '||'
  | '??'
  | 'SYS_PROP'
  | 'ID'
  | 'QUERY_PATH'
  | 'WS'
  | 'COMMENT'
  | 'UNKNOWN'
  | 'EOF';

/** One token: its kind, its exact text and where it is (`end` exclusive). */
export interface Token {
  readonly type: TokenType;
  readonly text: string;
  readonly start: number;
  readonly end: number;
}

// Characters that end an identifier: ( ) < > @ , ; : \ " / [ ] ? = { } and space, tab, CR, LF.
const ID_STOP = new Uint8Array(128);
for (const ch of '()<>@,;:\\"/[]?={} \t\r\n') ID_STOP[ch.charCodeAt(0)] = 1;

/** True for a character allowed in an identifier (`ID`). Everything outside ASCII is allowed. */
export function isIdChar(c: number): boolean {
  return c >= 128 || (c >= 0 && ID_STOP[c] === 0);
}

/** True for a character allowed after `$` in a system property (`[` and `]` are allowed there). */
export function isQueryPathChar(c: number): boolean {
  return c === 0x5b || c === 0x5d || isIdChar(c);
}

const isDigit = (c: number): boolean => c >= 0x30 && c <= 0x39;
const isHexDigit = (c: number): boolean => isDigit(c) || (c >= 0x41 && c <= 0x46) || (c >= 0x61 && c <= 0x66);
const isWs = (c: number): boolean => c === 0x20 || c === 0x09 || c === 0x0d || c === 0x0a;

function exact(s: string, i: number, literal: string): number {
  return s.startsWith(literal, i) ? literal.length : 0;
}

/** Case-insensitive keyword (`word` in upper case); only ASCII letters fold, as in the engine's `[Aa]` sets. */
function keyword(s: string, i: number, word: string): number {
  for (let k = 0; k < word.length; k++) {
    const c = s.charCodeAt(i + k);
    const w = word.charCodeAt(k);
    if (c !== w && c !== w + 32) return 0;
  }
  return word.length;
}

function run(s: string, i: number, accept: (c: number) => boolean): number {
  let j = i;
  while (j < s.length && accept(s.charCodeAt(j))) j++;
  return j - i;
}

/** Length of an escape at `i` (a backslash there), or 0: `\"`, `\'`, `\\` or `\uXXXX`. */
function escapeLength(s: string, i: number): number {
  const next = s.charCodeAt(i + 1);
  if (next === 0x22 || next === 0x27 || next === 0x5c) return 2;
  if (next === 0x75) {
    for (let k = 2; k < 6; k++) if (!isHexDigit(s.charCodeAt(i + k))) return 0;
    return 6;
  }
  return 0;
}

/** Scans a quoted string at `i`: `terminated` is the STRING length (0 if none), `open` the unterminated length. */
function quoted(s: string, i: number): { terminated: number; open: number } {
  const quote = s.charCodeAt(i);
  if (quote !== 0x22 && quote !== 0x27) return { terminated: 0, open: 0 };
  let j = i + 1;
  while (j < s.length) {
    const c = s.charCodeAt(j);
    if (c === quote) return { terminated: j + 1 - i, open: j - i };
    if (c === 0x5c) {
      const esc = escapeLength(s, j);
      if (esc === 0) return { terminated: 0, open: j - i };
      j += esc;
    } else {
      j++;
    }
  }
  return { terminated: 0, open: j - i };
}

function integer(s: string, i: number): number {
  const sign = s.charCodeAt(i) === 0x2d ? 1 : 0;
  const digits = run(s, i + sign, isDigit);
  return digits > 0 ? sign + digits : 0;
}

function hex(s: string, i: number): number {
  if (s.charCodeAt(i) !== 0x30 || (s.charCodeAt(i + 1) | 0x20) !== 0x78) return 0;
  const digits = run(s, i + 2, isHexDigit);
  return digits > 0 ? 2 + digits : 0;
}

function exponent(s: string, i: number): number {
  if ((s.charCodeAt(i) | 0x20) !== 0x65) return 0;
  let j = i + 1;
  const c = s.charCodeAt(j);
  if (c === 0x2b || c === 0x2d) j++;
  const digits = run(s, j, isDigit);
  return digits > 0 ? j + digits - i : 0;
}

function real(s: string, i: number): number {
  let j = i;
  if (s.charCodeAt(j) === 0x2d) j++;
  j += run(s, j, isDigit);
  let best = 0;
  // '-'? [0-9]* '.' [0-9]+ EXP?
  if (s.charCodeAt(j) === 0x2e) {
    const fraction = run(s, j + 1, isDigit);
    if (fraction > 0) {
      const k = j + 1 + fraction;
      best = k + exponent(s, k) - i;
    }
  }
  // '-'? [0-9]* EXP
  const e = exponent(s, j);
  if (e > 0) best = Math.max(best, j + e - i);
  return best;
}

function comment(s: string, i: number): number {
  if (!s.startsWith('/*', i)) return 0;
  const close = s.indexOf('*/', i + 2);
  return close < 0 ? 0 : close + 2 - i;
}

type Rule = readonly [TokenType, (s: string, i: number) => number];

// In the engine's declaration order: ties go to the earlier rule. '{' and '}' are implicit tokens, declared first.
const RULES: readonly Rule[] = [
  ['{', (s, i) => exact(s, i, '{')],
  ['}', (s, i) => exact(s, i, '}')],
  ['SELECT', (s, i) => keyword(s, i, 'SELECT')],
  ['FROM', (s, i) => keyword(s, i, 'FROM')],
  ['WHERE', (s, i) => keyword(s, i, 'WHERE')],
  ['INTO', (s, i) => keyword(s, i, 'INTO')],
  ['STRING', (s, i) => quoted(s, i).terminated],
  ['UNTERMINATED_STRING', (s, i) => quoted(s, i).open],
  ['INTEGER', integer],
  ['HEX', hex],
  ['REAL', real],
  ['TRUE', (s, i) => exact(s, i, 'true')],
  ['FALSE', (s, i) => exact(s, i, 'false')],
  ['NULL', (s, i) => exact(s, i, 'null')],
  ['UNDEFINED', (s, i) => exact(s, i, 'undefined')],
  ['(', (s, i) => exact(s, i, '(')],
  [')', (s, i) => exact(s, i, ')')],
  [',', (s, i) => exact(s, i, ',')],
  ['+', (s, i) => exact(s, i, '+')],
  ['-', (s, i) => exact(s, i, '-')],
  ['*', (s, i) => exact(s, i, '*')],
  ['/', (s, i) => exact(s, i, '/')],
  ['%', (s, i) => exact(s, i, '%')],
  ['AND', (s, i) => keyword(s, i, 'AND')],
  ['OR', (s, i) => keyword(s, i, 'OR')],
  ['NOT', (s, i) => keyword(s, i, 'NOT')],
  ['=', (s, i) => exact(s, i, '=')],
  ['!=', (s, i) => exact(s, i, '!=')],
  ['<>', (s, i) => exact(s, i, '<>')],
  ['<=', (s, i) => exact(s, i, '<=')],
  ['>=', (s, i) => exact(s, i, '>=')],
  ['>', (s, i) => exact(s, i, '>')],
  ['<', (s, i) => exact(s, i, '<')],
  ['||', (s, i) => exact(s, i, '||')],
  ['??', (s, i) => exact(s, i, '??')],
  [
    'SYS_PROP',
    (s, i) =>
      s.charCodeAt(i) === 0x24 && isQueryPathChar(s.charCodeAt(i + 1)) ? 1 + run(s, i + 1, isQueryPathChar) : 0,
  ],
  ['ID', (s, i) => run(s, i, isIdChar)],
  ['QUERY_PATH', (s, i) => run(s, i, isQueryPathChar)],
  ['WS', (s, i) => run(s, i, isWs)],
  ['COMMENT', comment],
  ['UNKNOWN', (s, i) => (i < s.length ? 1 : 0)],
];

/**
 * Splits `text` into tokens. White space is dropped and `/* … *\/` comments are dropped (the engine keeps them on a
 * hidden channel); the last token is `EOF`. Never throws: characters that start no token become `UNKNOWN` tokens and
 * the parser reports them.
 */
export function tokenize(text: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < text.length) {
    let bestType: TokenType = 'UNKNOWN';
    let bestLength = 0;
    for (const [type, match] of RULES) {
      const length = match(text, i);
      if (length > bestLength) {
        bestLength = length;
        bestType = type;
      }
    }
    if (bestType !== 'WS' && bestType !== 'COMMENT') {
      tokens.push({ type: bestType, text: text.slice(i, i + bestLength), start: i, end: i + bestLength });
    }
    i += bestLength;
  }
  tokens.push({ type: 'EOF', text: '', start: text.length, end: text.length });
  return tokens;
}
