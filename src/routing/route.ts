/**
 * Public entry points for single routes and conditions: parse a route string, compile a condition once into an
 * evaluator. Errors become `EdgeKitError('invalid-route')` naming the position and what was expected.
 */
import type { ExprNode } from './ast.js';
import { type CompileConditionOptions, type CompiledCondition, compileConditionSyntax } from './compiler.js';
import { RouteLanguageError, toEdgeKitError } from './diagnostics.js';
import type { RoutingMessage } from './message.js';
import { parseConditionSyntax, parseRouteSyntax, type RouteSink, type RouteSyntax } from './parser.js';

/** A route split into its parts. */
export interface ParsedRoute {
  /** The FROM path as written, white space removed, e.g. `/messages/modules/sensor/outputs/*`. */
  readonly source: string;
  /** The WHERE condition as written (trimmed), or `null` when the route has none. */
  readonly condition: string | null;
  /** Where matching messages go. */
  readonly sink: RouteSink;
}

function rethrow(subject: string, text: string, error: unknown, extra: Readonly<Record<string, unknown>> = {}): never {
  if (error instanceof RouteLanguageError) throw toEdgeKitError(subject, text, error, extra);
  throw error;
}

/**
 * Parses a route string: `[SELECT *] FROM <path> [WHERE <condition>] INTO <sink>`. Keywords are case-insensitive;
 * the sink is `$upstream` or `BrokeredEndpoint("/modules/<module>/inputs/<input>")`. The condition's syntax is checked
 * here, its types by {@link compileCondition}. As in IoT Edge, text after the sink is ignored.
 *
 * @throws EdgeKitError `invalid-route`, with `details` `{ offset, line, column, expected, found }`.
 * @example
 * ```ts
 * parseRoute('FROM /messages/modules/sensor/outputs/temp WHERE as_number(t) > 25 INTO BrokeredEndpoint("/modules/filter/inputs/in1")')
 * // { source: '/messages/modules/sensor/outputs/temp', condition: 'as_number(t) > 25',
 * //   sink: { kind: 'module', module: 'filter', input: 'in1' } }
 * ```
 */
export function parseRoute(text: string): ParsedRoute {
  const syntax = parseRouteText(text, 'invalid route');
  return { source: syntax.source, condition: syntax.condition?.text ?? null, sink: syntax.sink };
}

/** Parses a route string, throwing `EdgeKitError` whose message starts with `subject` (`extra` goes to details). */
export function parseRouteText(
  text: string,
  subject: string,
  extra: Readonly<Record<string, unknown>> = {},
): RouteSyntax {
  if (typeof text !== 'string') throw new TypeError(`a route must be a string, got ${typeof text}`);
  try {
    return parseRouteSyntax(text);
  } catch (error) {
    return rethrow(subject, text, error, extra);
  }
}

/** A route's condition compiled, or `null` when the route has no WHERE clause. */
export function compileRouteCondition(
  syntax: RouteSyntax,
  text: string,
  subject: string,
  extra: Readonly<Record<string, unknown>> = {},
): CompiledCondition | null {
  if (syntax.condition === null) return null;
  try {
    return compileConditionSyntax(syntax.condition.expr, text, { source: syntax.source });
  } catch (error) {
    return rethrow(subject, text, error, extra);
  }
}

/**
 * Parses a condition into its syntax tree (`null` when empty), for tools that inspect or rewrite conditions.
 *
 * @throws EdgeKitError `invalid-route` on a syntax error.
 * @example
 * ```ts
 * printCondition(parseCondition("a='x' and b='y'")!) // "a = 'x' AND b = 'y'"
 * ```
 */
export function parseCondition(text: string): ExprNode | null {
  if (typeof text !== 'string') throw new TypeError(`a condition must be a string, got ${typeof text}`);
  try {
    return parseConditionSyntax(text);
  } catch (error) {
    return rethrow('invalid condition', text, error);
  }
}

/** A condition compiled, with the warnings found while compiling it. */
export type ConditionAnalysis = CompiledCondition;

/**
 * Compiles a condition and also returns the compiler's warnings (see {@link compileCondition}).
 *
 * @example
 * ```ts
 * analyzeCondition("3+4 = '7'").warnings[0]?.message // '"3+4" is read as one property name, not an expression: …'
 * ```
 */
export function analyzeCondition(text: string, options: CompileConditionOptions = {}): ConditionAnalysis {
  const expr = parseCondition(text);
  try {
    return compileConditionSyntax(expr, text, options);
  } catch (error) {
    return rethrow('invalid condition', text, error);
  }
}

/**
 * Compiles a WHERE condition once into an evaluator. The evaluator is three-valued: `true`, `false` or `undefined`
 * (a missing property, a failed conversion…); a route fires only on `true`. An empty condition is always undefined.
 * Type errors (`temperature > 25` on a string property), unknown functions, wrong arity and bad `$body` paths throw
 * here, never at evaluation; evaluation never throws.
 *
 * @throws EdgeKitError `invalid-route`, with the position in `details`.
 * @example
 * ```ts
 * const hot = compileCondition("as_number(temperature) > 25 AND $connectionModuleId = 'sensor'");
 * hot({ source: '/messages/modules/sensor/outputs/t', properties: { temperature: '30' },
 *       systemProperties: { connectionModuleId: 'sensor' }, body: new Uint8Array() }) // true
 * ```
 */
export function compileCondition(
  text: string,
  options: CompileConditionOptions = {},
): (message: RoutingMessage) => boolean | undefined {
  return analyzeCondition(text, options).evaluate;
}
