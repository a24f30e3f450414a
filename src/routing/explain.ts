/**
 * Explains a route table: for each module output known from the routes (and from a manifest's module list), which
 * module inputs and sinks its messages can reach and under which conditions; plus routes whose FROM path matches
 * nothing IoT Edge produces (a typo such as `/messages/events` silently routes nothing).
 */
import type { RouteSink } from './parser.js';
import { normalizeSourcePattern, sourceKey } from './source.js';
import type { CompiledRoute, RouteTable } from './table.js';

/** One way a message source reaches a sink. */
export interface RouteReach {
  readonly routeName: string;
  readonly sink: RouteSink;
  /** The WHERE condition, or `null` when the route always applies. */
  readonly condition: string | null;
  readonly priority: number;
  readonly timeToLiveSecs: number;
}

/** A message source and everything it reaches. */
export interface SourceExplanation {
  /**
   * `output`: one named output of a module; `otherOutputs`: any other output of a module (or messages sent without
   * one); `devices`: telemetry of devices (source `/messages`); `twinChangeNotifications`.
   */
  readonly kind: 'output' | 'otherOutputs' | 'devices' | 'twinChangeNotifications';
  readonly module?: string;
  readonly output?: string;
  /** The message source this entry stands for. */
  readonly source: string;
  /** Routes that fire for it (when their condition is true), in table order. */
  readonly reaches: readonly RouteReach[];
}

/** The explanation of a route table. */
export interface RouteExplanation {
  readonly sources: readonly SourceExplanation[];
  /** Names of routes whose FROM path matches no message source IoT Edge produces. */
  readonly unmatchedRoutes: readonly string[];
}

const MODULE_SOURCE = /^\/messages\/modules\/([^/]+)\/(?:outputs\/([^/]+)\/)?/i;

function reachesOf(routes: readonly CompiledRoute[], source: string): RouteReach[] {
  return routes
    .filter((route) => route.matchesSource(source))
    .map((route) => ({
      routeName: route.name,
      sink: route.sink,
      condition: route.condition,
      priority: route.priority,
      timeToLiveSecs: route.timeToLiveSecs,
    }));
}

/**
 * For each module output, which inputs and sinks it can reach, with conditions. Modules and outputs are taken from
 * the routes' FROM paths and sinks, and from `modules` (for example a manifest's `$edgeAgent` modules).
 *
 * @example
 * ```ts
 * const explanation = explainRoutes(compileRouteTable(routes), modulesFromManifest(manifest));
 * for (const s of explanation.sources) console.log(s.source, s.reaches.map((r) => r.routeName));
 * ```
 */
export function explainRoutes(table: RouteTable, modules: Iterable<string> = []): RouteExplanation {
  const routes = table.routes;
  const outputs = new Map<string, string[]>(); // module → outputs named in FROM paths
  const addModule = (module: string) => {
    if (!outputs.has(module)) outputs.set(module, []);
  };
  for (const module of modules) addModule(module);
  for (const route of routes) {
    const match = MODULE_SOURCE.exec(normalizeSourcePattern(route.source));
    if (match?.[1] !== undefined) {
      addModule(match[1]);
      const output = match[2];
      const known = outputs.get(match[1]) ?? [];
      if (output !== undefined && !known.includes(output)) known.push(output);
    }
    if (route.sink.kind === 'module') addModule(route.sink.module);
  }

  const sources: SourceExplanation[] = [];
  const used = new Set<string>();
  const record = (entry: SourceExplanation) => {
    sources.push(entry);
    for (const reach of entry.reaches) used.add(reach.routeName);
  };
  for (const [module, names] of outputs) {
    for (const output of names) {
      const source = `/messages/modules/${module}/outputs/${output}`;
      record({ kind: 'output', module, output, source, reaches: reachesOf(routes, source) });
    }
    const other = reachesOf(routes, `/messages/modules/${module}/outputs`);
    if (other.length > 0 || names.length === 0) {
      record({ kind: 'otherOutputs', module, source: `/messages/modules/${module}/outputs/*`, reaches: other });
    }
  }
  const devices = reachesOf(routes, '/messages');
  if (devices.length > 0) record({ kind: 'devices', source: '/messages', reaches: devices });
  if (routes.some((r) => sourceKey(normalizeSourcePattern(r.source)).startsWith('/TWINCHANGENOTIFICATIONS/'))) {
    record({
      kind: 'twinChangeNotifications',
      source: '/twinChangeNotifications',
      reaches: reachesOf(routes, '/twinChangeNotifications'),
    });
  }
  // A route that names a module nobody declared still matches that module's messages: it is not unmatched.
  const unmatchedRoutes = routes
    .filter((route) => !used.has(route.name) && !MODULE_SOURCE.test(normalizeSourcePattern(route.source)))
    .filter((route) => !sourceKey(normalizeSourcePattern(route.source)).startsWith('/MESSAGES/MODULES/'))
    .map((route) => route.name);
  return { sources, unmatchedRoutes };
}
