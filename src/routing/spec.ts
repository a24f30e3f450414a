/**
 * Route entries of a deployment: the `routes` section of `$edgeHub`'s desired properties, with IoT Edge's schema
 * rules. Schema 1.0 allows only route strings; 1.1, 1.2 and 1.3 also allow `{ route, priority, timeToLiveSecs }`.
 * Priority is 0–9 (0 highest); a route without one gets the lowest, 2000000000. A TTL of 0 means the hub's default
 * store-and-forward TTL.
 */
import { EdgeKitError } from '../errors.js';

/** One route entry: the route string, its priority (0–9, lower wins) and the TTL of the messages it delivers. */
export interface RouteSpec {
  readonly route: string;
  readonly priority?: number;
  readonly timeToLiveSecs?: number;
}

/** The priority of a route that does not set one: lower than every explicit priority (IoT Edge's value). */
export const DEFAULT_ROUTE_PRIORITY = 2_000_000_000;
/** The largest TTL a route may set (an unsigned 32-bit number of seconds). */
export const MAX_ROUTE_TTL_SECS = 4_294_967_295;
/** The schema versions of `$edgeHub` desired properties that IoT Edge accepts. */
export const SUPPORTED_SCHEMA_VERSIONS: readonly string[] = ['1.0', '1.1', '1.2', '1.3'];

function specError(name: string, reason: string, field: string): EdgeKitError {
  return new EdgeKitError('invalid-route', `invalid route ${JSON.stringify(name)}: ${reason}`, {
    details: { route: name, field, reason },
  });
}

/** `major.minor` of a schema version string (`1.1`, `1.1.0`), or `undefined` when it is not one IoT Edge accepts. */
export function schemaMinor(schemaVersion: string): number | undefined {
  const match = /^\s*0*1\.(\d+)(\.\d+){0,2}\s*$/.exec(schemaVersion);
  if (match === null) return undefined;
  const minor = Number(match[1]);
  return minor <= 3 ? minor : undefined;
}

function unsignedInteger(value: unknown): number | undefined {
  if (typeof value === 'number')
    return Number.isInteger(value) && value >= 0 && value <= MAX_ROUTE_TTL_SECS ? value : undefined;
  // IoT Edge's JSON reader also converts numeric strings.
  if (typeof value === 'string' && /^\s*\+?\d+\s*$/.test(value)) {
    const n = Number(value);
    return n <= MAX_ROUTE_TTL_SECS ? n : undefined;
  }
  return undefined;
}

/** Checks a priority value: an integer 0–9, or the default 2000000000. */
export function checkPriority(name: string, value: unknown): number {
  if (value === undefined) return DEFAULT_ROUTE_PRIORITY;
  const n = unsignedInteger(value);
  if (n === undefined || (n > 9 && n !== DEFAULT_ROUTE_PRIORITY)) {
    throw specError(
      name,
      `priority must be an integer from 0 (highest) to 9, got ${JSON.stringify(value)}`,
      'priority',
    );
  }
  return n;
}

/** Checks a TTL value: a non-negative integer number of seconds (0: the hub's default TTL). */
export function checkTimeToLive(name: string, value: unknown): number {
  if (value === undefined) return 0;
  const n = unsignedInteger(value);
  if (n === undefined) {
    throw specError(
      name,
      `timeToLiveSecs must be a non-negative integer number of seconds, got ${JSON.stringify(value)}`,
      'timeToLiveSecs',
    );
  }
  return n;
}

/**
 * Reads one entry of a `routes` section: `name` and a route string or `{ route, priority?, timeToLiveSecs? }`, under
 * `schemaVersion` (default `1.1`; under `1.0` only strings are allowed). Checks the name, that the route is not empty,
 * and the priority and TTL; the route text itself is checked by {@link compileRouteTable}.
 *
 * @throws EdgeKitError `invalid-route` naming the route and the field; TypeError/RangeError for a bad schemaVersion.
 * @example
 * ```ts
 * parseRouteSpec('r1', 'FROM /messages/* INTO $upstream')
 * // { route: 'FROM /messages/* INTO $upstream', priority: 2000000000, timeToLiveSecs: 0 }
 * parseRouteSpec('r2', { route: 'FROM /messages/* INTO $upstream', priority: 1, timeToLiveSecs: 3600 })
 * ```
 */
export function parseRouteSpec(name: string, value: unknown, schemaVersion = '1.1'): Required<RouteSpec> {
  if (typeof schemaVersion !== 'string')
    throw new TypeError(`schemaVersion must be a string, got ${typeof schemaVersion}`);
  const minor = schemaMinor(schemaVersion);
  if (minor === undefined) {
    throw new RangeError(
      `unsupported schemaVersion ${JSON.stringify(schemaVersion)}; IoT Edge accepts ${SUPPORTED_SCHEMA_VERSIONS.join(', ')}`,
    );
  }
  if (typeof name !== 'string' || name.trim() === '') {
    throw new EdgeKitError(
      'invalid-route',
      `invalid route name ${JSON.stringify(name)}: a route name must not be empty`,
      {
        details: { route: name, field: 'name', reason: 'empty route name' },
      },
    );
  }
  if (typeof value === 'string') {
    if (value.trim() === '') throw specError(name, 'the route is empty', 'route');
    return { route: value, priority: DEFAULT_ROUTE_PRIORITY, timeToLiveSecs: 0 };
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw specError(
      name,
      `a route must be a string or an object { route, priority, timeToLiveSecs }, got ${value === null ? 'null' : Array.isArray(value) ? 'an array' : typeof value}`,
      'route',
    );
  }
  if (minor === 0) {
    throw specError(
      name,
      'route objects need schemaVersion 1.1 or later; schema 1.0 allows only route strings',
      'route',
    );
  }
  const spec = value as { route?: unknown; priority?: unknown; timeToLiveSecs?: unknown };
  if (typeof spec.route !== 'string' || spec.route.trim() === '') {
    throw specError(name, 'the route object needs a non-empty "route" string', 'route');
  }
  return {
    route: spec.route,
    priority: checkPriority(name, spec.priority),
    timeToLiveSecs: checkTimeToLive(name, spec.timeToLiveSecs),
  };
}

/** The `$edgeHub` desired properties inside a deployment manifest, or `undefined`. */
function edgeHubDesired(manifest: Record<string, unknown>): Record<string, unknown> | undefined {
  const content = manifest.modulesContent ?? manifest.moduleContent;
  if (typeof content !== 'object' || content === null) return undefined;
  const hub = (content as Record<string, unknown>).$edgeHub;
  if (typeof hub !== 'object' || hub === null) return undefined;
  const desired = (hub as Record<string, unknown>)['properties.desired'];
  return typeof desired === 'object' && desired !== null ? (desired as Record<string, unknown>) : undefined;
}

/** Everything read from a manifest's routes section: valid entries, the error of each invalid one, the schema. */
export interface ManifestRoutes {
  readonly schemaVersion: string;
  readonly routes: Record<string, Required<RouteSpec>>;
  readonly invalid: readonly { readonly name: string; readonly error: EdgeKitError }[];
}

/**
 * Reads the routes of a deployment manifest (`modulesContent.$edgeHub["properties.desired"]`) or of `$edgeHub`
 * desired properties given directly (`{ schemaVersion, routes }`), keeping every invalid entry's error instead of
 * stopping at the first. Under schema 1.0 an empty route string is skipped, as IoT Edge does.
 *
 * @throws EdgeKitError `invalid-configuration` when there is no routes section or the schema version is unsupported.
 * @example
 * ```ts
 * const { routes, invalid } = readManifestRoutes(manifest);
 * for (const { name, error } of invalid) console.error(name, error.message);
 * ```
 */
export function readManifestRoutes(manifest: unknown): ManifestRoutes {
  if (typeof manifest !== 'object' || manifest === null || Array.isArray(manifest)) {
    throw new EdgeKitError('invalid-configuration', 'a deployment manifest must be a JSON object');
  }
  const root = manifest as Record<string, unknown>;
  const desired = edgeHubDesired(root) ?? ('routes' in root ? root : undefined);
  if (desired === undefined) {
    throw new EdgeKitError(
      'invalid-configuration',
      'no routes: expected modulesContent.$edgeHub["properties.desired"].routes',
    );
  }
  const schemaVersion = desired.schemaVersion;
  if (typeof schemaVersion !== 'string' || schemaMinor(schemaVersion) === undefined) {
    throw new EdgeKitError(
      'invalid-configuration',
      `$edgeHub schemaVersion ${schemaVersion === undefined ? 'is missing' : `${JSON.stringify(schemaVersion)} is not supported`}; use one of ${SUPPORTED_SCHEMA_VERSIONS.join(', ')}`,
      { details: { schemaVersion } },
    );
  }
  const section = desired.routes ?? {};
  if (typeof section !== 'object' || section === null || Array.isArray(section)) {
    throw new EdgeKitError('invalid-configuration', '$edgeHub routes must be an object of name → route');
  }
  const routes: Record<string, Required<RouteSpec>> = {};
  const invalid: { name: string; error: EdgeKitError }[] = [];
  for (const [name, value] of Object.entries(section)) {
    if (schemaMinor(schemaVersion) === 0 && typeof value === 'string' && value.trim() === '' && name.trim() !== '')
      continue;
    try {
      routes[name] = parseRouteSpec(name, value, schemaVersion);
    } catch (error) {
      if (!(error instanceof EdgeKitError)) throw error;
      invalid.push({ name, error });
    }
  }
  return { schemaVersion, routes, invalid };
}

/**
 * The routes of a deployment manifest, from `modulesContent.$edgeHub["properties.desired"].routes`, checked with the
 * schema version rules (1.0: strings only; 1.1+: strings or objects).
 *
 * @throws EdgeKitError `invalid-route` for the first invalid entry, `invalid-configuration` for a missing section.
 * @example
 * ```ts
 * const routes = routesFromManifest(JSON.parse(readFileSync('deployment.json', 'utf8')));
 * const table = compileRouteTable(routes);
 * ```
 */
export function routesFromManifest(manifest: unknown): Record<string, Required<RouteSpec>> {
  const { routes, invalid } = readManifestRoutes(manifest);
  const first = invalid[0];
  if (first !== undefined) throw first.error;
  return routes;
}

/**
 * Module names of a deployment manifest's `$edgeAgent` (`modules`, not the system modules).
 *
 * @example
 * ```ts
 * explainRoutes(compileRouteTable(routesFromManifest(manifest)), modulesFromManifest(manifest));
 * ```
 */
export function modulesFromManifest(manifest: unknown): string[] {
  if (typeof manifest !== 'object' || manifest === null) return [];
  const root = manifest as Record<string, unknown>;
  const content = root.modulesContent ?? root.moduleContent;
  if (typeof content !== 'object' || content === null) return [];
  const agent = (content as Record<string, unknown>).$edgeAgent;
  if (typeof agent !== 'object' || agent === null) return [];
  const desired = (agent as Record<string, unknown>)['properties.desired'];
  if (typeof desired !== 'object' || desired === null) return [];
  const modules = (desired as Record<string, unknown>).modules;
  return typeof modules === 'object' && modules !== null ? Object.keys(modules) : [];
}
