/**
 * A compiled route table: every route parsed and its condition compiled once, then `select` finds every destination
 * a message reaches. As in IoT Edge all matching routes fire, a sink is reached at most once per message, and when
 * several routes reach the same sink the lowest priority number wins and its TTL is used.
 */
import type { EdgeKitError } from '../errors.js';
import { checkName } from '../names.js';
import type { ConditionWarning } from './compiler.js';
import { describeAt, RouteLanguageError, toEdgeKitError } from './diagnostics.js';
import type { RoutingMessage } from './message.js';
import type { RouteSink } from './parser.js';
import { compileRouteCondition, parseRouteText } from './route.js';
import { messageSourceKey, normalizeSourcePattern, sourceKey } from './source.js';
import { DEFAULT_ROUTE_PRIORITY, parseRouteSpec, type RouteSpec } from './spec.js';

/** A destination a message reaches: the sink, with the priority and TTL of the route that won it. */
export type Destination = RouteSink & {
  /** 0–9, or {@link DEFAULT_ROUTE_PRIORITY} for a route without a priority. */
  readonly priority: number;
  /** Seconds; 0 means the default store-and-forward TTL. */
  readonly timeToLiveSecs: number;
  /** The name of the route that won this sink. */
  readonly routeName: string;
};

/** One route of a table, parsed and compiled. */
export interface CompiledRoute {
  readonly name: string;
  /** The route string as deployed. */
  readonly text: string;
  /** The FROM path as written. */
  readonly source: string;
  /** The WHERE condition as written, or `null`. */
  readonly condition: string | null;
  readonly sink: RouteSink;
  readonly priority: number;
  readonly timeToLiveSecs: number;
  /** Things that compile but are probably not what was meant (ignored text after the sink, unknown `$` names…). */
  readonly warnings: readonly string[];
  /** Does this route's FROM path accept messages from `source`? */
  matchesSource(source: string): boolean;
  /** The condition's three-valued result (`true` when there is no condition). */
  evaluate(message: RoutingMessage): boolean | undefined;
  /** Does this route deliver `message`: source matches and the condition is exactly `true`. */
  matches(message: RoutingMessage): boolean;
}

/** A compiled set of routes. */
export interface RouteTable {
  /** The routes, in the order given. */
  readonly routes: readonly CompiledRoute[];
  /**
   * Every destination the message reaches: all matching routes, one entry per sink, lowest priority number winning
   * (its TTL used; on equal priority the route listed first). Empty when no route matches: there is no fallback.
   */
  select(message: RoutingMessage): Destination[];
}

/** An entry that failed to compile, with its error. */
export interface InvalidRoute {
  readonly name: string;
  readonly error: EdgeKitError;
}

/**
 * Key identifying a sink: the same module input reached by two routes is one sink.
 *
 * @example
 * ```ts
 * sinkKey({ kind: 'module', module: 'filter', input: 'in1' }) // 'filter/in1'
 * sinkKey({ kind: 'upstream' })                             // '$upstream'
 * ```
 */
export function sinkKey(sink: RouteSink): string {
  return sink.kind === 'upstream' ? '$upstream' : `${sink.module}/${sink.input}`;
}

function subjectOf(name: string): string {
  return `invalid route ${JSON.stringify(name)}`;
}

function formatWarning(text: string, warning: ConditionWarning): string {
  const { where } = describeAt(text, new RouteLanguageError(warning.offset, warning.message));
  return `${where}: ${warning.message}`;
}

function checkSinkNames(name: string, text: string, sink: RouteSink, sinkStart: number): void {
  if (sink.kind !== 'module') return;
  try {
    checkName('module id', sink.module);
    checkName('input', sink.input);
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw toEdgeKitError(
      subjectOf(name),
      text,
      new RouteLanguageError(sinkStart, `the sink cannot be addressed: ${reason}`, {
        expected: 'a valid module id and input name',
        found: `/modules/${sink.module}/inputs/${sink.input}`,
      }),
      { route: name },
    );
  }
}

interface Entry {
  /** Position in the table. */
  readonly index: number;
  readonly prefix: string;
  readonly sinkIndex: number;
  readonly priority: number;
  readonly evaluate: (message: RoutingMessage) => boolean | undefined;
  readonly destination: Destination;
}

/** Compiles one entry. Throws `EdgeKitError('invalid-route')` naming the route. */
function compileEntry(name: string, value: string | RouteSpec): CompiledRoute {
  const { route: text, priority, timeToLiveSecs } = parseRouteSpec(name, value);
  const subject = subjectOf(name);
  const syntax = parseRouteText(text, subject, { route: name });
  const condition = compileRouteCondition(syntax, text, subject, { route: name });
  checkSinkNames(name, text, syntax.sink, syntax.sinkStart);
  const warnings: string[] = (condition?.warnings ?? []).map((w) => formatWarning(text, w));
  if (syntax.ignored !== null) {
    warnings.push(
      formatWarning(text, {
        offset: syntax.ignored.start,
        message: `${JSON.stringify(syntax.ignored.text)} after the sink is ignored (as IoT Edge does); a WHERE clause must come before INTO`,
      }),
    );
  }
  const pattern = normalizeSourcePattern(syntax.source);
  if (/\*./.test(pattern)) {
    warnings.push(
      formatWarning(text, {
        offset: syntax.sourceStart,
        message: `'*' is only a wildcard at the end of a FROM path: ${syntax.source} matches that literal text`,
      }),
    );
  }
  const prefix = sourceKey(pattern);
  const evaluate = condition === null ? () => true : condition.evaluate;
  return {
    name,
    text,
    source: syntax.source,
    condition: syntax.condition?.text ?? null,
    sink: syntax.sink,
    priority,
    timeToLiveSecs,
    warnings,
    matchesSource: (source) => messageSourceKey(source).startsWith(prefix),
    evaluate,
    matches: (message) =>
      typeof message.source === 'string' &&
      messageSourceKey(message.source).startsWith(prefix) &&
      evaluate(message) === true,
  };
}

/** The routes whose FROM path accepts one message source, and the sinks they reach (in table order). */
interface Plan {
  readonly entries: readonly Entry[];
  readonly sinks: readonly number[];
}

class CompiledRouteTable implements RouteTable {
  readonly routes: readonly CompiledRoute[];
  private readonly entries: readonly Entry[];
  private readonly best: Int32Array;
  // Source matching depends only on the source string: remember the plan for the sources seen recently.
  private readonly plans = new Map<string, Plan>();

  constructor(routes: readonly CompiledRoute[]) {
    this.routes = Object.freeze([...routes]);
    const sinks = new Map<string, number>();
    this.entries = routes.map((route, index) => {
      const key = sinkKey(route.sink);
      let sinkIndex = sinks.get(key);
      if (sinkIndex === undefined) {
        sinkIndex = sinks.size;
        sinks.set(key, sinkIndex);
      }
      const destination = Object.freeze({
        ...route.sink,
        priority: route.priority,
        timeToLiveSecs: route.timeToLiveSecs,
        routeName: route.name,
      }) as Destination;
      return {
        index,
        prefix: sourceKey(normalizeSourcePattern(route.source)),
        sinkIndex,
        priority: route.priority,
        evaluate: route.evaluate,
        destination,
      };
    });
    this.best = new Int32Array(sinks.size);
  }

  private plan(source: string): Plan {
    let plan = this.plans.get(source);
    if (plan === undefined) {
      const key = messageSourceKey(source);
      const entries = this.entries.filter((entry) => key.startsWith(entry.prefix));
      const sinks = [...new Set(entries.map((entry) => entry.sinkIndex))].sort((a, b) => a - b);
      plan = { entries, sinks };
      if (this.plans.size >= 512) this.plans.clear();
      this.plans.set(source, plan);
    }
    return plan;
  }

  select(message: RoutingMessage): Destination[] {
    const plan = this.plan(typeof message.source === 'string' ? message.source : '');
    const best = this.best;
    const { entries, sinks } = plan;
    for (let s = 0; s < sinks.length; s++) best[sinks[s] as number] = -1;
    for (let e = 0; e < entries.length; e++) {
      const entry = entries[e] as Entry;
      if (entry.evaluate(message) !== true) continue;
      const current = best[entry.sinkIndex] ?? -1;
      if (current === -1 || (this.entries[current] as Entry).priority > entry.priority)
        best[entry.sinkIndex] = entry.index;
    }
    const out: Destination[] = [];
    for (let s = 0; s < sinks.length; s++) {
      const i = best[sinks[s] as number] ?? -1;
      if (i >= 0) out.push((this.entries[i] as Entry).destination);
    }
    return out;
  }
}

/**
 * Compiles every route, keeping the invalid ones' errors instead of throwing: what `edgekit routes check` reports.
 * The table holds the valid routes.
 *
 * @example
 * ```ts
 * const { table, invalid } = checkRoutes({ ok: 'FROM /* INTO $upstream', bad: 'FROM /* INTO upstream' });
 * invalid[0]?.error.message // 'invalid route "bad": at column 14: expected $upstream or BrokeredEndpoint(…), found "upstream"'
 * ```
 */
export function checkRoutes(routes: Readonly<Record<string, string | RouteSpec>>): {
  table: RouteTable;
  invalid: InvalidRoute[];
} {
  if (typeof routes !== 'object' || routes === null) throw new TypeError('routes must be an object of name → route');
  const compiled: CompiledRoute[] = [];
  const invalid: InvalidRoute[] = [];
  for (const [name, value] of Object.entries(routes)) {
    try {
      compiled.push(compileEntry(name, value));
    } catch (error) {
      if (error instanceof Error && error.name === 'EdgeKitError') invalid.push({ name, error: error as EdgeKitError });
      else throw error;
    }
  }
  return { table: new CompiledRouteTable(compiled), invalid };
}

/**
 * Compiles a set of named routes (route strings or `{ route, priority, timeToLiveSecs }`) into a {@link RouteTable}.
 * Every route is validated: syntax, condition types, priority (integer 0–9) and TTL (non-negative integer), and that
 * a module sink names a valid module id and input.
 *
 * @throws EdgeKitError `invalid-route` for the first invalid route, its message naming the route and the position.
 * @example
 * ```ts
 * const table = compileRouteTable({
 *   hot: { route: "FROM /messages/modules/sensor/outputs/* WHERE as_number(temperature) > 25 INTO BrokeredEndpoint('/modules/alerts/inputs/in')", priority: 0 },
 *   all: 'FROM /messages/modules/sensor/* INTO $upstream',
 * });
 * table.select(message) // [{ kind: 'module', module: 'alerts', input: 'in', priority: 0, … }, { kind: 'upstream', … }]
 * ```
 */
export function compileRouteTable(routes: Readonly<Record<string, string | RouteSpec>>): RouteTable {
  const { table, invalid } = checkRoutes(routes);
  const first = invalid[0];
  if (first !== undefined) throw first.error;
  return table;
}

export { DEFAULT_ROUTE_PRIORITY };
