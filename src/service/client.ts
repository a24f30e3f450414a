/**
 * The operator's side of edgekit: a `ServiceClient` applies deployments (routes and desired properties), reads and
 * updates twins, invokes direct methods, watches the messages that flow and reported properties, and lists modules
 * with their presence — over the same transports as modules. The `edgekit` CLI is built on it.
 */
import { type Clock, keepProcessAlive, sleep, systemClock } from '../clock.js';
import { Channel, type ClosableIterator, closableIterator } from '../core/async.js';
import { MAX_METHOD_TIMEOUT, MIN_METHOD_TIMEOUT } from '../core/client.js';
import { checkTwin, decodeTwin, encodeTwin, type JsonObject, type TwinDocument } from '../core/twin.js';
import type { MethodResult } from '../core/types.js';
import {
  type DeploymentRecord,
  decodeDeploymentRecord,
  decodePresence,
  type Presence,
  toJsonBytes,
} from '../core/wire.js';
import { abortError, EdgeKitError, messageOf } from '../errors.js';
import { addresses, checkName } from '../names.js';
import type { Subscription, Transport, TransportConnection } from '../transport.js';
import { memory } from '../transports/memory/index.js';
import { type Deployment, readDeployment } from './deployment.js';
import { type MessageMonitor, type MonitorFilter, type MonitorOptions, startMonitor } from './monitor.js';
import { deployRoutes, invokeAsService, readTwin, updateDesired } from './operations.js';

/** Options for {@link connectService}. */
export interface ServiceClientOptions {
  /** The broker binding; default the process's memory broker (`memory()`). */
  readonly transport?: Transport;
  /** Time source for timeouts and timestamps; default the system clock. */
  readonly clock?: Clock;
  /** Give up the first connection after this long (`connection-failed`); default 10 000. */
  readonly connectTimeoutInMs?: number;
  readonly abortSignal?: AbortSignal;
}

/** Options for {@link ServiceClient.applyDeployment}. */
export interface ApplyDeploymentOptions {
  readonly abortSignal?: AbortSignal;
}

/** What {@link ServiceClient.applyDeployment} changed. */
export interface DeploymentResult {
  readonly deviceId: string;
  readonly modules: readonly string[];
  readonly routes: readonly string[];
  /** The new desired version of each module whose desired properties changed; unchanged modules are absent. */
  readonly desiredVersions: Readonly<Record<string, number>>;
  readonly warnings: readonly string[];
}

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

/** Options for {@link ServiceClient.invoke}. */
export interface ServiceInvokeOptions {
  /** 5 000 – 300 000; default 30 000. The handler sees it as its deadline; no answer in time gives 504. */
  readonly timeoutInMs?: number;
  readonly abortSignal?: AbortSignal;
}

/** A module of a device as {@link ServiceClient.modules} lists it. */
export interface ModuleStatus {
  readonly moduleId: string;
  /** Whether the last deployment applied to the device lists it. */
  readonly deployed: boolean;
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
  /** Hears of a lost connection and of each failed attempt to watch again; the watch keeps trying. */
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
   * Applies an IoT Edge deployment manifest to a device: each module's desired properties (replacing the document,
   * as IoT Edge does; a module sees the difference as one patch), then the route table (with priority and TTL),
   * then the record of deployed modules. The whole manifest is checked first: any problem rejects it with
   * `invalid-configuration` listing every problem, and nothing is applied.
   */
  applyDeployment(deviceId: string, manifest: unknown, options?: ApplyDeploymentOptions): Promise<DeploymentResult>;
  /** Both twin sections of a module (version 0 and `{}` when never written). */
  getTwin(deviceId: string, moduleId: string): Promise<ModuleTwin>;
  /**
   * Merges a JSON merge patch (`null` deletes) into a module's desired properties and returns the new document.
   * With `ifVersion`, fails with `version-conflict` if the document moved.
   */
  updateDesired(
    deviceId: string,
    moduleId: string,
    patch: JsonObject,
    options?: UpdateDesiredOptions,
  ): Promise<TwinDocument<JsonObject>>;
  /**
   * Invokes a direct method. Resolves with the status and payload — also for failures the module or the platform
   * answered (404 offline, 501 not handled, 504 no answer in time); rejects only on bad arguments or a closed client.
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
  /** A device's modules — the deployed ones and any with a presence — with presence and last-seen, by module id. */
  modules(deviceId: string): Promise<ModuleStatus[]>;
  /**
   * The devices with a deployment or a module presence, sorted. Needs a transport that lists retained values
   * (memory, MQTT); on AMQP it fails with `unsupported`.
   */
  devices(): Promise<string[]>;
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
  const client = new ServiceClientImpl(transport, options.clock ?? systemClock, timeoutInMs);
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

  constructor(
    private readonly transport: Transport,
    private readonly clock: Clock,
    private readonly connectTimeoutInMs: number,
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

  private async connect(): Promise<TransportConnection> {
    try {
      return await this.transport.connect({ clientId: this.clientId, timeoutInMs: this.connectTimeoutInMs });
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
    // Everything is read (at once) and encoded before the first write, so a failure part-way changes nothing.
    const reads = await Promise.all(
      Object.entries(deployment.desired).map(async ([moduleId, properties]) => {
        const key = addresses.desired(deviceId, moduleId);
        let current: TwinDocument<JsonObject>;
        try {
          current = decodeTwin(await conn.getRetained(key), 'desired properties');
        } catch {
          current = { version: 0, properties: {} }; // a corrupt document is replaced whole anyway
        }
        return { moduleId, key, current, properties };
      }),
    );
    const writes = reads
      .filter(({ current, properties }) => JSON.stringify(current.properties) !== JSON.stringify(properties))
      .map(({ moduleId, key, current, properties }) => {
        const next = { version: current.version + 1, properties };
        return { moduleId, key, version: next.version, bytes: encodeTwin(next, `${moduleId} desired properties`) };
      });
    const desiredVersions: Record<string, number> = {};
    // Desired properties first, routes next: a route into a module never reaches it before its configuration.
    for (const write of writes) {
      if (signal?.aborted) throw abortError(signal);
      await conn.setRetained(write.key, write.bytes);
      desiredVersions[write.moduleId] = write.version;
    }
    if (signal?.aborted) throw abortError(signal);
    await deployRoutes(
      conn,
      deviceId,
      deployment.routes,
      deployment.defaultTimeToLiveSecs === undefined ? {} : { defaultTimeToLiveSecs: deployment.defaultTimeToLiveSecs },
    );
    const record: DeploymentRecord = { modules: deployment.modules, appliedAt: this.clock.now() };
    await conn.setRetained(addresses.deployment(deviceId), toJsonBytes(record));
    return {
      deviceId,
      modules: deployment.modules,
      routes: Object.keys(deployment.routes),
      desiredVersions,
      warnings: deployment.warnings,
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
    return updateDesired(
      conn,
      deviceId,
      moduleId,
      patch,
      options.ifVersion === undefined ? {} : { ifVersion: options.ifVersion },
    );
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

  async modules(deviceId: string): Promise<ModuleStatus[]> {
    checkName('device id', deviceId);
    const conn = await this.connection();
    const now = this.clock.now();
    const record = decodeDeploymentRecord(await conn.getRetained(addresses.deployment(deviceId)));
    const presences = new Map<string, Presence | undefined>();
    if (conn.listRetained !== undefined) {
      const prefix = `${addresses.presence(deviceId, '')}`;
      for (const [key, value] of await conn.listRetained(`${prefix}*`)) {
        presences.set(key.slice(prefix.length), decodeOrUndefined(value));
      }
    }
    const deployed = new Set(record?.modules ?? []);
    await Promise.all(
      [...deployed]
        .filter((m) => !presences.has(m))
        .map(async (m) => {
          presences.set(m, decodeOrUndefined(await conn.getRetained(addresses.presence(deviceId, m))));
        }),
    );
    return [...presences.keys()]
      .sort()
      .map((moduleId) => statusOf(moduleId, deployed.has(moduleId), presences.get(moduleId), now));
  }

  async devices(): Promise<string[]> {
    const conn = await this.connection();
    if (conn.listRetained === undefined) {
      throw new EdgeKitError('unsupported', `the ${this.transport.name} transport cannot list devices; name a device`);
    }
    const found = new Set<string>();
    for (const pattern of ['deployment/*', 'presence/*/*']) {
      for (const key of (await conn.listRetained(pattern)).keys()) found.add(key.split('/')[1] as string);
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
              doc = decodeTwin(value, 'reported properties');
            } catch {
              return; // a malformed document is the module's to fix; the next valid one is delivered
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
    const current = this.current;
    this.current = undefined;
    const conn = await current?.catch(() => undefined);
    await conn?.close();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
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

function decodeOrUndefined(value: Uint8Array | undefined): Presence | undefined {
  try {
    return decodePresence(value);
  } catch {
    return undefined;
  }
}

function statusOf(moduleId: string, deployed: boolean, presence: Presence | undefined, now: number): ModuleStatus {
  if (presence === undefined) return { moduleId, deployed, state: 'unknown' };
  const lastSeen =
    presence.state === 'online' ? now : presence.reason === 'connection-lost' ? presence.connectedAt : presence.since;
  return {
    moduleId,
    deployed,
    state: presence.state,
    ...(presence.since === undefined ? {} : { since: presence.since }),
    ...(lastSeen === undefined ? {} : { lastSeen }),
    ...(presence.reason === undefined ? {} : { reason: presence.reason }),
    sdk: presence.sdk,
  };
}
