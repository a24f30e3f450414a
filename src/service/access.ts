/**
 * Least privilege from a deployment: what each module of a device may do on the broker, and the operator, stated in
 * transport addresses (the same addresses the core uses, docs/architecture.md). Each broker transport renders an
 * {@link AccessPlan} into its broker's own mechanism (Mosquitto's dynamic-security roles, RabbitMQ's permissions),
 * so the broker — not the module's code — enforces it.
 */
import type { AccessPlan, Principal } from '../access.js';
import { checkName, moduleIdentity, operatorIdentity } from '../names.js';
import { compileRouteTable } from '../routing/index.js';
import { normalizeSourcePattern, sourceKey } from '../routing/source.js';
import type { Deployment } from './deployment.js';

export type { AccessPlan, Principal } from '../access.js';

/** Options for {@link planAccess}. */
export interface PlanAccessOptions {
  /** The operator's name; its identity and user name are `$operator/<name>`. Default `operator`. */
  readonly operator?: string;
  /**
   * Which inputs a module may publish to: `routes` (default) — exactly those its routes reach, so a route change
   * needs the plan rendered and applied again; `device` — any input of a module of its device, so routes may change
   * freely at the cost of a compromised module reaching every input of its device.
   */
  readonly publish?: 'routes' | 'device';
  /** Replicas by module id: each replica gets its own user and client id, with the module's identity and rights. */
  readonly replicas?: Readonly<Record<string, readonly string[]>>;
}

/** Does a route with FROM path `source` accept messages from some output of `moduleId`? */
function routeReaches(source: string, moduleId: string): boolean {
  const route = sourceKey(normalizeSourcePattern(source));
  const module = sourceKey(`/messages/modules/${moduleId}/`);
  return module.startsWith(route) || route.startsWith(module);
}

/**
 * The access plan of a device's deployment: one principal per module (and per replica), plus the operator.
 *
 * @example
 * ```ts
 * const plan = planAccess(readDeployment(manifest), 'gw-1');
 * plan.principals.find((p) => p.username === 'gw-1/filter')?.publish; // ['inputs/gw-1/…', 'upstream/gw-1', …]
 * ```
 */
export function planAccess(deployment: Deployment, deviceId: string, options: PlanAccessOptions = {}): AccessPlan {
  checkName('device id', deviceId);
  if (typeof options !== 'object' || options === null) throw new TypeError('planAccess: options must be an object');
  const publishMode = options.publish ?? 'routes';
  if (publishMode !== 'routes' && publishMode !== 'device') {
    throw new RangeError(`planAccess: publish must be 'routes' or 'device', got ${String(publishMode)}`);
  }
  const table = compileRouteTable(deployment.routes);
  const principals: Principal[] = [];
  for (const moduleId of [...deployment.modules].sort()) {
    const identity = moduleIdentity(deviceId, moduleId);
    const publish = new Set<string>([`deadletter/${deviceId}/${moduleId}`]);
    if (publishMode === 'device') {
      publish.add(`inputs/${deviceId}/*/*`);
      publish.add(`upstream/${deviceId}`);
    } else {
      for (const route of table.routes) {
        if (!routeReaches(route.source, moduleId)) continue;
        publish.add(
          route.sink.kind === 'upstream'
            ? `upstream/${deviceId}`
            : `inputs/${deviceId}/${route.sink.module}/${route.sink.input}`,
        );
      }
    }
    const rights = {
      kind: 'module' as const,
      identity,
      consume: [`inputs/${deviceId}/${moduleId}/*`],
      publish: [...publish].sort(),
      serve: [`methods/${deviceId}/${moduleId}`],
      request: [`methods/${deviceId}/*`],
      readRetained: [
        `twin/${deviceId}/${moduleId}/desired`,
        `twin/${deviceId}/${moduleId}/reported`,
        `routes/${deviceId}`,
        // Presence of the device's modules: an invocation checks its target is online first.
        `presence/${deviceId}/*`,
      ],
      writeRetained: [`twin/${deviceId}/${moduleId}/reported`, `presence/${deviceId}/${moduleId}`],
      all: false,
    };
    principals.push({ ...rights, username: identity, clientId: identity });
    for (const replica of options.replicas?.[moduleId] ?? []) {
      checkName('replica id', replica);
      principals.push({ ...rights, username: `${identity}/${replica}`, clientId: `${identity}/${replica}` });
    }
  }
  for (const moduleId of Object.keys(options.replicas ?? {})) {
    if (!deployment.modules.includes(moduleId)) {
      throw new RangeError(
        `planAccess: replicas name ${JSON.stringify(moduleId)}, which the deployment does not deploy`,
      );
    }
  }
  const operator = operatorIdentity(options.operator ?? 'operator');
  principals.push({
    kind: 'operator',
    username: operator,
    identity: operator,
    clientId: undefined,
    consume: [],
    publish: [],
    serve: [],
    request: [],
    readRetained: [],
    writeRetained: [],
    all: true,
  });
  return { deviceId, principals };
}
