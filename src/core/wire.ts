/**
 * JSON forms of the retained and request/reply values the core exchanges besides messages: presence, route tables,
 * the deployment record, method requests and responses. Specified in docs/protocol.md. What comes back from a broker
 * is input like any other: decoders check every member they know as strictly as a writer's arguments are checked,
 * ignore members they do not know (later versions may add some), and throw `decode-failed`.
 */
import { EdgeKitError, messageOf } from '../errors.js';
import { checkName } from '../names.js';
import type { RouteSpec } from '../routing/index.js';
import { checkPriority, checkTimeToLive, MAX_ROUTE_TTL_SECS } from '../routing/spec.js';
import { SDK_VERSION } from '../version.js';
import { hasInvisible } from './visible.js';

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

export const toJsonBytes = (value: unknown): Uint8Array => encoder.encode(JSON.stringify(value));

export function fromJsonBytes(bytes: Uint8Array, what: string): unknown {
  try {
    return JSON.parse(decoder.decode(bytes));
  } catch (error) {
    throw new EdgeKitError('decode-failed', `${what} is not valid UTF-8 JSON`, { cause: error });
  }
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** A module's presence as retained at `presence/<device>/<module>`. */
export interface Presence {
  readonly state: 'online' | 'offline';
  /** Epoch ms of the change, when the writer knew it (a broker-written last will has none). */
  readonly since?: number;
  /** `edgekit/<version>` of the client that wrote it (for an Azure module through the hub, its SDK and the hub's). */
  readonly sdk: string;
  /** Why it went offline: `closed` (graceful) or `connection-lost` (last will). */
  readonly reason?: 'closed' | 'connection-lost';
  /** On a last will: epoch ms when the lost connection was made (the broker writes the will without a time). */
  readonly connectedAt?: number;
}

/** What a presence names as its writer: edgekit's version. */
export const EDGEKIT_SDK = `edgekit/${SDK_VERSION}`;

export const presenceOnline = (now: number, sdk = EDGEKIT_SDK): Presence => ({ state: 'online', since: now, sdk });
export const presenceClosed = (now: number, sdk = EDGEKIT_SDK): Presence => ({
  state: 'offline',
  since: now,
  sdk,
  reason: 'closed',
});
/** The last will of a connection made at `connectedAt`. */
export const presenceLost = (connectedAt: number, sdk = EDGEKIT_SDK): Presence => ({
  state: 'offline',
  sdk,
  reason: 'connection-lost',
  connectedAt,
});

/** Where a deployment stands: being written, written whole, or stopped by a failed write. */
export type DeploymentState = 'pending' | 'applied' | 'failed';

/**
 * The write a deployment failed at: `start` (its `pending` record), `desired` (a module's desired properties),
 * `routes` (the route table) or `finish` (marking it `applied`).
 */
export type DeploymentStep = 'start' | 'desired' | 'routes' | 'finish';

/** Why a deployment is `failed`, as its record keeps it. */
export interface DeploymentFailure {
  readonly step: DeploymentStep;
  /** For step `desired`: whose desired properties could not be written. */
  readonly module?: string;
  /** The error, one line, at most 500 characters, control characters escaped. */
  readonly reason: string;
  /** Epoch ms. */
  readonly at: number;
}

/**
 * The deployment record retained at `deployment/<device>`: the module set of the last deployment and where it stands.
 * A record written before deployments had states (only `modules` and `appliedAt`) reads as `applied`, generation 0.
 */
export interface DeploymentRecord {
  readonly modules: readonly string[];
  /** `pending` while being written (or after a failure that could not be recorded), `applied`, or `failed`. */
  readonly state: DeploymentState;
  /** Counts the device's deployments: one more than the record it replaced; 0 on records without one. */
  readonly generation: number;
  /** Names this deployment; kept while a failed or pending deployment of the same content is retried. */
  readonly id?: string;
  /** `sha256:<hex>` of what the deployment writes (module set, desired properties, routes): a retry matches it. */
  readonly contentHash?: string;
  /** Epoch ms the deployment began. */
  readonly startedAt?: number;
  /** Epoch ms it was applied whole (state `applied`). */
  readonly appliedAt?: number;
  /** Why it failed (state `failed`). */
  readonly failure?: DeploymentFailure;
}

/** A deployment record as read back: the record, and the entries of its module list that are no module id. */
export interface DecodedDeploymentRecord {
  /** The record with only the valid module ids. */
  readonly record: DeploymentRecord;
  /** Entries of `modules` that are not valid module ids, as read, with why; reported, never used as addresses. */
  readonly invalidModules: readonly { readonly text: string; readonly problem: string }[];
}

/** Longest `failure.reason` a deployment record keeps. */
export const MAX_REASON_LENGTH = 500;
/** Most modules one deployment record may list (IoT Edge deploys a few dozen at most). */
const MAX_RECORD_MODULES = 1000;
const DEPLOYMENT_STATES: readonly string[] = ['pending', 'applied', 'failed'];
const DEPLOYMENT_STEPS: readonly string[] = ['start', 'desired', 'routes', 'finish'];
const DEPLOYMENT_ID = /^[A-Za-z0-9][A-Za-z0-9-]{0,63}$/;
const CONTENT_HASH = /^sha256:[0-9a-f]{64}$/;

/** An epoch-ms timestamp: a non-negative safe integer. */
const isTime = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

function recordError(reason: string): EdgeKitError {
  return new EdgeKitError('decode-failed', `deployment record is invalid: ${reason}`);
}

/**
 * Decodes a deployment record strictly: every member it knows must have its type and range (unknown members are
 * ignored, for later versions). Module ids that are not valid names do not fail the record: they are returned in
 * `invalidModules`, so each can be reported where the module would be listed. Absent → `undefined`; anything else
 * invalid → `decode-failed`.
 */
export function decodeDeploymentRecord(bytes: Uint8Array | undefined): DecodedDeploymentRecord | undefined {
  if (bytes === undefined || bytes.length === 0) return undefined;
  const v = fromJsonBytes(bytes, 'deployment record');
  if (!isRecord(v)) throw recordError('not a JSON object');
  if (!Array.isArray(v.modules) || !v.modules.every((m) => typeof m === 'string')) {
    throw recordError('"modules" is not an array of strings');
  }
  if (v.modules.length > MAX_RECORD_MODULES) {
    throw recordError(`it lists ${v.modules.length} modules; at most ${MAX_RECORD_MODULES}`);
  }
  const modules: string[] = [];
  const invalidModules: { text: string; problem: string }[] = [];
  for (const text of v.modules as string[]) {
    try {
      modules.push(checkName('module id', text));
    } catch (error) {
      invalidModules.push({ text, problem: messageOf(error) });
    }
  }
  const state = v.state ?? 'applied';
  if (typeof state !== 'string' || !DEPLOYMENT_STATES.includes(state)) {
    throw recordError('"state" is not "pending", "applied" or "failed"');
  }
  const generation = v.generation ?? 0;
  if (typeof generation !== 'number' || !Number.isSafeInteger(generation) || generation < 0) {
    throw recordError('"generation" is not a non-negative integer');
  }
  if (v.id !== undefined && (typeof v.id !== 'string' || !DEPLOYMENT_ID.test(v.id))) {
    throw recordError('"id" is not 1 to 64 letters, digits and dashes');
  }
  if (v.contentHash !== undefined && (typeof v.contentHash !== 'string' || !CONTENT_HASH.test(v.contentHash))) {
    throw recordError('"contentHash" is not sha256:<64 hex digits>');
  }
  for (const field of ['startedAt', 'appliedAt'] as const) {
    if (v[field] !== undefined && !isTime(v[field])) throw recordError(`"${field}" is not an epoch-ms timestamp`);
  }
  let failure: DeploymentFailure | undefined;
  if (v.failure !== undefined) {
    const f = v.failure;
    if (
      !isRecord(f) ||
      typeof f.step !== 'string' ||
      !DEPLOYMENT_STEPS.includes(f.step) ||
      typeof f.reason !== 'string' ||
      f.reason.length > MAX_REASON_LENGTH ||
      hasInvisible(f.reason) ||
      !isTime(f.at)
    ) {
      throw recordError(
        `"failure" is not { step, reason (at most ${MAX_REASON_LENGTH} characters, no control characters), at }`,
      );
    }
    if (f.module !== undefined) {
      try {
        checkName('module id', f.module);
      } catch (error) {
        throw recordError(`"failure.module": ${messageOf(error)}`);
      }
    }
    failure = {
      step: f.step as DeploymentStep,
      ...(f.module === undefined ? {} : { module: f.module as string }),
      reason: f.reason,
      at: f.at,
    };
  }
  return {
    record: {
      modules,
      state: state as DeploymentState,
      generation,
      ...(v.id === undefined ? {} : { id: v.id as string }),
      ...(v.contentHash === undefined ? {} : { contentHash: v.contentHash as string }),
      ...(v.startedAt === undefined ? {} : { startedAt: v.startedAt as number }),
      ...(v.appliedAt === undefined ? {} : { appliedAt: v.appliedAt as number }),
      ...(failure === undefined ? {} : { failure }),
    },
    invalidModules,
  };
}

/** Longest `sdk` text a presence may carry. */
const MAX_SDK_LENGTH = 100;
/** `sdk` is printable ASCII (a product/version token, maybe with a comment): nothing a terminal would act on. */
const SDK_TEXT = /^[\x20-\x7e]+$/;

/**
 * Decodes a presence strictly: `state` online/offline, `sdk` 1–100 printable ASCII characters, `since` and
 * `connectedAt` epoch-ms timestamps, `reason` `closed` or `connection-lost` (unknown members are ignored).
 * Absent → `undefined`; anything else → `decode-failed`.
 */
export function decodePresence(bytes: Uint8Array | undefined): Presence | undefined {
  if (bytes === undefined || bytes.length === 0) return undefined;
  const v = fromJsonBytes(bytes, 'presence');
  if (!isRecord(v) || (v.state !== 'online' && v.state !== 'offline')) {
    throw new EdgeKitError('decode-failed', 'presence is not { state: "online" | "offline", … }');
  }
  if (typeof v.sdk !== 'string' || v.sdk.length === 0 || v.sdk.length > MAX_SDK_LENGTH || !SDK_TEXT.test(v.sdk)) {
    throw new EdgeKitError('decode-failed', `presence "sdk" is not 1 to ${MAX_SDK_LENGTH} printable ASCII characters`);
  }
  for (const field of ['since', 'connectedAt'] as const) {
    if (v[field] !== undefined && !isTime(v[field])) {
      throw new EdgeKitError('decode-failed', `presence "${field}" is not an epoch-ms timestamp`);
    }
  }
  if (v.reason !== undefined && v.reason !== 'closed' && v.reason !== 'connection-lost') {
    throw new EdgeKitError('decode-failed', 'presence "reason" is not "closed" or "connection-lost"');
  }
  return {
    state: v.state,
    sdk: v.sdk,
    ...(v.since === undefined ? {} : { since: v.since as number }),
    ...(v.reason === undefined ? {} : { reason: v.reason }),
    ...(v.connectedAt === undefined ? {} : { connectedAt: v.connectedAt as number }),
  };
}

/** The route table retained at `routes/<device>`. */
export interface RouteTableDocument {
  readonly routes: Readonly<Record<string, RouteSpec>>;
  /** TTL of messages whose route sets none (0 = none); IoT Edge's storeAndForwardConfiguration. Default 7200. */
  readonly defaultTimeToLiveSecs?: number;
}

/**
 * Decodes a route table strictly: `routes` maps names to `{ route, priority, timeToLiveSecs }` (or a route string),
 * with a non-empty route, priority 0–9 (or the default, 2000000000) and integer TTLs in range. The route text itself
 * is checked when the table is compiled. Absent → no routes; anything else → `decode-failed`.
 */
export function decodeRouteTable(bytes: Uint8Array | undefined): RouteTableDocument {
  if (bytes === undefined || bytes.length === 0) return { routes: {} };
  const v = fromJsonBytes(bytes, 'route table');
  if (!isRecord(v) || !isRecord(v.routes))
    throw new EdgeKitError('decode-failed', 'route table is not { routes: {…} }');
  const routes: Record<string, RouteSpec> = {};
  for (const [name, entry] of Object.entries(v.routes)) {
    // Numbers only, never numeric strings: the table is written by edgekit, not typed by a person.
    const spec = typeof entry === 'string' ? { route: entry } : entry;
    if (
      !isRecord(spec) ||
      typeof spec.route !== 'string' ||
      spec.route.trim() === '' ||
      (spec.priority !== undefined && typeof spec.priority !== 'number') ||
      (spec.timeToLiveSecs !== undefined && typeof spec.timeToLiveSecs !== 'number')
    ) {
      throw new EdgeKitError(
        'decode-failed',
        `route table: route ${JSON.stringify(name)} is not { route, priority, timeToLiveSecs }`,
      );
    }
    try {
      Object.defineProperty(routes, name, {
        value: {
          route: spec.route,
          priority: checkPriority(name, spec.priority),
          timeToLiveSecs: checkTimeToLive(name, spec.timeToLiveSecs),
        },
        enumerable: true,
      });
    } catch (error) {
      throw new EdgeKitError('decode-failed', `route table: ${messageOf(error)}`, { cause: error });
    }
  }
  if (v.defaultTimeToLiveSecs !== undefined) {
    const ttl = v.defaultTimeToLiveSecs;
    if (typeof ttl !== 'number' || !Number.isInteger(ttl) || ttl < 0 || ttl > MAX_ROUTE_TTL_SECS) {
      throw new EdgeKitError(
        'decode-failed',
        `route table: defaultTimeToLiveSecs is not an integer from 0 to ${MAX_ROUTE_TTL_SECS}`,
      );
    }
    return { routes, defaultTimeToLiveSecs: ttl };
  }
  return { routes };
}

/** A direct-method request on `methods/<device>/<module>`. */
export interface MethodRequestWire {
  readonly method: string;
  readonly payload: unknown;
  /** The caller's whole budget; the server's deadline is its arrival time plus this. */
  readonly timeoutInMs: number;
  readonly callerDeviceId?: string;
  readonly callerModuleId?: string;
}

export interface MethodResponseWire {
  readonly status: number;
  readonly payload: unknown;
}

export function decodeMethodRequest(bytes: Uint8Array): MethodRequestWire {
  const v = fromJsonBytes(bytes, 'method request');
  if (!isRecord(v) || typeof v.method !== 'string' || typeof v.timeoutInMs !== 'number' || !(v.timeoutInMs > 0)) {
    throw new EdgeKitError('decode-failed', 'method request is not { method, payload, timeoutInMs }');
  }
  return v as unknown as MethodRequestWire;
}

/**
 * Decodes a method response strictly: `status` an integer from 100 to 999 (as `MethodError` allows), `payload` any
 * JSON value (absent → `null`). Anything else → `decode-failed`.
 */
export function decodeMethodResponse(bytes: Uint8Array): MethodResponseWire {
  const v = fromJsonBytes(bytes, 'method response');
  if (!isRecord(v) || typeof v.status !== 'number' || !Number.isInteger(v.status) || v.status < 100 || v.status > 999) {
    throw new EdgeKitError('decode-failed', 'method response is not { status: 100…999, payload }');
  }
  return { status: v.status, payload: v.payload ?? null };
}
