/**
 * The operator's side of edgekit: a `ServiceClient` applies deployments (routes and desired properties), reads and
 * updates twins, invokes direct methods, watches the messages that flow and reported properties, and lists modules
 * with their presence — over the same transports as modules. The `edgekit` CLI is built on it.
 */
import { type Clock, keepProcessAlive, sleep, systemClock } from '../clock.js';
import { Channel, type ClosableIterator, closableIterator } from '../core/async.js';
import { MAX_METHOD_TIMEOUT, MIN_METHOD_TIMEOUT } from '../core/client.js';
import { checkTwin, decodeTwin, type JsonObject, type TwinDocument } from '../core/twin.js';
import type { MethodResult } from '../core/types.js';
import {
  type DecodedDeploymentRecord,
  type DeploymentRecord,
  type DeploymentState,
  decodeDeploymentRecord,
  decodePresence,
  type Presence,
} from '../core/wire.js';
import { abortError, EdgeKitError, isEdgeKitError, messageOf } from '../errors.js';
import { addresses, checkIdentity, checkName, OPERATOR, operatorIdentity, parseIdentity } from '../names.js';
import type { Subscription, Transport, TransportConnection } from '../transport.js';
import { memory } from '../transports/memory/index.js';
import { applyDeploymentTo } from './apply-deployment.js';
import { type Deployment, readDeployment } from './deployment.js';
import { type MessageMonitor, type MonitorFilter, type MonitorOptions, startMonitor } from './monitor.js';
import { decodeLink, invokeAsService, readTwin, replaceDesired, updateDesired } from './operations.js';
import {
  type DeadLetterQueue,
  deadLetterQueue,
  type QueueHost,
  type QueueLease,
  startUpstream,
  type UpstreamConsumer,
  type UpstreamOptions,
} from './queues.js';

/** Options for {@link connectService}. */
export interface ServiceClientOptions {
  /** The broker binding; default the process's memory broker (`memory()`). */
  readonly transport?: Transport;
  /** Time source for timeouts and timestamps; default the system clock. */
  readonly clock?: Clock;
  /** Give up the first connection after this long (`connection-failed`); default 10 000. */
  readonly connectTimeoutInMs?: number;
  /**
   * The operator identity this client speaks for, `$operator/<name>`: what modules see as the publisher of messages
   * it injects and the caller of methods it invokes. With broker permissions from `edgekit identities` it must be the
   * identity of the operator credential the transport uses. Default `$operator/operator`.
   */
  readonly identity?: string;
  readonly abortSignal?: AbortSignal;
}

/** Options for {@link ServiceClient.applyDeployment}. */
export interface ApplyDeploymentOptions {
  readonly abortSignal?: AbortSignal;
}

/** What {@link ServiceClient.applyDeployment} changed. */
export interface DeploymentResult {
  readonly deviceId: string;
  /** The deployment's id, as its record on the broker names it. */
  readonly deploymentId: string;
  /** The device's deployment count, as its record keeps it. */
  readonly generation: number;
  /** Whether this completed an earlier `pending` or `failed` attempt of the same deployment. */
  readonly resumed: boolean;
  readonly modules: readonly string[];
  readonly routes: readonly string[];
  /** The new desired version of each module whose desired properties changed; unchanged modules are absent. */
  readonly desiredVersions: Readonly<Record<string, number>>;
  /** Things allowed but probably not meant, and stored documents that were invalid and replaced. */
  readonly warnings: readonly string[];
}

/** A deployment record that cannot be read: what {@link ServiceClient.deployment} gives instead of throwing. */
export interface InvalidDeploymentRecord {
  readonly state: 'invalid';
  /** Why it cannot be read. */
  readonly problem: string;
}

/** A device's deployment as its record on the broker says: `pending`, `applied`, `failed`, or `invalid`. */
export type DeploymentStatus = DeploymentRecord | InvalidDeploymentRecord;

/** Both twin sections of a module. */
export interface ModuleTwin {
  readonly desired: TwinDocument<JsonObject>;
  readonly reported: TwinDocument<JsonObject>;
}

/** Options for {@link ServiceClient.updateDesired}. */
export interface UpdateDesiredOptions {
  /** Fail with `version-conflict` unless the desired document is at this version (optimistic concurrency). */
  readonly ifVersion?: number;
  readonly abortSignal?: AbortSignal;
}

/** Options for {@link ServiceClient.replaceDesired}. */
export interface ReplaceDesiredOptions {
  /** Fail with `version-conflict` unless the desired document is at this version (optimistic concurrency). */
  readonly ifVersion?: number;
  readonly abortSignal?: AbortSignal;
}

/** A retained key on the broker that edgekit cannot use, and why: reported, never skipped silently. */
export interface RecordProblem {
  readonly key: string;
  readonly problem: string;
}

/** Options for {@link ServiceClient.devices}. */
export interface DevicesOptions {
  /** Hears of each key whose device segment is no valid device id (such a device cannot be listed). */
  readonly onInvalid?: (problem: RecordProblem) => void;
}

/** Options for {@link ServiceClient.invoke}. */
export interface ServiceInvokeOptions {
  /** 5 000 – 300 000; default 30 000. The handler sees it as its deadline; no answer in time gives 504. */
  readonly timeoutInMs?: number;
  readonly abortSignal?: AbortSignal;
}

/** What {@link ServiceClient.link} reads. */
export type DeviceLink =
  | { readonly state: 'connected' }
  | { readonly state: 'disconnected' }
  | { readonly state: 'invalid'; readonly problem: string };

/** A module of a device as {@link ServiceClient.modules} lists it. */
export interface ModuleStatus {
  /** The module id; with a {@link ModuleStatus.problem} it is the text as read, which may be no valid id. */
  readonly moduleId: string;
  /** Whether the device's deployment record lists it. */
  readonly deployed: boolean;
  /** For a deployed module: where the deployment that lists it stands (`pending` or `failed`: not complete). */
  readonly deploymentState?: DeploymentState;
  /**
   * Set when a record about this module on the broker is invalid — its entry in the deployment record, its presence,
   * or its presence key — saying why; `state` is then `unknown`.
   */
  readonly problem?: string;
  /** `unknown`: deployed but never connected. */
  readonly state: 'online' | 'offline' | 'unknown';
  /** Epoch ms of the last state change, when known (a broker-written last will carries none). */
  readonly since?: number;
  /**
   * Epoch ms the module was last known to be connected: now when online, the close time after a graceful close, the
   * time the lost connection was made after a crash.
   */
  readonly lastSeen?: number;
  /** Why it is offline: `closed` or `connection-lost`. */
  readonly reason?: 'closed' | 'connection-lost';
  /** `edgekit/<version>` of the module's client. */
  readonly sdk?: string;
}

/** Options for {@link ServiceClient.watchReported}. */
export interface WatchOptions {
  /** Ends the watch. */
  readonly abortSignal?: AbortSignal;
  /**
   * Hears of a lost connection and of each failed attempt to watch again (the watch keeps trying), and of a reported
   * document on the broker that is invalid (`decode-failed`; it is skipped).
   */
  readonly onError?: (error: EdgeKitError) => void;
}

/** An async iterator of twin documents: the current one first, then each new version. */
export type TwinWatch = ClosableIterator<TwinDocument<JsonObject>>;

/**
 * The operator's client. Create one with {@link connectService}; close it when done (also `await using`).
 *
 * @example
 * ```ts
 * const service = await connectService({ transport: mqtt({ url: 'mqtt://127.0.0.1:1883' }) });
 * await service.applyDeployment('gw-1', JSON.parse(readFileSync('deployment.json', 'utf8')));
 * const res = await service.invoke('gw-1', 'filter', 'reset', {}, { timeoutInMs: 10_000 });
 * for await (const m of await service.monitor({ deviceId: 'gw-1' })) console.log(m);
 * ```
 */
export interface ServiceClient {
  /**
   * Applies an IoT Edge deployment manifest to a device: the deployment record as `pending`, each module's desired
   * properties that changed (replacing the document, as IoT Edge does; a module sees the difference as one patch),
   * the route table (with priority and TTL), then the record as `applied`. The whole manifest is checked first: any
   * problem rejects it with `invalid-configuration` listing every problem, and nothing is applied.
   *
   * A write the broker refuses part-way rejects with an error naming the step (`details.step`: `start`, `desired`,
   * `routes`, `finish`) and leaves the record `failed` with that step and reason (or `pending`, when the broker
   * refuses that write too), so modules and `edgekit status` see the deployment is incomplete. Applying the same
   * manifest again completes it under the same id, rewriting only the documents that differ. A stored desired
   * document that is invalid is replaced (see `replaceDesired`), with a warning.
   */
  applyDeployment(deviceId: string, manifest: unknown, options?: ApplyDeploymentOptions): Promise<DeploymentResult>;
  /**
   * Both twin sections of a module (version 0 and `{}` when never written). A stored document that is invalid
   * rejects with `decode-failed` (for desired properties, naming the command that replaces it).
   */
  getTwin(deviceId: string, moduleId: string): Promise<ModuleTwin>;
  /**
   * Merges a JSON merge patch (`null` deletes) into a module's desired properties and returns the new document.
   * With `ifVersion`, fails with `version-conflict` if the document moved. When the stored document is invalid
   * (`decode-failed`) or at the largest version (`twin-limit`), nothing is written and the error names the command
   * that replaces it (see {@link ServiceClient.replaceDesired}).
   */
  updateDesired(
    deviceId: string,
    moduleId: string,
    patch: JsonObject,
    options?: UpdateDesiredOptions,
  ): Promise<TwinDocument<JsonObject>>;
  /**
   * Replaces a module's desired properties whole (members not given are removed) and returns the new document, at
   * the next version. Also replaces a stored document that is invalid or at the largest version: the new one gets a
   * version above any a running module can have taken (at least the current epoch ms), so the module applies it. A
   * module that had taken the largest version must be restarted.
   *
   * @example
   * ```ts
   * await service.replaceDesired('gw-1', 'filter', { TemperatureThreshold: 25 });
   * ```
   */
  replaceDesired(
    deviceId: string,
    moduleId: string,
    properties: JsonObject,
    options?: ReplaceDesiredOptions,
  ): Promise<TwinDocument<JsonObject>>;
  /**
   * Invokes a direct method. Resolves with the status and payload — also for failures the module or the platform
   * answered (404 offline, 501 not handled, 504 no answer in time, 502 an invalid presence or response on the
   * broker); rejects only on bad arguments or a closed client.
   */
  invoke(
    deviceId: string,
    moduleId: string,
    method: string,
    payload?: unknown,
    options?: ServiceInvokeOptions,
  ): Promise<MethodResult<unknown>>;
  /**
   * Watches the messages that flow: those routed to module inputs, to `$upstream` and dead letters, decoded, without
   * taking them from their receivers. Resolves once watching.
   */
  monitor(filter?: MonitorFilter, options?: MonitorOptions): Promise<MessageMonitor>;
  /**
   * A device's modules — the deployed ones and any with a presence — with presence and last-seen, by module id.
   * Records that are invalid never make it reject: each is a row with a `problem` (an invalid deployment record lists
   * no module; {@link ServiceClient.deployment} says why).
   */
  modules(deviceId: string): Promise<ModuleStatus[]>;
  /**
   * The device's deployment record: its state (`pending`, `applied`, `failed` with the step and reason), id,
   * generation and module set; `{ state: 'invalid', problem }` when it cannot be read; `undefined` when the device
   * has none.
   */
  deployment(deviceId: string): Promise<DeploymentStatus | undefined>;
  /**
   * Whether the device's broker is connected to this one by its bridge (docs/cloud.md): `connected`,
   * `disconnected` (the module presences the cloud holds are then as last reported), `invalid` with why, or
   * `undefined` when the device has no bridge to this broker.
   */
  link(deviceId: string): Promise<DeviceLink | undefined>;
  /**
   * The devices with a deployment, a module presence or a bridge (a link state), sorted. Needs a transport that lists retained values
   * (memory, MQTT); on AMQP it fails with `unsupported`. Keys whose device segment is no valid device id are not
   * devices; `onInvalid` hears of each.
   */
  devices(options?: DevicesOptions): Promise<string[]>;
  /**
   * Consumes a device's upstream queue (`upstream/<device>`, where routes `INTO $upstream` send): an async iterator
   * of the decoded messages, at-least-once — each is acknowledged only when the loop asks for the next, so one the loop
   * body did not finish (`break`, a throw, `close`, a crash) is delivered again. Several consumers of one device, in
   * this process or others, share the messages: each goes to one of them (on MQTT, within one service client: see
   * docs/transports/mqtt.md). Bytes that are no edgekit message are yielded as `undecodable`, never skipped.
   * `'*'` (every device) rejects with `unsupported`: consume each device. Resolves once consuming.
   *
   * @example
   * ```ts
   * for await (const m of await service.upstream('gw-1')) {
   *   if (m.type === 'message') await store(await m.decode(json<Telemetry>()));
   * } // each message is acknowledged after store() resolved
   * ```
   */
  upstream(deviceId: string, options?: UpstreamOptions): Promise<UpstreamConsumer>;
  /**
   * The dead letters of a module (`deadletter/<device>/<module>`): list them (they stay), replay them to the inputs
   * they were given up on, or purge them.
   *
   * @example
   * ```ts
   * const dead = service.deadLetters('gw-1', 'filter');
   * for (const e of (await dead.list()).entries) if (e.type === 'message') console.log(e.deadLetter.reason);
   * const { replayed, skipped } = await dead.replay();
   * ```
   */
  deadLetters(deviceId: string, moduleId: string): DeadLetterQueue;
  /** Watches a module's reported properties: the current document first, then each new version. */
  watchReported(deviceId: string, moduleId: string, options?: WatchOptions): Promise<TwinWatch>;
  /** Closes the connection and ends every monitor and watch; idempotent. */
  close(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

const RECONNECT_MIN_MS = 100;
const RECONNECT_MAX_MS = 10_000;

/**
 * Connects a {@link ServiceClient}. Rejects with `connection-failed` (or `timeout`/`aborted`) when the broker cannot
 * be reached in time.
 *
 * @example
 * ```ts
 * import { connectService } from 'edgekit';
 * import { amqp } from 'edgekit/amqp';
 * await using service = await connectService({ transport: amqp({ url: 'amqp://guest:guest@127.0.0.1' }) });
 * console.table(await service.modules('gw-1'));
 * ```
 */
export async function connectService(options: ServiceClientOptions = {}): Promise<ServiceClient> {
  if (typeof options !== 'object' || options === null) throw new TypeError('connectService: options must be an object');
  const transport = options.transport ?? memory();
  if (typeof transport?.connect !== 'function') throw new TypeError('connectService: transport must be a Transport');
  const timeoutInMs = options.connectTimeoutInMs ?? 10_000;
  if (!Number.isInteger(timeoutInMs) || timeoutInMs < 1) {
    throw new RangeError(`connectService: connectTimeoutInMs must be a positive integer, got ${String(timeoutInMs)}`);
  }
  const identity = options.identity === undefined ? operatorIdentity('operator') : checkIdentity(options.identity);
  if (parseIdentity(identity)?.kind !== 'operator') {
    throw new RangeError(`connectService: identity must be ${OPERATOR}/<name>, got ${JSON.stringify(identity)}`);
  }
  const client = new ServiceClientImpl(transport, options.clock ?? systemClock, timeoutInMs, identity);
  try {
    await client.connection(options.abortSignal);
  } catch (error) {
    await client.close();
    throw error;
  }
  return client;
}

class ServiceClientImpl implements ServiceClient {
  private current: Promise<TransportConnection> | undefined;
  private closed = false;
  private readonly clientId = `edgekit-service-${globalThis.crypto.randomUUID()}`;
  /** Ends every monitor and watch on close. */
  private readonly watches = new Set<{ close(): Promise<void> }>();
  /** Open clients keep the process alive, also while a monitor waits to subscribe again after a lost connection. */
  private readonly releaseProcess = keepProcessAlive();
  /** The queue sessions open for consuming, by address (see {@link lease}), with how many hold each. */
  private readonly queueSessions = new Map<string, { conn: Promise<TransportConnection>; holders: number }>();

  /** What the queue operations use of this client. */
  private get queueHost(): QueueHost {
    return {
      clock: this.clock,
      lease: (address, signal) => this.lease(address, signal),
      connection: (signal) => this.connection(signal),
      track: (consumer) => this.track(consumer),
    };
  }

  constructor(
    private readonly transport: Transport,
    private readonly clock: Clock,
    private readonly connectTimeoutInMs: number,
    private readonly identity: string,
  ) {}

  /**
   * The open connection, connecting (again) when there is none. The connection is shared, so a caller's
   * `abortSignal` ends only that caller's wait, never the connect others wait on too.
   */
  connection(abortSignal?: AbortSignal): Promise<TransportConnection> {
    if (this.closed) return Promise.reject(new EdgeKitError('closed', 'the service client is closed'));
    if (abortSignal?.aborted) return Promise.reject(abortError(abortSignal));
    if (this.current === undefined) {
      const connecting = this.connect();
      this.current = connecting;
      connecting.then(
        (conn) =>
          conn.closed.then(() => {
            if (this.current === connecting) this.current = undefined;
          }),
        () => {
          if (this.current === connecting) this.current = undefined;
        },
      );
    }
    return abortSignal ? raceAbort(this.current, abortSignal) : this.current;
  }

  /**
   * A connection to consume the queue at `address` on. Where queues keep messages by themselves, this client's own.
   * Where a queue is a subscription in a session (MQTT), the queue's own session, client id `$queue/<address>` — the
   * one `applyDeployment` made keep the queue — shared by every consumer of the address in this client and closed
   * when the last lets go (its subscription stays, so the session keeps filling).
   */
  private async lease(address: string, signal?: AbortSignal): Promise<QueueLease> {
    if (this.transport.capabilities.keepsMessagesBeforeFirstConsumer) {
      return { conn: await this.connection(signal), release: async () => undefined };
    }
    if (this.closed) throw new EdgeKitError('closed', 'the service client is closed');
    let session = this.queueSessions.get(address);
    if (session === undefined) {
      const conn = this.connect(queueClientId(address), true);
      const entry = { conn, holders: 0 };
      session = entry;
      this.queueSessions.set(address, entry);
      const forget = () => {
        if (this.queueSessions.get(address) === entry) this.queueSessions.delete(address);
      };
      conn.then((c) => c.closed.then(forget), forget);
    }
    session.holders++;
    const held = session;
    let released = false;
    const release = async () => {
      if (released) return;
      released = true;
      held.holders--;
      if (held.holders > 0) return;
      if (this.queueSessions.get(address) === held) this.queueSessions.delete(address);
      const conn = await held.conn.catch(() => undefined);
      await conn?.close();
    };
    try {
      const conn = await (signal ? raceAbort(held.conn, signal) : held.conn);
      return { conn, release };
    } catch (error) {
      await release();
      throw error;
    }
  }

  /**
   * Makes the queues of a deployed device keep their messages before anyone consumes them, where the transport does
   * not by itself (MQTT): its upstream and each module's dead letters. Returns a warning for each it could not.
   */
  private async keepQueues(deviceId: string, modules: readonly string[]): Promise<string[]> {
    if (this.transport.capabilities.keepsMessagesBeforeFirstConsumer) return [];
    const queues = [addresses.upstream(deviceId), ...modules.map((m) => addresses.deadLetter(deviceId, m))];
    const warnings = await Promise.all(
      queues.map(async (address) => {
        try {
          const lease = await this.lease(address);
          try {
            await lease.conn.keep?.(address);
          } finally {
            await lease.release();
          }
          return undefined;
        } catch (error) {
          return `${address} does not keep messages until someone consumes it: ${messageOf(error)}`;
        }
      }),
    );
    return warnings.filter((w) => w !== undefined);
  }

  private async connect(clientId = this.clientId, durableSession = false): Promise<TransportConnection> {
    try {
      return await this.transport.connect({
        clientId,
        ...(durableSession ? { durableSession } : {}),
        identity: this.identity,
        timeoutInMs: this.connectTimeoutInMs,
      });
    } catch (error) {
      if (error instanceof EdgeKitError && (error.code === 'aborted' || error.code === 'connection-failed'))
        throw error;
      throw new EdgeKitError(
        'connection-failed',
        `cannot connect to the ${this.transport.name} broker: ${messageOf(error)}`,
        { cause: error },
      );
    }
  }

  async applyDeployment(
    deviceId: string,
    manifest: unknown,
    options: ApplyDeploymentOptions = {},
  ): Promise<DeploymentResult> {
    checkName('device id', deviceId);
    const signal = checkOptions('applyDeployment', options);
    const deployment: Deployment = readDeployment(manifest);
    const conn = await this.connection(signal);
    const applied = await applyDeploymentTo(conn, this.clock, deviceId, deployment, signal);
    const kept = await this.keepQueues(deviceId, deployment.modules);
    return {
      deviceId,
      deploymentId: applied.id,
      generation: applied.generation,
      resumed: applied.resumed,
      modules: deployment.modules,
      routes: Object.keys(deployment.routes),
      desiredVersions: applied.desiredVersions,
      warnings: [...deployment.warnings, ...applied.warnings, ...kept],
    };
  }

  async getTwin(deviceId: string, moduleId: string): Promise<ModuleTwin> {
    checkName('device id', deviceId);
    checkName('module id', moduleId);
    return readTwin(await this.connection(), deviceId, moduleId);
  }

  async updateDesired(
    deviceId: string,
    moduleId: string,
    patch: JsonObject,
    options: UpdateDesiredOptions = {},
  ): Promise<TwinDocument<JsonObject>> {
    const signal = checkOptions('updateDesired', options);
    if (options.ifVersion !== undefined && (!Number.isInteger(options.ifVersion) || options.ifVersion < 0)) {
      throw new RangeError(`updateDesired: ifVersion must be a non-negative integer, got ${String(options.ifVersion)}`);
    }
    checkName('device id', deviceId);
    checkName('module id', moduleId);
    checkTwin(patch, 'desired patch', { allowNull: true });
    const conn = await this.connection(signal);
    if (signal?.aborted) throw abortError(signal);
    return updateDesired(conn, deviceId, moduleId, patch, {
      now: this.clock.now(),
      ...(options.ifVersion === undefined ? {} : { ifVersion: options.ifVersion }),
    });
  }

  async replaceDesired(
    deviceId: string,
    moduleId: string,
    properties: JsonObject,
    options: ReplaceDesiredOptions = {},
  ): Promise<TwinDocument<JsonObject>> {
    const signal = checkOptions('replaceDesired', options);
    if (options.ifVersion !== undefined && (!Number.isInteger(options.ifVersion) || options.ifVersion < 0)) {
      throw new RangeError(
        `replaceDesired: ifVersion must be a non-negative integer, got ${String(options.ifVersion)}`,
      );
    }
    checkName('device id', deviceId);
    checkName('module id', moduleId);
    checkTwin(properties, 'desired properties', { allowNull: false });
    const conn = await this.connection(signal);
    if (signal?.aborted) throw abortError(signal);
    return replaceDesired(conn, deviceId, moduleId, properties, {
      now: this.clock.now(),
      ...(options.ifVersion === undefined ? {} : { ifVersion: options.ifVersion }),
    });
  }

  async invoke(
    deviceId: string,
    moduleId: string,
    method: string,
    payload: unknown = null,
    options: ServiceInvokeOptions = {},
  ): Promise<MethodResult<unknown>> {
    checkName('device id', deviceId);
    checkName('module id', moduleId);
    checkName('method', method);
    checkOptions('invoke', options);
    const timeoutInMs = options.timeoutInMs ?? 30_000;
    if (!Number.isInteger(timeoutInMs) || timeoutInMs < MIN_METHOD_TIMEOUT || timeoutInMs > MAX_METHOD_TIMEOUT) {
      throw new RangeError(
        `invoke: timeoutInMs must be an integer from ${MIN_METHOD_TIMEOUT} to ${MAX_METHOD_TIMEOUT}, got ${String(timeoutInMs)}`,
      );
    }
    const conn = await this.connection(options.abortSignal);
    return invokeAsService(conn, this.clock, { deviceId, moduleId }, method, payload, {
      timeoutInMs,
      ...(options.abortSignal ? { abortSignal: options.abortSignal } : {}),
    });
  }

  async monitor(filter: MonitorFilter = {}, options: MonitorOptions = {}): Promise<MessageMonitor> {
    checkOptions('monitor', options);
    return startMonitor(filter, options, {
      clock: this.clock,
      keep: (start, onError) => this.keepSubscribed(start, onError),
      track: (watch) => this.track(watch),
    });
  }

  async upstream(deviceId: string, options: UpstreamOptions = {}): Promise<UpstreamConsumer> {
    if (typeof deviceId !== 'string') throw new TypeError('upstream: deviceId must be a device id or "*"');
    return startUpstream(deviceId, options, this.queueHost);
  }

  deadLetters(deviceId: string, moduleId: string): DeadLetterQueue {
    return deadLetterQueue(deviceId, moduleId, this.queueHost);
  }

  async modules(deviceId: string): Promise<ModuleStatus[]> {
    checkName('device id', deviceId);
    const conn = await this.connection();
    const now = this.clock.now();
    const read = readRecord(await conn.getRetained(addresses.deployment(deviceId)));
    const record = read !== undefined && 'record' in read ? read.record : undefined;
    /** Module id → its presence, or why it has none that can be used. */
    const presences = new Map<string, PresenceRead>();
    if (conn.listRetained !== undefined) {
      const prefix = `${addresses.presence(deviceId, '')}`;
      for (const [key, value] of await conn.listRetained(`${prefix}*`)) {
        const moduleId = key.slice(prefix.length);
        try {
          checkName('module id', moduleId);
        } catch (error) {
          // Not an address edgekit writes: shown with why, and its value is not read.
          presences.set(moduleId, { problem: `presence key ${JSON.stringify(key)}: ${messageOf(error)}` });
          continue;
        }
        presences.set(moduleId, presenceRead(value));
      }
    }
    const deployed = new Set(record?.modules ?? []);
    await Promise.all(
      [...deployed]
        .filter((m) => !presences.has(m))
        .map(async (m) => {
          presences.set(m, presenceRead(await conn.getRetained(addresses.presence(deviceId, m))));
        }),
    );
    const rows = [...presences.keys()].map((moduleId) =>
      statusOf(moduleId, deployed.has(moduleId) ? record?.state : undefined, presences.get(moduleId) ?? {}, now),
    );
    // Entries of the record that are no module id are listed too: never used as an address, never hidden.
    for (const { text, problem } of read !== undefined && 'invalidModules' in read ? read.invalidModules : []) {
      rows.push({
        moduleId: text,
        deployed: true,
        state: 'unknown',
        problem: `the deployment record lists an invalid module id: ${problem}`,
      });
    }
    return rows.sort((a, b) => (a.moduleId < b.moduleId ? -1 : a.moduleId > b.moduleId ? 1 : 0));
  }

  async deployment(deviceId: string): Promise<DeploymentStatus | undefined> {
    checkName('device id', deviceId);
    const conn = await this.connection();
    const read = readRecord(await conn.getRetained(addresses.deployment(deviceId)));
    if (read === undefined) return undefined;
    return 'record' in read ? read.record : { state: 'invalid', problem: read.problem };
  }

  async link(deviceId: string): Promise<DeviceLink | undefined> {
    checkName('device id', deviceId);
    const conn = await this.connection();
    try {
      const state = decodeLink(await conn.getRetained(addresses.link(deviceId)));
      return state === undefined ? undefined : { state };
    } catch (error) {
      if (!isEdgeKitError(error, 'decode-failed')) throw error;
      return { state: 'invalid', problem: error.message };
    }
  }

  async devices(options: DevicesOptions = {}): Promise<string[]> {
    checkOptions('devices', options);
    if (options.onInvalid !== undefined && typeof options.onInvalid !== 'function') {
      throw new TypeError('devices: onInvalid must be a function');
    }
    const conn = await this.connection();
    if (conn.listRetained === undefined) {
      throw new EdgeKitError('unsupported', `the ${this.transport.name} transport cannot list devices; name a device`);
    }
    const found = new Set<string>();
    /** Invalid device segment → the first key that had it, and why. */
    const invalid = new Map<string, RecordProblem>();
    for (const pattern of ['deployment/*', 'presence/*/*', 'link/*']) {
      for (const key of (await conn.listRetained(pattern)).keys()) {
        const deviceId = key.split('/')[1] ?? '';
        try {
          found.add(checkName('device id', deviceId));
        } catch (error) {
          if (!invalid.has(deviceId)) invalid.set(deviceId, { key, problem: messageOf(error) });
        }
      }
    }
    for (const problem of invalid.values()) {
      try {
        options.onInvalid?.(problem);
      } catch {
        // a listener must not break listing
      }
    }
    return [...found].sort();
  }

  async watchReported(deviceId: string, moduleId: string, options: WatchOptions = {}): Promise<TwinWatch> {
    checkName('device id', deviceId);
    checkName('module id', moduleId);
    const signal = checkOptions('watchReported', options);
    if (signal?.aborted) throw abortError(signal);
    const key = addresses.reported(deviceId, moduleId);
    let last: string | undefined;
    let subscribed: { close(): Promise<void> } | undefined;
    let closed = false;
    const channel = new Channel<TwinDocument<JsonObject>>(undefined, 1000);
    const watch: TwinWatch = this.track(
      closableIterator(channel, async () => {
        closed = true;
        signal?.removeEventListener('abort', onAbort);
        await subscribed?.close();
      }),
    );
    const onAbort = () => void watch.close();
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      subscribed = await this.keepSubscribed(
        (conn) =>
          conn.watchRetained(key, (value) => {
            let doc: TwinDocument<JsonObject>;
            try {
              doc = decodeTwin(value, `reported properties of ${deviceId}/${moduleId}`);
            } catch (error) {
              // An invalid document is the module's to fix: skipped, the next valid one is delivered — and said.
              try {
                options.onError?.(
                  isEdgeKitError(error) ? error : new EdgeKitError('decode-failed', messageOf(error), { cause: error }),
                );
              } catch {
                // a listener must not break the watch
              }
              return;
            }
            // After a reconnect the current document comes again: skip it when it is the one last delivered. Any
            // other document is delivered, also an older version (a broker that lost its state starts again at 1).
            const text = JSON.stringify(doc);
            if (text === last) return;
            last = text;
            channel.push(doc);
          }),
        options.onError,
      );
    } catch (error) {
      await watch.close();
      throw error;
    }
    if (closed) await subscribed.close(); // closed (or aborted) while subscribing
    return watch;
  }

  /**
   * Runs `start` on the connection and again on each new connection after one is lost, until closed. Resolves once
   * the first subscription is made (rejects if it cannot be). `onError` hears of a lost connection and of each
   * failed attempt to subscribe again.
   */
  private async keepSubscribed(
    start: (conn: TransportConnection) => Promise<Subscription>,
    onError?: (error: EdgeKitError) => void,
  ): Promise<{ close(): Promise<void> }> {
    let stopped = false;
    let conn = await this.connection();
    /** The newest subscription (or the attempt making it), so close() also ends one made while it ran. */
    let subscribing: Promise<Subscription | undefined> = start(conn);
    await subscribing;
    const stop = new AbortController();
    const stopped$ = new Promise((resolve) => stop.signal.addEventListener('abort', resolve, { once: true }));
    const report = (error: unknown) => {
      if (stopped || this.closed) return;
      try {
        onError?.(
          error instanceof EdgeKitError
            ? error
            : new EdgeKitError('connection-lost', messageOf(error), { cause: error }),
        );
      } catch {
        // a listener must not break resubscribing
      }
    };
    const loop = async () => {
      while (!stopped) {
        const cause = await Promise.race([conn.closed, stopped$]);
        if (stopped) return;
        report(cause ?? new EdgeKitError('connection-lost', 'the connection to the broker was lost'));
        // Subscribe again on the next connection, backing off while the broker is away.
        let delay = RECONNECT_MIN_MS;
        for (;;) {
          if (stopped || this.closed) return;
          try {
            conn = await this.connection();
            subscribing = start(conn);
            await subscribing;
            break;
          } catch (error) {
            subscribing = Promise.resolve(undefined);
            report(error);
            await sleep(this.clock, delay, stop.signal).catch(() => undefined);
            delay = Math.min(delay * 2, RECONNECT_MAX_MS);
          }
        }
      }
    };
    void loop();
    return {
      close: async () => {
        if (stopped) return;
        stopped = true;
        stop.abort();
        const subscription = await subscribing.catch(() => undefined);
        await subscription?.close().catch(() => undefined);
      },
    };
  }

  /** Keeps `watch` until it closes, by any path (close, return, asyncDispose), so close() can end it. */
  private track<T extends ClosableIterator<unknown>>(watch: T): T {
    if (this.closed) {
      void watch.close();
      return watch;
    }
    this.watches.add(watch);
    const close = watch.close.bind(watch);
    watch.close = async () => {
      this.watches.delete(watch);
      await close();
    };
    watch.return = async () => {
      await watch.close();
      return { value: undefined, done: true };
    };
    watch[Symbol.asyncDispose] = () => watch.close();
    return watch;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.releaseProcess();
    await Promise.all([...this.watches].map((w) => w.close().catch(() => undefined)));
    // A queue session still held (by a dead-letter operation under way, or a deployment making queues keep).
    const sessions = [...this.queueSessions.values()];
    this.queueSessions.clear();
    await Promise.all(sessions.map(async (s) => (await s.conn.catch(() => undefined))?.close()));
    const current = this.current;
    this.current = undefined;
    const conn = await current?.catch(() => undefined);
    await conn?.close();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/**
 * The client id of the session that keeps the queue at `address` where queues are sessions (MQTT). `$` keeps it
 * apart from every module's client id (`<device>/<module>`: device ids have no `$`) and operator clients'.
 */
export function queueClientId(address: string): string {
  return `$queue/${address}`;
}

/** Checks an options bag; returns its abort signal. */
function checkOptions(what: string, options: unknown): AbortSignal | undefined {
  if (typeof options !== 'object' || options === null) throw new TypeError(`${what}: options must be an object`);
  const signal = (options as { abortSignal?: unknown }).abortSignal;
  if (signal !== undefined && !(signal instanceof AbortSignal)) {
    throw new TypeError(`${what}: abortSignal must be an AbortSignal`);
  }
  const onError = (options as { onError?: unknown }).onError;
  if (onError !== undefined && typeof onError !== 'function')
    throw new TypeError(`${what}: onError must be a function`);
  return signal;
}

/** `promise`, or a rejection with `aborted` as soon as `signal` aborts. */
function raceAbort<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(abortError(signal));
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(error);
      },
    );
  });
}

/** A presence as read: usable, or why not (`{}`: none). */
type PresenceRead = { readonly presence?: Presence; readonly problem?: string };

function presenceRead(value: Uint8Array | undefined): PresenceRead {
  try {
    const presence = decodePresence(value);
    return presence === undefined ? {} : { presence };
  } catch (error) {
    return { problem: `invalid presence: ${messageOf(error)}` };
  }
}

/** The deployment record decoded, or why it cannot be; `undefined` when there is none. Never throws. */
function readRecord(value: Uint8Array | undefined): DecodedDeploymentRecord | { problem: string } | undefined {
  try {
    return decodeDeploymentRecord(value);
  } catch (error) {
    return { problem: messageOf(error) };
  }
}

function statusOf(
  moduleId: string,
  deploymentState: DeploymentState | undefined,
  read: PresenceRead,
  now: number,
): ModuleStatus {
  const deployed = {
    deployed: deploymentState !== undefined,
    ...(deploymentState === undefined ? {} : { deploymentState }),
  };
  const presence = read.presence;
  if (presence === undefined) {
    return {
      moduleId,
      ...deployed,
      state: 'unknown',
      ...(read.problem === undefined ? {} : { problem: read.problem }),
    };
  }
  const lastSeen =
    presence.state === 'online' ? now : presence.reason === 'connection-lost' ? presence.connectedAt : presence.since;
  return {
    moduleId,
    ...deployed,
    state: presence.state,
    ...(presence.since === undefined ? {} : { since: presence.since }),
    ...(lastSeen === undefined ? {} : { lastSeen }),
    ...(presence.reason === undefined ? {} : { reason: presence.reason }),
    sdk: presence.sdk,
  };
}
