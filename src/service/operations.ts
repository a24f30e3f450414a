/**
 * Operator-side operations over one transport connection: deploy a route table, update desired properties, read
 * twins and presence, inject messages, invoke methods. The test hub and the conformance suite use them; the
 * ServiceClient builds on them.
 */
import type { Clock } from '../clock.js';
import { typed } from '../codecs/schema.js';
import { invokeMethod } from '../core/client.js';
import { type EnvelopeHeader, encodeEnvelope, MAX_MESSAGE_BYTES } from '../core/envelope.js';
import { checkTwin, decodeTwin, encodeTwin, type JsonObject, mergePatch, type TwinDocument } from '../core/twin.js';
import type { MethodResult } from '../core/types.js';
import { decodePresence, type Presence, type RouteTableDocument, toJsonBytes } from '../core/wire.js';
import { EdgeKitError } from '../errors.js';
import { addresses, checkName } from '../names.js';
import { compileRouteTable, type RouteSpec } from '../routing/index.js';
import type { TransportConnection } from '../transport.js';

/** Route tables as users write them: name → route string or route object. */
export type RoutesInput = Readonly<Record<string, string | RouteSpec>>;

/** Validates every route, then retains the table for the device; a bad table changes nothing. */
export async function deployRoutes(
  conn: TransportConnection,
  deviceId: string,
  routes: RoutesInput,
  options: { defaultTimeToLiveSecs?: number } = {},
): Promise<void> {
  checkName('device id', deviceId);
  const table = compileRouteTable(routes);
  const doc: RouteTableDocument = {
    routes: Object.fromEntries(
      table.routes.map((r) => [r.name, { route: r.text, priority: r.priority, timeToLiveSecs: r.timeToLiveSecs }]),
    ),
    ...(options.defaultTimeToLiveSecs === undefined ? {} : { defaultTimeToLiveSecs: options.defaultTimeToLiveSecs }),
  };
  await conn.setRetained(addresses.routes(deviceId), toJsonBytes(doc));
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
  return { desired: decodeTwin(desired, 'desired properties'), reported: decodeTwin(reported, 'reported properties') };
}

/**
 * Merges `patch` into a module's desired properties and bumps the version. With `ifVersion`, fails with
 * `version-conflict` if the document moved (checked before writing; brokers offer no atomic compare-and-set, so two
 * writers racing within one round trip can still both succeed).
 */
export async function updateDesired(
  conn: TransportConnection,
  deviceId: string,
  moduleId: string,
  patch: JsonObject,
  options: { ifVersion?: number } = {},
): Promise<TwinDocument<JsonObject>> {
  checkName('device id', deviceId);
  checkName('module id', moduleId);
  checkTwin(patch, 'desired patch', { allowNull: true });
  const key = addresses.desired(deviceId, moduleId);
  const current = decodeTwin(await conn.getRetained(key), 'desired properties');
  if (options.ifVersion !== undefined && options.ifVersion !== current.version) {
    throw new EdgeKitError(
      'version-conflict',
      `desired properties of ${deviceId}/${moduleId} are at version ${current.version}, not ${options.ifVersion}`,
      {
        details: { expected: options.ifVersion, actual: current.version },
      },
    );
  }
  const next = { version: current.version + 1, properties: mergePatch(current.properties, patch) };
  await conn.setRetained(key, encodeTwin(next, 'desired properties'));
  return next;
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

/** Invokes a method as an operator (no calling module). */
export function invokeAsService(
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
  return invokeMethod({
    connection: async () => conn,
    clock,
    deviceId: target.deviceId,
    moduleId: target.moduleId,
    method,
    payload,
    response: typed<unknown>(),
    timeoutInMs,
    ...(options.abortSignal ? { abortSignal: options.abortSignal } : {}),
  });
}
