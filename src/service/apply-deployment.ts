/**
 * Applying a checked deployment to a device so that a write the broker refuses part-way leaves a deployment that is
 * visibly unfinished and that running the same deployment again completes — not a device whose desired properties
 * are new while its routes and record are old. Brokers cannot roll a retained write back (the refused write may be
 * the one that would undo), so the record is written first, as `pending`, and marked `applied` last.
 */
import { createHash, randomUUID } from 'node:crypto';
import type { Clock } from '../clock.js';
import { encodeTwin, type JsonObject } from '../core/twin.js';
import { visible } from '../core/visible.js';
import {
  type DeploymentFailure,
  type DeploymentRecord,
  type DeploymentStep,
  decodeDeploymentRecord,
  MAX_REASON_LENGTH,
  toJsonBytes,
} from '../core/wire.js';
import { abortError, EdgeKitError, isEdgeKitError, messageOf } from '../errors.js';
import { addresses } from '../names.js';
import type { TransportConnection } from '../transport.js';
import type { Deployment } from './deployment.js';
import { routeTableOf, storedDesired } from './operations.js';

/** What applying a deployment wrote. */
export interface AppliedDeployment {
  readonly id: string;
  readonly generation: number;
  /** Whether it completed a `pending` or `failed` deployment of the same content (same id and generation). */
  readonly resumed: boolean;
  /** The new desired version of each module whose desired properties were written. */
  readonly desiredVersions: Readonly<Record<string, number>>;
  /** Stored documents that were invalid (or at the largest version) and were replaced, as warnings. */
  readonly warnings: readonly string[];
}

/** JSON with object members in key order, so equal content always gives equal text (and hash). */
function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (typeof value === 'object' && value !== null) {
    const entries = Object.keys(value)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonical((value as Record<string, unknown>)[k])}`);
    return `{${entries.join(',')}}`;
  }
  return JSON.stringify(value);
}

const STEP_TEXT: Readonly<Record<DeploymentStep, string>> = {
  start: 'writing the pending deployment record',
  desired: 'writing desired properties',
  routes: 'writing the route table',
  finish: 'marking the deployment applied',
};

/** A failure's reason as a record keeps it: the first line, control characters escaped, bounded. */
function reasonOf(error: unknown): string {
  const text = visible(messageOf(error).split('\n')[0] ?? '');
  return text.length > MAX_REASON_LENGTH ? `${text.slice(0, MAX_REASON_LENGTH - 1)}…` : text;
}

/**
 * Applies `deployment` to `deviceId`: the `pending` record (a new id and generation, or the same ones when the record
 * is a `pending`/`failed` deployment of the same content), each changed desired document, the route table, then the
 * record marked `applied`. A failed write marks the record `failed` with the step and reason (when the broker takes
 * that write) and rejects naming the step; running the same deployment again completes it, rewriting only what
 * differs.
 */
export async function applyDeploymentTo(
  conn: TransportConnection,
  clock: Clock,
  deviceId: string,
  deployment: Deployment,
  signal: AbortSignal | undefined,
): Promise<AppliedDeployment> {
  const recordKey = addresses.deployment(deviceId);
  const now = clock.now();
  // Everything is read (at once) and encoded before the first write.
  const [previousBytes, ...currentDesired] = await Promise.all([
    conn.getRetained(recordKey),
    ...Object.keys(deployment.desired).map((moduleId) => conn.getRetained(addresses.desired(deviceId, moduleId))),
  ]);
  let previous: DeploymentRecord | undefined;
  try {
    previous = decodeDeploymentRecord(previousBytes)?.record;
  } catch {
    previous = undefined; // an invalid record is replaced; its generation is lost, so counting starts again
  }
  const routes = routeTableOf(
    deployment.routes,
    deployment.defaultTimeToLiveSecs === undefined ? {} : { defaultTimeToLiveSecs: deployment.defaultTimeToLiveSecs },
  );
  const contentHash = `sha256:${createHash('sha256')
    .update(canonical({ modules: deployment.modules, desired: deployment.desired, routes }))
    .digest('hex')}`;
  const resumed =
    previous !== undefined &&
    previous.state !== 'applied' &&
    previous.id !== undefined &&
    previous.contentHash === contentHash;
  const id = resumed && previous?.id !== undefined ? previous.id : randomUUID();
  const generation = resumed && previous ? previous.generation : (previous?.generation ?? 0) + 1;

  const warnings: string[] = [];
  const writes = Object.entries(deployment.desired).flatMap(([moduleId, properties], i) => {
    const what = `desired properties of ${deviceId}/${moduleId} on the broker`;
    const stored = storedDesired(currentDesired[i], what, now);
    // Unchanged documents are not written again: a module would see a new version with nothing in it.
    if (stored.usable && canonical(stored.doc.properties) === canonical(properties)) return [];
    let version: number;
    if (stored.usable) version = stored.doc.version + 1;
    else {
      version = stored.nextVersion;
      warnings.push(
        `${stored.error.message}; replaced with version ${version}` +
          (stored.why === 'exhausted' ? ': restart the module, which ignores any other version' : ''),
      );
    }
    const doc = { version, properties: properties as JsonObject };
    return [
      {
        moduleId,
        key: addresses.desired(deviceId, moduleId),
        version,
        bytes: encodeTwin(doc, `desired properties of ${moduleId}`),
      },
    ];
  });

  const base = { modules: deployment.modules, id, generation, contentHash, startedAt: now };
  const record = (fields: Partial<DeploymentRecord>): Uint8Array => toJsonBytes({ ...base, ...fields });
  const desiredVersions: Record<string, number> = {};
  let step: DeploymentStep = 'start';
  let module: string | undefined;
  try {
    if (signal?.aborted) throw abortError(signal);
    await conn.setRetained(recordKey, record({ state: 'pending' }));
    // Desired properties first, routes next: a route into a module never reaches it before its configuration.
    step = 'desired';
    for (const write of writes) {
      if (signal?.aborted) throw abortError(signal);
      module = write.moduleId;
      await conn.setRetained(write.key, write.bytes);
      desiredVersions[write.moduleId] = write.version;
    }
    module = undefined;
    if (signal?.aborted) throw abortError(signal);
    step = 'routes';
    await conn.setRetained(addresses.routes(deviceId), toJsonBytes(routes));
    step = 'finish';
    await conn.setRetained(recordKey, record({ state: 'applied', appliedAt: clock.now() }));
  } catch (error) {
    throw await failed(conn, clock, { deviceId, id, generation, step, module, error, signal, record });
  }
  return { id, generation, resumed, desiredVersions, warnings };
}

/** Marks the deployment failed (when the broker takes it, and unless aborted) and builds the error to throw. */
async function failed(
  conn: TransportConnection,
  clock: Clock,
  f: {
    deviceId: string;
    id: string;
    generation: number;
    step: DeploymentStep;
    module: string | undefined;
    error: unknown;
    signal: AbortSignal | undefined;
    record: (fields: Partial<DeploymentRecord>) => Uint8Array;
  },
): Promise<EdgeKitError> {
  const reason = reasonOf(f.error);
  let state: 'failed' | 'pending' | 'unchanged' = 'unchanged';
  if (f.step !== 'start') {
    state = 'pending';
    // After an abort the caller wants nothing more done; the record says `pending`, which is true.
    if (!f.signal?.aborted) {
      const failure: DeploymentFailure = {
        step: f.step,
        ...(f.module === undefined ? {} : { module: f.module }),
        reason,
        at: clock.now(),
      };
      try {
        await conn.setRetained(addresses.deployment(f.deviceId), f.record({ state: 'failed', failure }));
        state = 'failed';
      } catch {
        // the broker refused this write too (or the connection is gone): the record stays `pending`
      }
    }
  }
  const what = `deployment ${f.generation} (${f.id}) to ${f.deviceId}`;
  const where = `${STEP_TEXT[f.step]}${f.module === undefined ? '' : ` of ${f.module}`}`;
  const outcome =
    state === 'unchanged'
      ? 'nothing was applied'
      : `it is marked ${state}; apply the same deployment again to complete it`;
  const code = isEdgeKitError(f.error) ? f.error.code : 'transport-error';
  return new EdgeKitError(code, `${what} failed ${where}: ${reason}; ${outcome}`, {
    cause: f.error,
    details: {
      deviceId: f.deviceId,
      deploymentId: f.id,
      generation: f.generation,
      step: f.step,
      ...(f.module === undefined ? {} : { module: f.module }),
      state,
    },
  });
}
