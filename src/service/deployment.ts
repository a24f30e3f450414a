/**
 * Reading an IoT Edge deployment manifest into what edgekit applies — the route table of `$edgeHub`, the module set
 * of `$edgeAgent` and each module's desired properties — checking all of it first, so that a manifest with any
 * problem is rejected whole, with every problem named, before anything changes.
 */
import { checkTwin, encodeTwin, type JsonObject } from '../core/twin.js';
import { EdgeKitError, messageOf } from '../errors.js';
import { checkName } from '../names.js';
import { checkRoutes, modulesFromManifest, type RouteSpec, readManifestRoutes } from '../routing/index.js';
import { checkTimeToLive } from '../routing/spec.js';

/** One reason a manifest was rejected; `path` names the place in the manifest. */
export interface DeploymentProblem {
  /** Where: `routes.<name>`, `modules.<name>`, `<module>.properties.desired`, … */
  readonly path: string;
  readonly message: string;
  /** For an invalid route: its text and the 1-based line and column of the problem. */
  readonly route?: string;
  readonly line?: number;
  readonly column?: number;
}

/** A checked deployment, ready to apply. */
export interface Deployment {
  /** Module ids of `$edgeAgent`'s `modules` (system modules excluded). */
  readonly modules: readonly string[];
  readonly routes: Readonly<Record<string, Required<RouteSpec>>>;
  /** `$edgeHub` `storeAndForwardConfiguration.timeToLiveSecs`, when given. */
  readonly defaultTimeToLiveSecs?: number;
  /** Desired properties by module id, for the modules whose section has `properties.desired`. */
  readonly desired: Readonly<Record<string, JsonObject>>;
  /** Things that are allowed but probably not meant, e.g. a route into a module the manifest does not deploy. */
  readonly warnings: readonly string[];
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** `properties.desired` of a `modulesContent` section: IoT Edge's dotted key, or a nested `properties.desired`. */
function desiredOf(section: Record<string, unknown>): unknown {
  if ('properties.desired' in section) return section['properties.desired'];
  const properties = section.properties;
  return isObject(properties) ? properties.desired : undefined;
}

/**
 * Checks a deployment manifest and returns what it deploys. Collects every problem — invalid routes with their
 * position, invalid module names, desired properties that break IoT Hub's twin rules — and throws one
 * `EdgeKitError('invalid-configuration')` listing them all (in `details.problems`) when there is any.
 *
 * @example
 * ```ts
 * const deployment = readDeployment(JSON.parse(readFileSync('deployment.json', 'utf8')));
 * console.log(deployment.modules, Object.keys(deployment.routes));
 * ```
 */
export function readDeployment(manifest: unknown): Deployment {
  if (!isObject(manifest)) {
    throw new EdgeKitError('invalid-configuration', 'a deployment manifest must be a JSON object');
  }
  const content = manifest.modulesContent ?? manifest.moduleContent;
  if (!isObject(content)) {
    throw new EdgeKitError('invalid-configuration', 'a deployment manifest needs a "modulesContent" object');
  }
  const problems: DeploymentProblem[] = [];
  const warnings: string[] = [];

  // $edgeAgent: the module set.
  const modules: string[] = [];
  for (const name of modulesFromManifest(manifest)) {
    try {
      modules.push(checkName('module id', name));
    } catch (error) {
      problems.push({ path: `$edgeAgent.modules.${name}`, message: messageOf(error) });
    }
  }
  if (modules.length === 0 && problems.length === 0) {
    warnings.push('$edgeAgent deploys no modules (modulesContent.$edgeAgent["properties.desired"].modules)');
  }

  // $edgeHub: routes, every invalid one reported with its position.
  let routes: Record<string, Required<RouteSpec>> = {};
  let defaultTimeToLiveSecs: number | undefined;
  try {
    const read = readManifestRoutes(manifest);
    for (const { name, error } of read.invalid) problems.push(routeProblem(name, error));
    const checked = checkRoutes(read.routes);
    for (const { name, error } of checked.invalid) problems.push(routeProblem(name, error));
    routes = read.routes;
    for (const route of checked.table.routes) {
      for (const warning of route.warnings) warnings.push(`route ${route.name}: ${warning}`);
      if (route.sink.kind === 'module' && modules.length > 0 && !modules.includes(route.sink.module)) {
        warnings.push(`route ${route.name} sends to module ${route.sink.module}, which $edgeAgent does not deploy`);
      }
    }
    const hub = isObject(content.$edgeHub) ? desiredOf(content.$edgeHub) : undefined;
    const storeAndForward = isObject(hub) ? hub.storeAndForwardConfiguration : undefined;
    if (isObject(storeAndForward) && storeAndForward.timeToLiveSecs !== undefined) {
      try {
        defaultTimeToLiveSecs = checkTimeToLive('storeAndForwardConfiguration', storeAndForward.timeToLiveSecs);
      } catch (error) {
        problems.push({ path: '$edgeHub.storeAndForwardConfiguration.timeToLiveSecs', message: messageOf(error) });
      }
    }
  } catch (error) {
    problems.push({ path: '$edgeHub', message: messageOf(error) });
  }

  // Each module's desired properties.
  const desired: Record<string, JsonObject> = {};
  for (const [name, section] of Object.entries(content)) {
    if (name === '$edgeAgent' || name === '$edgeHub') continue;
    const path = `${name}.properties.desired`;
    try {
      checkName('module id', name);
    } catch (error) {
      problems.push({ path: name, message: messageOf(error) });
      continue;
    }
    if (!isObject(section)) {
      problems.push({ path: name, message: 'a module section must be an object with "properties.desired"' });
      continue;
    }
    const document = desiredOf(section);
    if (document === undefined) continue;
    try {
      checkTwin(document, path, { allowNull: false });
      encodeTwin({ version: 1, properties: document }, path); // the 32 KB limit
      desired[name] = document;
    } catch (error) {
      problems.push({ path, message: messageOf(error) });
    }
    if (!modules.includes(name)) warnings.push(`${name} has desired properties but $edgeAgent does not deploy it`);
  }

  if (problems.length > 0) {
    const list = problems.map((p) => `  ${p.path}: ${p.message}`).join('\n');
    throw new EdgeKitError(
      'invalid-configuration',
      `the deployment manifest has ${problems.length} problem${problems.length === 1 ? '' : 's'}; nothing was applied:\n${list}`,
      { details: { problems } },
    );
  }
  return {
    modules,
    routes,
    ...(defaultTimeToLiveSecs === undefined ? {} : { defaultTimeToLiveSecs }),
    desired,
    warnings,
  };
}

function routeProblem(name: string, error: unknown): DeploymentProblem {
  if (!(error instanceof EdgeKitError)) return { path: `routes.${name}`, message: messageOf(error) };
  const d = error.details;
  return {
    path: `routes.${name}`,
    message: error.message,
    ...(typeof d.text === 'string' ? { route: d.text } : {}),
    ...(typeof d.line === 'number' ? { line: d.line } : {}),
    ...(typeof d.column === 'number' ? { column: d.column } : {}),
  };
}
