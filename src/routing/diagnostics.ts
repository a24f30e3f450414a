/**
 * Positions and errors of the route language. Lexer, parser and compiler throw {@link RouteLanguageError} with an
 * offset; the public functions turn it into one `EdgeKitError('invalid-route')` whose message and `details` name the
 * line, column and what was expected.
 */
import { EdgeKitError } from '../errors.js';

/** Where something is in a route or condition text. `offset` is 0-based; `line` and `column` are 1-based. */
export interface TextPosition {
  readonly offset: number;
  readonly line: number;
  readonly column: number;
}

/** Line and column of `offset` in `text` (UTF-16 units, as the IoT Edge engine counts them). */
export function positionOf(text: string, offset: number): TextPosition {
  let line = 1;
  let lineStart = 0;
  const end = Math.min(Math.max(offset, 0), text.length);
  for (let i = 0; i < end; i++) {
    if (text.charCodeAt(i) === 10) {
      line++;
      lineStart = i + 1;
    }
  }
  return { offset, line, column: offset - lineStart + 1 };
}

/** Facts about a language error, kept in `EdgeKitError.details`. */
export interface RouteErrorFacts {
  /** What the parser or compiler wanted at that point, e.g. `INTO` or `a number`. */
  readonly expected?: string;
  /** What it found there: the token text, or `end of input`. */
  readonly found?: string;
  /** A suggestion for the usual fix. */
  readonly hint?: string;
}

/** Internal error of the lexer, parser and compiler; converted to `EdgeKitError` at the public API. */
export class RouteLanguageError extends Error {
  override readonly name = 'RouteLanguageError';
  constructor(
    readonly offset: number,
    readonly reason: string,
    readonly facts: RouteErrorFacts = {},
  ) {
    super(reason);
  }
}

/** Shortens and quotes a token for messages: `"WHER"`, or `end of input`. */
export function describeFound(text: string | undefined): string {
  if (text === undefined || text === '') return 'end of input';
  return JSON.stringify(text.length > 40 ? `${text.slice(0, 40)}…` : text);
}

/** The message of a language error without the subject prefix: `at column 27: expected INTO, found "WHER"`. */
export function describeAt(text: string, error: RouteLanguageError): { where: string; position: TextPosition } {
  const position = positionOf(text, error.offset);
  const multiLine = text.includes('\n');
  const where = multiLine ? `at line ${position.line}, column ${position.column}` : `at column ${position.column}`;
  return { where, position };
}

/**
 * Converts a language error found in `text` to the public error. `subject` starts the message, e.g.
 * `invalid route "r1"` or `invalid condition`.
 */
export function toEdgeKitError(
  subject: string,
  text: string,
  error: RouteLanguageError,
  extra: Readonly<Record<string, unknown>> = {},
): EdgeKitError {
  const { where, position } = describeAt(text, error);
  const hint = error.facts.hint === undefined ? '' : ` (${error.facts.hint})`;
  return new EdgeKitError('invalid-route', `${subject}: ${where}: ${error.reason}${hint}`, {
    details: {
      ...extra,
      text,
      offset: position.offset,
      line: position.line,
      column: position.column,
      reason: error.reason,
      ...(error.facts.expected === undefined ? {} : { expected: error.facts.expected }),
      ...(error.facts.found === undefined ? {} : { found: error.facts.found }),
      ...(error.facts.hint === undefined ? {} : { hint: error.facts.hint }),
    },
  });
}

/** An error about a whole route entry (its name, priority or TTL) rather than a place in its text. */
export function routeEntryError(
  subject: string,
  reason: string,
  details: Readonly<Record<string, unknown>>,
): EdgeKitError {
  return new EdgeKitError('invalid-route', `${subject}: ${reason}`, { details: { ...details, reason } });
}
