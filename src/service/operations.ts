/**
 * Operator-side operations over one transport connection: deploy a route table, update desired properties, read
 * twins and presence, inject messages, invoke methods. The test hub and the conformance suite use them; the
 * ServiceClient builds on them.
 */
import type { Clock } from '../clock.js';
import { typed } from '../codecs/schema.js';
import { invokeMethod } from '../core/client.js';
import { type EnvelopeHeader, encodeEnvelope, MAX_MESSAGE_BYTES } from '../core/envelope.js';
import {
  checkTwin,
  decodeTwin,
  encodeTwin,
  isTwinVersion,
  type JsonObject,
  MAX_TWIN_VERSION,
  mergePatch,
  type TwinDocument,
} from '../core/twin.js';
import type { MethodResult } from '../core/types.js';
import { decodePresence, type Presence, type RouteTableDocument, toJsonBytes } from '../core/wire.js';
import { EdgeKitError, isEdgeKitError, messageOf } from '../errors.js';
import { addresses, checkName } from '../names.js';
import { compileRouteTable, type RouteSpec } from '../routing/index.js';
import type { TransportConnection } from '../transport.js';

/** Where a device's link to the cloud stands: `connected`, `disconnected`, or `undefined` when it has no bridge. */
export type LinkState = 'connected' | 'disconnected';

/**
 * Reads the retained link state at `link/<device>`, as a Mosquitto bridge writes it (`1` up, `0` down); `undefined`
 * when there is none. Any other value is a `decode-failed` error.
 */
export function decodeLink(bytes: Uint8Array | undefined): LinkState | undefined {
  if (bytes === undefined) return undefined;
  if (bytes.length === 1 && bytes[0] === 0x31) return 'connected';
  if (bytes.length === 1 && bytes[0] === 0x30) return 'disconnected';
  throw new EdgeKitError('decode-failed', `a link state is "1" or "0", got ${bytes.length} bytes`);
}

/** Route tables as users write them: name → route string or route object. */
export type RoutesInput = Readonly<Record<string, string | RouteSpec>>;

/** The route table document a deployment retains: every route validated and written with its priority and TTL. */
export function routeTableOf(
  routes: RoutesInput,
  options: { defaultTimeToLiveSecs?: number } = {},
): RouteTableDocument {
  const table = compileRouteTable(routes);
  return {
    routes: Object.fromEntries(
      table.routes.map((r) => [r.name, { route: r.text, priority: r.priority, timeToLiveSecs: r.timeToLiveSecs }]),
    ),
    ...(options.defaultTimeToLiveSecs === undefined ? {} : { defaultTimeToLiveSecs: options.defaultTimeToLiveSecs }),
  };
}

/** Validates every route, then retains the table for the device; a bad table changes nothing. */
export async function deployRoutes(
  conn: TransportConnection,
  deviceId: string,
  routes: RoutesInput,
  options: { defaultTimeToLiveSecs?: number } = {},
): Promise<void> {
  checkName('device id', deviceId);
  await conn.setRetained(addresses.routes(deviceId), toJsonBytes(routeTableOf(routes, options)));
}

/** Reads both twin sections of a module. */
export async function readTwin(
  conn: TransportConnection,
  deviceId: string,
  moduleId: string,
): Promise<{ desired: TwinDocument<JsonObject>; reported: TwinDocument<JsonObject> }> {
  const [desired, reported] = await Promise.all([
    conn.getRetained(addresses.desired(deviceId, moduleId)),
    conn.getRetained(addresses.reported(deviceId, moduleId)),
  ]);
  return {
    desired: decodeStored(desired, `desired properties of ${deviceId}/${moduleId} on the broker`, deviceId, moduleId),
    reported: decodeStored(reported, `reported properties of ${deviceId}/${moduleId} on the broker`),
  };
}

/** Decodes a stored twin document; an invalid desired one is refused with the command that replaces it. */
function decodeStored(
  bytes: Uint8Array | undefined,
  what: string,
  deviceId?: string,
  moduleId?: string,
): TwinDocument<JsonObject> {
  try {
    return decodeTwin(bytes, what);
  } catch (error) {
    if (deviceId === undefined || moduleId === undefined || !isEdgeKitError(error)) throw error;
    throw invalidDesired(deviceId, moduleId, error, 'they cannot be shown');
  }
}

/**
 * A module's desired document as a writer finds it: valid and followed by `version + 1`, or not usable as the base of
 * the next version — invalid (undecodable, or a version out of range) or at {@link MAX_TWIN_VERSION} — with the
 * version a replacement gets.
 */
export type StoredDesired =
  | { readonly usable: true; readonly doc: TwinDocument<JsonObject> }
  | {
      readonly usable: false;
      /** `invalid`: the stored bytes are no valid document; `exhausted`: valid, at the largest version. */
      readonly why: 'invalid' | 'exhausted';
      readonly error: EdgeKitError;
      /** The version a document replacing it gets (see {@link replacementVersion}). */
      readonly nextVersion: number;
    };

/**
 * The version for a document that replaces an unusable one. A running module ignores every version at or below the
 * last valid one it took, which the broker no longer tells, so the replacement gets a version above any a module can
 * have reached: at least one above the stored version when that is still a number in range, and at least the current
 * time in epoch ms — counting up by one per update from 1, or from an earlier replacement, stays below the clock
 * unless updates came faster than one per millisecond. It stays far below {@link MAX_TWIN_VERSION} (about 285,000
 * years of milliseconds).
 */
export function replacementVersion(bytes: Uint8Array | undefined, now: number): number {
  let stored = 0;
  try {
    const value: unknown = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
    const version = (value as { version?: unknown } | null)?.version;
    if (isTwinVersion(version) && version < MAX_TWIN_VERSION) stored = version + 1;
  } catch {
    // nothing readable: the clock decides
  }
  const clock = Number.isSafeInteger(now) && now > 0 ? Math.min(now, MAX_TWIN_VERSION) : 1;
  return Math.max(stored, clock, 1);
}

/** Classifies the stored desired document (see {@link StoredDesired}). */
export function storedDesired(bytes: Uint8Array | undefined, what: string, now: number): StoredDesired {
  let doc: TwinDocument<JsonObject>;
  try {
    doc = decodeTwin(bytes, what);
  } catch (error) {
    const e = isEdgeKitError(error) ? error : new EdgeKitError('decode-failed', messageOf(error), { cause: error });
    return { usable: false, why: 'invalid', error: e, nextVersion: replacementVersion(bytes, now) };
  }
  if (doc.version < MAX_TWIN_VERSION) return { usable: true, doc };
  return {
    usable: false,
    why: 'exhausted',
    error: new EdgeKitError('twin-limit', `${what}: version ${doc.version} is the largest there is`),
    nextVersion: replacementVersion(undefined, now),
  };
}

/** The command line that replaces a module's desired document whole. */
const replaceCommand = (deviceId: string, moduleId: string) =>
  `edgekit twin set ${deviceId}/${moduleId} <json | @file> --replace`;

/**
 * The error a patch gets when the stored desired document cannot be the base of the next version: a patch cannot be
 * merged into a document whose content is unknown, and an update the module would ignore must not look like success.
 */
function invalidDesired(deviceId: string, moduleId: string, cause: EdgeKitError, consequence: string): EdgeKitError {
  const fix = replaceCommand(deviceId, moduleId);
  const message =
    cause.code === 'twin-limit'
      ? `${cause.message}; ${consequence}. A running module ignores every other version: replace the document ` +
        `(${fix}, or ServiceClient.replaceDesired) and restart the module`
      : `${cause.message}; ${consequence}. Replace the document whole: ${fix} ` +
        '(or ServiceClient.replaceDesired, or deploy again)';
  return new EdgeKitError(cause.code === 'twin-limit' ? 'twin-limit' : 'decode-failed', message, {
    cause,
    details: { deviceId, moduleId, replaceWith: fix },
  });
}

/**
 * Merges `patch` into a module's desired properties and bumps the version. With `ifVersion`, fails with
 * `version-conflict` if the document moved (checked before writing; brokers offer no atomic compare-and-set, so two
 * writers racing within one round trip can still both succeed). A stored document that is invalid, or at the largest
 * version, is refused (`decode-failed`, `twin-limit`) with the command that replaces it; nothing is written.
 */
export async function updateDesired(
  conn: TransportConnection,
  deviceId: string,
  moduleId: string,
  patch: JsonObject,
  options: { ifVersion?: number; now?: number } = {},
): Promise<TwinDocument<JsonObject>> {
  checkName('device id', deviceId);
  checkName('module id', moduleId);
  checkTwin(patch, 'desired patch', { allowNull: true });
  const key = addresses.desired(deviceId, moduleId);
  const what = `desired properties of ${deviceId}/${moduleId} on the broker`;
  const stored = storedDesired(await conn.getRetained(key), what, options.now ?? Date.now());
  if (!stored.usable) throw invalidDesired(deviceId, moduleId, stored.error, 'nothing was written');
  const current = stored.doc;
  checkIfVersion(deviceId, moduleId, options.ifVersion, current.version);
  const next = { version: current.version + 1, properties: mergePatch(current.properties, patch) };
  await conn.setRetained(key, encodeTwin(next, 'desired properties'));
  return next;
}

/**
 * Replaces a module's desired properties whole (no merge: members not in `properties` are gone) with the next
 * version. A stored document that is invalid or at the largest version is replaced too, with
 * {@link replacementVersion}; with `ifVersion` that is a `version-conflict` (it is at no version).
 */
export async function replaceDesired(
  conn: TransportConnection,
  deviceId: string,
  moduleId: string,
  properties: JsonObject,
  options: { ifVersion?: number; now?: number } = {},
): Promise<TwinDocument<JsonObject>> {
  checkName('device id', deviceId);
  checkName('module id', moduleId);
  checkTwin(properties, 'desired properties', { allowNull: false });
  const key = addresses.desired(deviceId, moduleId);
  const what = `desired properties of ${deviceId}/${moduleId}`;
  const stored = storedDesired(await conn.getRetained(key), what, options.now ?? Date.now());
  checkIfVersion(deviceId, moduleId, options.ifVersion, stored.usable ? stored.doc.version : undefined);
  const next = { version: stored.usable ? stored.doc.version + 1 : stored.nextVersion, properties };
  await conn.setRetained(key, encodeTwin(next, 'desired properties'));
  return next;
}

/** Throws `version-conflict` unless the document is at `expected` (`actual` undefined: it is invalid). */
function checkIfVersion(deviceId: string, moduleId: string, expected: number | undefined, actual: number | undefined) {
  if (expected === undefined || expected === actual) return;
  const at = actual === undefined ? 'invalid (at no version)' : `at version ${actual}`;
  throw new EdgeKitError(
    'version-conflict',
    `desired properties of ${deviceId}/${moduleId} are ${at}, not ${expected}`,
    { details: { expected, actual: actual ?? null } },
  );
}

/** A module's presence, or `undefined` if it never connected. */
export async function readPresence(
  conn: TransportConnection,
  deviceId: string,
  moduleId: string,
): Promise<Presence | undefined> {
  return decodePresence(await conn.getRetained(addresses.presence(deviceId, moduleId)));
}

/** Options for injecting a message into a module's input (`TestHub.send`). */
export interface InjectOptions {
  readonly properties?: Readonly<Record<string, string>>;
  readonly messageId?: string;
  readonly correlationId?: string;
  readonly contentType?: string;
  readonly contentEncoding?: string;
  readonly ttlInMs?: number;
  /** Who it appears to come from; default `$service`. */
  readonly sourceModuleId?: string;
  readonly sourceOutput?: string;
}

/** Publishes a message straight into a module's input, as if a route had sent it there. */
export async function injectMessage(
  conn: TransportConnection,
  clock: Clock,
  target: { deviceId: string; moduleId: string; input: string },
  body: Uint8Array,
  options: InjectOptions = {},
): Promise<string> {
  checkName('device id', target.deviceId);
  checkName('module id', target.moduleId);
  checkName('input', target.input);
  const messageId = options.messageId ?? globalThis.crypto.randomUUID();
  const header: EnvelopeHeader = {
    messageId,
    ...(options.correlationId === undefined ? {} : { correlationId: options.correlationId }),
    ...(options.contentType === undefined ? {} : { contentType: options.contentType }),
    ...(options.contentEncoding === undefined ? {} : { contentEncoding: options.contentEncoding }),
    createdAt: clock.now(),
    sourceDeviceId: target.deviceId,
    sourceModuleId: options.sourceModuleId ?? '$service',
    ...(options.sourceOutput === undefined ? {} : { sourceOutput: options.sourceOutput }),
    properties: options.properties ?? {},
  };
  const bytes = encodeEnvelope(header, body);
  if (bytes.length > MAX_MESSAGE_BYTES) {
    throw new EdgeKitError('message-too-large', `message is ${bytes.length} bytes; the limit is ${MAX_MESSAGE_BYTES}`);
  }
  await conn.publish(
    addresses.input(target.deviceId, target.moduleId, target.input),
    bytes,
    options.ttlInMs === undefined ? undefined : { ttlInMs: options.ttlInMs },
  );
  return messageId;
}

/**
 * Invokes a method as an operator (no calling module). A presence or response on the broker that is invalid gives
 * status 502 with why, as the answer of a bad gateway would: the caller gets a result, never a decoding exception.
 */
export async function invokeAsService(
  conn: TransportConnection,
  clock: Clock,
  target: { deviceId: string; moduleId: string },
  method: string,
  payload: unknown,
  options: { timeoutInMs?: number; abortSignal?: AbortSignal } = {},
): Promise<MethodResult<unknown>> {
  checkName('device id', target.deviceId);
  checkName('module id', target.moduleId);
  checkName('method', method);
  const timeoutInMs = options.timeoutInMs ?? 30_000;
  if (!Number.isInteger(timeoutInMs) || timeoutInMs < 1) throw new RangeError('timeoutInMs must be a positive integer');
  let linkDown = false;
  try {
    return await invokeMethod({
      connection: async () => conn,
      clock,
      deviceId: target.deviceId,
      moduleId: target.moduleId,
      method,
      payload,
      response: typed<unknown>(),
      timeoutInMs,
      // The device's link is read with the presence, at no extra wait: behind a bridge that is down, a presence of
      // online is stale, and a request would only wait for its timeout.
      presence: async () => {
        const [link, presence] = await Promise.all([
          conn.getRetained(addresses.link(target.deviceId)),
          conn.getRetained(addresses.presence(target.deviceId, target.moduleId)),
        ]);
        linkDown = decodeLink(link) === 'disconnected';
        if (linkDown) throw new EdgeKitError('not-found', 'the device is not connected');
        return decodePresence(presence);
      },
      ...(options.abortSignal ? { abortSignal: options.abortSignal } : {}),
    });
  } catch (error) {
    if (linkDown) {
      const message = `device ${target.deviceId} is not connected to the cloud: the bridge of its broker is down (its modules' presence is as last reported)`;
      return { ok: false, status: 404, payload: { message }, message };
    }
    if (!isEdgeKitError(error, 'decode-failed')) throw error;
    const message = `${target.deviceId}/${target.moduleId} ${method}: ${error.message}`;
    return { ok: false, status: 502, payload: { message }, message };
  }
}
