/**
 * The module client: connection lifecycle (backoff, resubscribe, presence), sending through routes, at-least-once
 * input handling with retries and dead-letters, twins and direct methods — all transport-agnostic, on top of the
 * byte-level contract in ../transport.ts.
 */
import { type Clock, type ClockTimer, keepProcessAlive, sleep, systemClock } from '../clock.js';
import type { Codec } from '../codecs/codec.js';
import { isSchema, validate } from '../codecs/schema.js';
import { abortError, EdgeKitError, type EdgeKitErrorCode, isEdgeKitError, MethodError, messageOf } from '../errors.js';
import { addresses, checkName, moduleIdentity, parseIdentity } from '../names.js';
import { compileRouteTable, type Destination, type RouteTable, type RoutingMessage } from '../routing/index.js';
import type { Delivery, Subscription, Transport, TransportConnection } from '../transport.js';
import { Channel, deferred, Semaphore } from './async.js';
import type { ModuleContract } from './contract.js';
import {
  type DeadLetterReason,
  decodeEnvelope,
  type Envelope,
  type EnvelopeHeader,
  encodeEnvelope,
  envelopeEncoder,
  MAX_MESSAGE_BYTES,
  NO_PROPERTIES,
} from './envelope.js';
import {
  checkTwin,
  decodeTwin,
  diffPatch,
  encodeTwin,
  type JsonObject,
  mergePatch,
  type TwinDocument,
} from './twin.js';
import type {
  ClientStats,
  CloseOptions,
  ConnectionStatus,
  ConnectOptions,
  DesiredHandler,
  InboundMessage,
  InputHandler,
  InputOptions,
  InvokeOptions,
  MethodAnswer,
  MethodContext,
  MethodHandler,
  MethodResult,
  ModuleClient,
  ModuleRef,
  OperationOptions,
  Registration,
  SendOptions,
  SendResult,
  Twin,
  TwinSection,
} from './types.js';
import {
  decodeMethodRequest,
  decodeMethodResponse,
  decodePresence,
  decodeRouteTable,
  EDGEKIT_SDK,
  type MethodResponseWire,
  type Presence,
  presenceClosed,
  presenceLost,
  presenceOnline,
  toJsonBytes,
} from './wire.js';

/** Method targets whose presence a client keeps watching; beyond this, presence is read per call. */
const MAX_WATCHED_TARGETS = 64;

/** Largest method payload, as IoT Hub: 128 KB. */
export const MAX_METHOD_PAYLOAD_BYTES = 128 * 1024;
const DEFAULT_TTL_SECS = 7200;
/** The end of close()'s budget kept for marking the module offline and disconnecting (at most a quarter of it). */
const GOODBYE_RESERVE_MS = 1_000;
/** Longest error text a dead letter carries. */
const MAX_DEAD_LETTER_ERROR_CHARS = 2_000;
/** Queued sends published at once after a reconnect, in order: a pipeline, not one round trip each. */
const FLUSH_WINDOW = 256;
export const MIN_METHOD_TIMEOUT = 5_000;
export const MAX_METHOD_TIMEOUT = 300_000;

/** Test-only observation of every `send`, used by `edgekit/testing`; not part of the public API. */
export const observeSends: unique symbol = Symbol('edgekit.observeSends');
/** @internal */
export type SendObserver = (output: string, header: EnvelopeHeader, body: Uint8Array) => void;

/** @internal Called with every route table the client accepts (the Azure IoT Edge hub follows its module's inputs). */
export const observeRoutes: unique symbol = Symbol('edgekit.observeRoutes');
/** @internal Serves every method name that has no handler of its own (the hub forwards them to an Azure module). */
export const serveAnyMethod: unique symbol = Symbol('edgekit.serveAnyMethod');
/** @internal */
export type AnyMethodHandler = (
  method: string,
  payload: unknown,
  context: MethodContext,
) => Promise<MethodAnswer<unknown>>;

/** @internal What the module's presence names as its software (the hub: the Azure SDK's), printable ASCII. */
export const presenceSdk: unique symbol = Symbol('edgekit.presenceSdk');

/** @internal Options the test hub and the Azure IoT Edge hub may add. */
export interface InternalConnectOptions extends ConnectOptions {
  readonly [presenceSdk]?: string;
  readonly [observeSends]?: SendObserver;
  readonly [observeRoutes]?: (table: RouteTable) => void;
  readonly [serveAnyMethod]?: AnyMethodHandler;
}

interface Binding {
  attach(conn: TransportConnection): Promise<Subscription>;
  sub: Subscription | undefined;
  /** The connection it is attached (or being attached) to; attaching twice to one connection is a no-op. */
  conn: TransportConnection | undefined;
  /** Internal bindings (routes, desired, methods) are not user registrations. */
  readonly internal: boolean;
}

const isThenable = (value: unknown): value is PromiseLike<unknown> =>
  (typeof value === 'object' || typeof value === 'function') &&
  value !== null &&
  typeof (value as { then?: unknown }).then === 'function';

interface Pending {
  readonly address: string;
  readonly bytes: Uint8Array;
  /** Clock time after which the message is not worth sending (its TTL runs from `send`, not from the reconnect). */
  readonly expiresAt: number | undefined;
  readonly priority: number | undefined;
  /** Being published by the flush: not evicted by `drop-oldest` (its sender would hear of a loss that is not one). */
  inFlight?: boolean;
  resolve(): void;
  reject(error: unknown): void;
}

class Inbound<T> implements InboundMessage<T> {
  constructor(
    readonly body: T,
    readonly input: string,
    private readonly header: EnvelopeHeader,
    readonly attempt: number,
    readonly redelivered: boolean,
    readonly publisher: string | undefined,
  ) {}
  get messageId() {
    return this.header.messageId;
  }
  get correlationId() {
    return this.header.correlationId;
  }
  get contentType() {
    return this.header.contentType;
  }
  get contentEncoding() {
    return this.header.contentEncoding;
  }
  get createdAt() {
    return new Date(this.header.createdAt);
  }
  get properties() {
    return this.header.properties;
  }
  get source() {
    return {
      deviceId: this.header.sourceDeviceId,
      moduleId: this.header.sourceModuleId,
      ...(this.header.sourceOutput === undefined ? {} : { output: this.header.sourceOutput }),
    };
  }
  withAttempt(attempt: number): Inbound<T> {
    return new Inbound(this.body, this.input, this.header, attempt, this.redelivered, this.publisher);
  }
}

const isLost = (e: unknown) => isEdgeKitError(e, 'connection-lost') || isEdgeKitError(e, 'closed');

function positiveInt(name: string, value: number | undefined, fallback: number, min = 1): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min) {
    throw new RangeError(`${name} must be an integer ≥ ${min}, got ${String(value)}`);
  }
  return value;
}

function checkSignal(signal: unknown, where: string): void {
  if (signal !== undefined && !(signal instanceof AbortSignal)) {
    throw new TypeError(`${where}: abortSignal must be an AbortSignal`);
  }
}

let uuid = (): string => globalThis.crypto.randomUUID();

/** @internal The implementation behind {@link ModuleClient}. */
export class ModuleClientImpl<C extends ModuleContract> implements ModuleClient<C> {
  readonly deviceId: string;
  readonly moduleId: string;
  readonly contract: C;
  private readonly transport: Transport;
  private readonly clock: Clock;
  private readonly clientId: string;
  private readonly opts: Required<
    Pick<ConnectOptions, 'maxAttempts' | 'retryDelayInMs' | 'methodConcurrency' | 'connectTimeoutInMs'>
  >;
  private readonly reconnectPolicy: { initial: number; max: number; multiplier: number; jitter: number };
  private readonly offlineMax: number;
  private readonly offlinePolicy: 'reject-new' | 'drop-oldest';
  private readonly onError: (error: EdgeKitError) => void;
  private readonly observer: SendObserver | undefined;
  private readonly routesObserver: ((table: RouteTable) => void) | undefined;
  private readonly anyMethod: AnyMethodHandler | undefined;
  private readonly sdk: string;

  private conn: TransportConnection | undefined;
  /** Increments on every new connection; deliveries of an older one are not processed. */
  private epoch = 0;
  private current: ConnectionStatus = { state: 'connecting' };
  private readonly statusChannels = new Set<Channel<ConnectionStatus>>();
  private readonly bindings = new Set<Binding>();
  private readonly offline: Pending[] = [];
  private connectedWaiters: Array<() => void> = [];
  private closing = false;
  private readonly closedSignal = deferred<void>();
  /** Held from start() until the client is closed: see {@link start}. */
  private releaseProcess: (() => void) | undefined;
  private reconnectTimer: ClockTimer | undefined;
  private readonly counters = {
    sent: 0,
    unrouted: 0,
    received: 0,
    processed: 0,
    handlerErrors: 0,
    deadLettered: 0,
    decodeErrors: 0,
    tooLarge: 0,
    forged: 0,
    redelivered: 0,
    reconnects: 0,
    offlineDropped: 0,
    offlineExpired: 0,
  };

  private readonly outputCodecs = new Map<string, Codec<unknown>>();
  private readonly encoders = new Map<string, ReturnType<typeof envelopeEncoder>>();
  /** Broker address per destination object (destinations are reused while the route table is unchanged). */
  private readonly addressCache = new WeakMap<Destination, string>();
  private routeTable: RouteTable | undefined;
  private defaultTtlSecs = DEFAULT_TTL_SECS;
  /** Destinations per output when no route has a condition (the common case): no evaluation per message. */
  private routeCache: Map<string, Destination[]> | undefined;

  private desiredDoc: TwinDocument<JsonObject> = { version: 0, properties: {} };
  private desiredChain: Promise<void> = Promise.resolve();
  private readonly desiredHandlers = new Set<DesiredHandler<never>>();
  private desiredRejected = false;
  private reportedDoc: TwinDocument<JsonObject> | undefined;
  private reportChain: Promise<unknown> = Promise.resolve();

  private readonly methodHandlers = new Map<string, MethodHandler<never, unknown>>();
  private readonly watchedPresence = new Map<string, { state: Presence | undefined; ready: Promise<void> }>();
  private readonly methodSlots: Semaphore;

  constructor(contract: C, options: InternalConnectOptions) {
    if (typeof options !== 'object' || options === null) throw new TypeError('connect: options must be an object');
    this.contract = contract;
    this.deviceId = checkName('device id', options.deviceId);
    this.moduleId = checkName('module id', options.moduleId);
    const replica = options.replicaId === undefined ? undefined : checkName('replica id', options.replicaId);
    this.clientId = `${this.deviceId}/${this.moduleId}${replica === undefined ? '' : `/${replica}`}`;
    checkSignal(options.abortSignal, 'connect');
    if (
      options.transport !== undefined &&
      (typeof options.transport !== 'object' || typeof options.transport.connect !== 'function')
    ) {
      throw new TypeError('connect: transport must be a Transport such as memory(), mqtt({ url }) or amqp({ url })');
    }
    if (!options.transport) throw new TypeError('connect: a transport is required');
    this.transport = options.transport;
    this.clock = options.clock ?? systemClock;
    this.opts = {
      maxAttempts: positiveInt('maxAttempts', options.maxAttempts, 3),
      retryDelayInMs: positiveInt('retryDelayInMs', options.retryDelayInMs, 100, 0),
      methodConcurrency: positiveInt('methodConcurrency', options.methodConcurrency, 8),
      connectTimeoutInMs: positiveInt('connectTimeoutInMs', options.connectTimeoutInMs, 30_000),
    };
    const r = options.reconnect ?? {};
    this.reconnectPolicy = {
      initial: positiveInt('reconnect.initialDelayInMs', r.initialDelayInMs, 200, 0),
      max: positiveInt('reconnect.maxDelayInMs', r.maxDelayInMs, 30_000, 0),
      multiplier: r.multiplier ?? 2,
      jitter: r.jitter ?? 0.2,
    };
    if (!(this.reconnectPolicy.multiplier >= 1)) throw new RangeError('reconnect.multiplier must be ≥ 1');
    if (!(this.reconnectPolicy.jitter >= 0 && this.reconnectPolicy.jitter <= 1)) {
      throw new RangeError('reconnect.jitter must be between 0 and 1');
    }
    this.offlineMax = positiveInt('offlineQueue.maxMessages', options.offlineQueue?.maxMessages, 1000, 0);
    const policy = options.offlineQueue?.policy ?? 'reject-new';
    if (policy !== 'reject-new' && policy !== 'drop-oldest') {
      throw new RangeError(`offlineQueue.policy must be 'reject-new' or 'drop-oldest', got ${String(policy)}`);
    }
    this.offlinePolicy = policy;
    if (options.onError !== undefined && typeof options.onError !== 'function')
      throw new TypeError('onError must be a function');
    this.onError =
      options.onError ??
      ((error) => console.warn(`[edgekit ${this.deviceId}/${this.moduleId}] ${error.code}: ${error.message}`));
    this.observer = options[observeSends];
    this.routesObserver = options[observeRoutes];
    this.anyMethod = options[serveAnyMethod];
    this.sdk = options[presenceSdk] ?? EDGEKIT_SDK;
    this.methodSlots = new Semaphore(this.opts.methodConcurrency);

    // Internal bindings, re-established on every connection: routes, desired properties, methods.
    this.bindings.add({
      internal: true,
      sub: undefined,
      conn: undefined,
      attach: (conn) => conn.watchRetained(addresses.routes(this.deviceId), (v) => this.onRouteTable(v)),
    });
    this.bindings.add({
      internal: true,
      sub: undefined,
      conn: undefined,
      attach: (conn) =>
        conn.watchRetained(addresses.desired(this.deviceId, this.moduleId), (v) => this.onDesiredValue(v)),
    });
    this.bindings.add({
      internal: true,
      sub: undefined,
      conn: undefined,
      attach: (conn) =>
        conn.serve(addresses.methods(this.deviceId, this.moduleId), (req, context) =>
          this.onMethodRequest(req, context.publisher),
        ),
    });
    // Presence is per module, connections per replica: when another replica's last will (or its close) marks the
    // module offline, or a late will of this client's previous connection does, a live connection says online again.
    this.bindings.add({
      internal: true,
      sub: undefined,
      conn: undefined,
      attach: (conn) =>
        conn.watchRetained(addresses.presence(this.deviceId, this.moduleId), (value) =>
          this.onPresenceValue(conn, value),
        ),
    });
  }

  private onPresenceValue(conn: TransportConnection, value: Uint8Array | undefined): void {
    if (this.closing || conn !== this.conn || this.current.state !== 'connected') return;
    let state: string | undefined;
    try {
      state = decodePresence(value)?.state;
    } catch {
      state = undefined; // unreadable: write ours
    }
    if (state === 'online') return;
    void conn
      .setRetained(
        addresses.presence(this.deviceId, this.moduleId),
        toJsonBytes(presenceOnline(this.clock.now(), this.sdk)),
      )
      .catch(() => undefined);
  }

  // ---------------------------------------------------------------- lifecycle

  /**
   * First connection: retried with backoff until `connectTimeoutInMs`. From here until the client is closed it keeps
   * the process alive, also while no socket is open (between attempts, and later while reconnecting).
   */
  async start(signal: AbortSignal | undefined): Promise<void> {
    this.releaseProcess = keepProcessAlive();
    try {
      await this.connectFirst(signal);
    } catch (error) {
      // Given up: said by connect()'s rejection and by the final status, which carries the cause.
      this.finish(error instanceof Error ? error : new EdgeKitError('connection-failed', messageOf(error)));
      throw error;
    }
  }

  private async connectFirst(signal: AbortSignal | undefined): Promise<void> {
    const deadline = this.clock.now() + this.opts.connectTimeoutInMs;
    let attempt = 0;
    /** The most telling failure: a refusal (bad password, unknown host) beats the timeout of a last short attempt. */
    let cause: unknown;
    for (;;) {
      if (signal?.aborted) throw abortError(signal);
      try {
        await this.establish(Math.max(1, deadline - this.clock.now()), signal);
        return;
      } catch (failure) {
        if (cause === undefined || !isEdgeKitError(failure, 'timeout')) cause = failure;
        const error = cause;
        if (this.conn) await this.conn.close().catch(() => undefined);
        this.conn = undefined;
        attempt++;
        const delay = this.backoff(attempt);
        // Wrong settings and refused credentials do not get better by waiting: say so at once.
        if (this.clock.now() + delay >= deadline || isPermanent(error)) {
          throw isEdgeKitError(error)
            ? error
            : new EdgeKitError('connection-failed', `cannot connect ${this.clientId}: ${messageOf(error)}`, {
                cause: error,
              });
        }
        await sleep(this.clock, delay, signal).catch(() => {
          throw abortError(signal as AbortSignal);
        });
      }
    }
  }

  /** The end of the client, once: final status, the process no longer held, `closed()` resolved. */
  private finish(cause: Error | undefined): void {
    this.closing = true;
    this.setStatus(cause === undefined ? { state: 'closed' } : { state: 'closed', cause });
    this.releaseProcess?.();
    this.releaseProcess = undefined;
    this.closedSignal.resolve();
  }

  private backoff(attempt: number): number {
    const { initial, max, multiplier, jitter } = this.reconnectPolicy;
    const base = Math.min(max, initial * multiplier ** (attempt - 1));
    return Math.max(0, Math.round(base * (1 - jitter + 2 * jitter * Math.random())));
  }

  private everConnected = false;
  /** The connection attempt in progress, so close() can abort it and wait for it. */
  private establishing: { promise: Promise<void>; abort: AbortController } | undefined;

  /** Opens a connection and re-establishes everything on it; close() aborts it. */
  private establish(timeoutInMs: number, signal?: AbortSignal): Promise<void> {
    const abort = new AbortController();
    const onAbort = () => abort.abort(signal?.reason);
    signal?.addEventListener('abort', onAbort, { once: true });
    const promise = this.establishOn(timeoutInMs, abort.signal).finally(() => {
      signal?.removeEventListener('abort', onAbort);
      if (this.establishing?.promise === promise) this.establishing = undefined;
    });
    this.establishing = { promise, abort };
    return promise;
  }

  private async establishOn(timeoutInMs: number, signal: AbortSignal): Promise<void> {
    const started = this.clock.now();
    const conn = await this.transport.connect({
      clientId: this.clientId,
      identity: moduleIdentity(this.deviceId, this.moduleId),
      will: {
        key: addresses.presence(this.deviceId, this.moduleId),
        value: toJsonBytes(presenceLost(this.clock.now(), this.sdk)),
      },
      timeoutInMs,
      abortSignal: signal,
    });
    if (this.closing) {
      await conn.close().catch(() => undefined);
      throw new EdgeKitError('closed', 'the client was closed while connecting');
    }
    // The connect budget covers the whole set-up, not only the transport's handshake: a broker that goes silent after
    // accepting the connection must not keep connect() pending.
    const remaining = Math.max(1, timeoutInMs - (this.clock.now() - started));
    let timer: ClockTimer | undefined;
    const expired = new Promise<never>((_, reject) => {
      timer = this.clock.setTimer(
        () => reject(new EdgeKitError('timeout', `setting up the connection took longer than ${timeoutInMs} ms`)),
        remaining,
      );
    });
    const setUp = this.setUp(conn);
    setUp.catch(() => undefined); // after a timeout it may still fail; that is already handled here
    try {
      await Promise.race([setUp, expired]);
    } catch (error) {
      if (this.conn === conn) this.conn = undefined;
      // Not awaited: a connection that went silent may take its own time to close, and the caller's budget is spent.
      void conn.close().catch(() => undefined);
      throw error;
    } finally {
      timer?.cancel();
    }
  }

  /** Re-establishes everything on a new connection and marks the module online. */
  private async setUp(conn: TransportConnection): Promise<void> {
    const closedWhileConnecting = () => new EdgeKitError('closed', 'the client was closed while connecting');
    /** After a timeout the attempt is abandoned: it must not go on to mark the module connected. */
    const abandoned = () => this.closing || this.conn !== conn;
    this.conn = conn;
    ++this.epoch;
    if (this.reportedDoc === undefined) {
      const stored = await conn.getRetained(addresses.reported(this.deviceId, this.moduleId));
      try {
        this.reportedDoc = decodeTwin(stored, 'reported properties');
      } catch (error) {
        // Whoever wrote it, an unreadable reported document must not keep the module from connecting: the module
        // starts a new one (its next report replaces the stored document) and says so.
        this.report_error(error, 'the stored reported properties are invalid; starting a new document');
        this.reportedDoc = { version: 0, properties: {} };
      }
      // A rejection reported by an earlier run is cleared by the next accepted version.
      this.desiredRejected = this.reportedDoc.properties.desiredStatus != null;
    }
    for (const binding of this.bindings) await this.attachBinding(binding, conn);
    if (abandoned()) throw closedWhileConnecting();
    await conn.setRetained(
      addresses.presence(this.deviceId, this.moduleId),
      toJsonBytes(presenceOnline(this.clock.now(), this.sdk)),
    );
    if (abandoned()) throw closedWhileConnecting();
    if (this.everConnected) this.counters.reconnects++;
    this.everConnected = true;
    this.setStatus({ state: 'connected', since: new Date(this.clock.now()) });
    void conn.closed.then((cause) => this.onConnectionEnded(conn, cause));
    // Handlers registered while this connection was being set up.
    for (const binding of this.bindings)
      if (binding.conn !== conn) void this.attachBinding(binding, conn).catch(() => undefined);
    const waiters = this.connectedWaiters;
    this.connectedWaiters = [];
    for (const w of waiters) w();
    void this.flushOffline();
  }

  /** Attaches a binding to `conn` once; a result that arrives after the connection changed is undone. */
  private async attachBinding(binding: Binding, conn: TransportConnection): Promise<void> {
    if (binding.conn === conn) return;
    binding.conn = conn;
    binding.sub = undefined;
    let sub: Subscription;
    try {
      sub = await binding.attach(conn);
    } catch (error) {
      if (binding.conn === conn) binding.conn = undefined;
      throw error;
    }
    if (this.conn !== conn || binding.conn !== conn || !this.bindings.has(binding)) {
      await sub.close().catch(() => undefined);
      return;
    }
    binding.sub = sub;
  }

  private onConnectionEnded(conn: TransportConnection, cause: Error | undefined): void {
    if (conn !== this.conn || this.closing) return;
    this.conn = undefined;
    for (const b of this.bindings) {
      b.sub = undefined;
      b.conn = undefined;
    }
    const error = cause ?? new EdgeKitError('connection-lost', 'the connection closed');
    this.setStatus({ state: 'disconnected', cause: error });
    void this.reconnectLoop(error);
  }

  private async reconnectLoop(cause: Error): Promise<void> {
    for (let attempt = 1; !this.closing; attempt++) {
      const delayInMs = this.backoff(attempt);
      this.setStatus({ state: 'reconnecting', attempt, delayInMs, cause });
      await new Promise<void>((resolve) => {
        this.reconnectTimer = this.clock.setTimer(resolve, delayInMs);
      });
      this.reconnectTimer = undefined;
      if (this.closing) return;
      try {
        await this.establish(this.opts.connectTimeoutInMs);
        return;
      } catch (error) {
        const c = this.conn;
        this.conn = undefined;
        await c?.close().catch(() => undefined);
        // Refused credentials (rotated, revoked) will not come back by themselves; keep trying, as the broker may
        // be reconfigured, but say so once.
        if (isPermanent(error) && !isPermanent(cause)) {
          this.report_error(error, 'the broker refuses this module now; still trying to reconnect');
        }
        cause = error instanceof Error ? error : new Error(String(error));
      }
    }
  }

  private setStatus(status: ConnectionStatus): void {
    if (this.current.state === 'closed') return;
    this.current = status;
    for (const ch of this.statusChannels) {
      ch.push(status);
      if (status.state === 'closed') ch.close();
    }
  }

  get state(): ConnectionStatus {
    return this.current;
  }

  status(): AsyncIterableIterator<ConnectionStatus> {
    const ch: Channel<ConnectionStatus> = new Channel(() => this.statusChannels.delete(ch));
    ch.push(this.current);
    if (this.current.state === 'closed') ch.close();
    else this.statusChannels.add(ch);
    return ch;
  }

  stats(): ClientStats {
    return { ...this.counters, offlineQueued: this.offline.length };
  }

  /** Resolves with a connection once connected (waits across reconnects), honouring abort and timeout. */
  private async connection(options: OperationOptions = {}, what = 'operation'): Promise<TransportConnection> {
    if (this.closing) throw new EdgeKitError('closed', `${what}: the client is closed`);
    if (this.conn && this.current.state === 'connected') return this.conn;
    const timeout = options.timeoutInMs ?? 30_000;
    await new Promise<void>((resolve, reject) => {
      const signal = options.abortSignal;
      const done = () => {
        timer.cancel();
        signal?.removeEventListener('abort', onAbort);
      };
      const waiter = () => {
        done();
        resolve();
      };
      const onAbort = () => {
        done();
        this.connectedWaiters = this.connectedWaiters.filter((w) => w !== waiter);
        reject(abortError(signal as AbortSignal));
      };
      const timer = this.clock.setTimer(() => {
        this.connectedWaiters = this.connectedWaiters.filter((w) => w !== waiter);
        signal?.removeEventListener('abort', onAbort);
        reject(new EdgeKitError('timeout', `${what}: not connected within ${timeout} ms`));
      }, timeout);
      signal?.addEventListener('abort', onAbort, { once: true });
      this.connectedWaiters.push(waiter);
    });
    if (!this.conn) throw new EdgeKitError('closed', `${what}: the client is closed`);
    return this.conn;
  }

  /** Counts work that close() must drain (sends, handlers, reports, method calls) without per-call allocation. */
  private busy = 0;
  private idleWaiters: Array<() => void> = [];
  private begin(): void {
    this.busy++;
  }
  private end(): void {
    if (--this.busy === 0 && this.idleWaiters.length > 0) for (const w of this.idleWaiters.splice(0)) w();
  }
  private track<T>(promise: Promise<T>): Promise<T> {
    this.begin();
    return promise.finally(() => this.end());
  }

  async close(options: CloseOptions = {}): Promise<void> {
    if (this.closing) return this.closedSignal.promise;
    const budget = positiveInt('drainTimeoutInMs', options.drainTimeoutInMs, 30_000, 0);
    this.closing = true;
    // The whole close fits in the budget whatever the network does; the end of it is kept for the goodbye.
    const deadline = this.clock.now() + budget;
    const drained = deadline - Math.min(GOODBYE_RESERVE_MS, Math.floor(budget / 4));
    this.reconnectTimer?.cancel();
    const establishing = this.establishing;
    if (establishing) {
      establishing.abort.abort(new EdgeKitError('closed', 'the client is closing'));
      await this.until(establishing.promise, drained);
    }
    for (const stop of this.onClosing.splice(0)) stop();
    // 1. Stop new deliveries and requests (an unsubscribe waits for the broker: bounded too).
    await this.until(Promise.all([...this.bindings].map((b) => b.sub?.close())), drained);
    // 2. Without a connection, queued sends and operations waiting for one cannot finish: fail them now.
    if (!this.conn) this.failWaiting();
    // 3. Drain in-flight handlers and sends.
    if (this.busy > 0) await this.until(new Promise<void>((resolve) => this.idleWaiters.push(resolve)), drained);
    // 4. Sends still waiting for a connection cannot go anywhere now.
    this.failWaiting();
    // 5. Say goodbye: presence offline (no last will), then disconnect — at once, without a goodbye, when the
    //    broker does not answer in time (the last will then marks the module offline).
    const conn = this.conn;
    this.conn = undefined;
    if (conn) {
      await this.until(
        conn.setRetained(
          addresses.presence(this.deviceId, this.moduleId),
          toJsonBytes(presenceClosed(this.clock.now(), this.sdk)),
        ),
        deadline,
      );
      await this.until(conn.close({ timeoutInMs: Math.max(0, deadline - this.clock.now()) }), deadline);
    }
    this.finish(undefined);
  }

  /** Waits for `work` to settle (its outcome ignored) or for the clock to reach `deadline`, whichever comes first. */
  private until(work: Promise<unknown>, deadline: number): Promise<void> {
    const settled = work.then(
      () => undefined,
      () => undefined,
    );
    const left = deadline - this.clock.now();
    if (left <= 0) return Promise.resolve();
    let timer: ClockTimer | undefined;
    return Promise.race([
      settled,
      new Promise<void>((resolve) => (timer = this.clock.setTimer(resolve, left))),
    ]).finally(() => timer?.cancel());
  }

  private failWaiting(): void {
    for (const p of this.offline.splice(0))
      p.reject(new EdgeKitError('closed', 'the client closed before the message could be sent'));
    for (const w of this.connectedWaiters.splice(0)) w();
  }

  /** Called when close() begins (open message iterators end). */
  private readonly onClosing: Array<() => void> = [];

  closed(): Promise<void> {
    return this.closedSignal.promise;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  // ---------------------------------------------------------------- sending

  async send(output: string, body: unknown, options: SendOptions = {}): Promise<SendResult> {
    if (this.closing) throw new EdgeKitError('closed', 'send: the client is closed');
    let codec = this.outputCodecs.get(output);
    if (!codec) {
      checkName('output', output);
      codec = this.contract.codecOf('output', output);
      if (!codec) throw new RangeError(`send: "${output}" is not an output of this module's contract`);
      this.outputCodecs.set(output, codec);
    }
    if (typeof options !== 'object' || options === null) throw new TypeError('send: options must be an object');
    checkSignal(options.abortSignal, 'send');
    if (options.abortSignal?.aborted) throw abortError(options.abortSignal);
    const properties = checkProperties(options.properties);
    const messageId = options.messageId === undefined ? uuid() : checkId('messageId', options.messageId);
    const correlationId =
      options.correlationId === undefined ? undefined : checkId('correlationId', options.correlationId);
    const payload = codec.encode(body as never);
    const createdAt = this.clock.now();
    const content = this.contentOf(codec, options);
    let encode = content === codec ? this.encoders.get(output) : undefined;
    if (!encode) {
      encode = envelopeEncoder({
        contentType: content.contentType,
        contentEncoding: content.contentEncoding,
        sourceDeviceId: this.deviceId,
        sourceModuleId: this.moduleId,
        sourceOutput: output,
      });
      if (content === codec) this.encoders.set(output, encode);
    }
    const bytes = encode(messageId, correlationId, createdAt, properties, payload);
    if (bytes.length > MAX_MESSAGE_BYTES) {
      throw new EdgeKitError(
        'message-too-large',
        `message on output "${output}" is ${bytes.length} bytes; the limit is ${MAX_MESSAGE_BYTES}`,
        {
          details: { size: bytes.length, limit: MAX_MESSAGE_BYTES },
        },
      );
    }
    const header = (): EnvelopeHeader => ({
      messageId,
      ...(correlationId === undefined ? {} : { correlationId }),
      contentType: content.contentType,
      ...(content.contentEncoding === undefined ? {} : { contentEncoding: content.contentEncoding }),
      createdAt,
      sourceDeviceId: this.deviceId,
      sourceModuleId: this.moduleId,
      sourceOutput: output,
      properties,
    });
    const destinations = this.destinations(output, header, payload);
    if (destinations.length === 0) {
      this.counters.unrouted++;
      this.observer?.(output, header(), payload);
      return { messageId, destinations: 0 };
    }
    this.begin();
    try {
      if (destinations.length === 1) await this.publishTo(destinations[0] as Destination, bytes);
      else await Promise.all(destinations.map((d) => this.publishTo(d, bytes)));
    } finally {
      this.end();
    }
    this.counters.sent++;
    this.observer?.(output, header(), payload);
    return { messageId, destinations: destinations.length };
  }

  /** The codec's content type and encoding, or the ones an untyped module's send gives for the bytes it passes on. */
  private contentOf(
    codec: Codec<unknown>,
    options: SendOptions,
  ): { readonly contentType: string; readonly contentEncoding?: string | undefined } {
    const { contentType, contentEncoding } = options;
    if (contentType === undefined && contentEncoding === undefined) return codec;
    if (!this.contract.open) {
      throw new TypeError(
        "send: contentType and contentEncoding are for untypedModule; a contract's outputs take them from their codec",
      );
    }
    return {
      contentType: contentType === undefined ? codec.contentType : checkContentLabel('contentType', contentType),
      contentEncoding:
        contentEncoding === undefined ? codec.contentEncoding : checkContentLabel('contentEncoding', contentEncoding),
    };
  }

  private publishTo(d: Destination, bytes: Uint8Array): Promise<void> {
    let address = this.addressCache.get(d);
    if (address === undefined) {
      address =
        d.kind === 'upstream' ? addresses.upstream(this.deviceId) : addresses.input(this.deviceId, d.module, d.input);
      this.addressCache.set(d, address);
    }
    const ttl = d.timeToLiveSecs > 0 ? d.timeToLiveSecs : this.defaultTtlSecs;
    return this.publish(
      address,
      bytes,
      ttl > 0 ? ttl * 1000 : undefined,
      d.priority >= 0 && d.priority <= 9 ? d.priority : undefined,
    );
  }

  private destinations(output: string, headerOf: () => EnvelopeHeader, body: Uint8Array): Destination[] {
    const table = this.routeTable;
    if (!table) return [];
    const cached = this.routeCache?.get(output);
    if (cached) return cached;
    const header = headerOf();
    const message: RoutingMessage = {
      source: `/messages/modules/${this.moduleId}/outputs/${output}`,
      properties: header.properties,
      systemProperties: {
        messageId: header.messageId,
        correlationId: header.correlationId,
        contentType: header.contentType,
        contentEncoding: header.contentEncoding,
        connectionDeviceId: this.deviceId,
        connectionModuleId: this.moduleId,
        outputName: output,
        creationTime: new Date(header.createdAt).toISOString(),
      },
      body,
    };
    const result = table.select(message);
    if (this.routeCache) this.routeCache.set(output, result);
    return result;
  }

  /** Publishes now if connected, otherwise (or if the connection drops mid-publish) waits in the offline queue. */
  private publish(
    address: string,
    bytes: Uint8Array,
    ttlInMs: number | undefined,
    priority: number | undefined,
  ): Promise<void> {
    const conn = this.conn;
    if (conn && this.current.state === 'connected' && this.offline.length === 0) {
      const opts = ttlInMs === undefined && priority === undefined ? undefined : { ttlInMs, priority };
      return conn.publish(address, bytes, opts as never).catch((error: unknown) => {
        if (isLost(error) && !this.closing) return this.enqueueOffline(address, bytes, ttlInMs, priority);
        throw error;
      });
    }
    return this.enqueueOffline(address, bytes, ttlInMs, priority);
  }

  private enqueueOffline(
    address: string,
    bytes: Uint8Array,
    ttlInMs: number | undefined,
    priority: number | undefined,
  ): Promise<void> {
    if (this.closing) return Promise.reject(new EdgeKitError('closed', 'the client is closed'));
    const d = deferred<void>();
    if (this.offline.length >= this.offlineMax) {
      this.counters.offlineDropped++;
      const full = () =>
        new EdgeKitError(
          'offline-queue-full',
          `disconnected and the offline queue holds its maximum of ${this.offlineMax} messages`,
          {
            details: { maxMessages: this.offlineMax, policy: this.offlinePolicy },
          },
        );
      const oldest = this.offline.findIndex((p) => !p.inFlight);
      if (this.offlinePolicy === 'reject-new' || oldest < 0) return Promise.reject(full());
      this.offline.splice(oldest, 1)[0]?.reject(full());
    }
    const expiresAt = ttlInMs === undefined ? undefined : this.clock.now() + ttlInMs;
    this.offline.push({ address, bytes, expiresAt, priority, resolve: d.resolve, reject: d.reject });
    if (this.conn && this.current.state === 'connected') this.flushOffline();
    return d.promise;
  }

  private flushing = false;
  /**
   * Publishes what waited in the offline queue, a window at a time and in order: the broker takes each window in
   * order and confirms it as a pipeline, instead of one round trip per message (a 20 s outage's backlog used to take
   * about 18 s to drain on amqp). A message whose publish failed because the connection dropped stays queued for the
   * next connection, as does everything after it; one refused for a reason of its own is rejected to its sender.
   */
  private async flushOffline(): Promise<void> {
    if (this.flushing) return;
    this.flushing = true;
    try {
      while (this.offline.length > 0 && this.conn && this.current.state === 'connected') {
        const conn = this.conn;
        const batch = this.offline.slice(0, FLUSH_WINDOW);
        const now = this.clock.now();
        const outcomes = await Promise.allSettled(
          batch.map((p): Promise<'sent' | 'expired'> => {
            p.inFlight = true;
            const ttlInMs = p.expiresAt === undefined ? undefined : p.expiresAt - now;
            // Expired while waiting: the broker would drop it unread, so it is not sent.
            if (ttlInMs !== undefined && ttlInMs <= 0) return Promise.resolve('expired');
            try {
              return conn.publish(p.address, p.bytes, { ttlInMs, priority: p.priority } as never).then(() => 'sent');
            } catch (error) {
              return Promise.reject(error);
            }
          }),
        );
        let lost = false;
        const settled = new Set<Pending>();
        for (const [i, p] of batch.entries()) {
          p.inFlight = false;
          const outcome = outcomes[i] as PromiseSettledResult<'sent' | 'expired'>;
          if (outcome.status === 'fulfilled') {
            if (outcome.value === 'expired') this.counters.offlineExpired++;
            settled.add(p);
            p.resolve();
          } else if (lost || isLost(outcome.reason)) {
            lost = true; // stays queued, in order, for the next connection
          } else {
            settled.add(p);
            p.reject(outcome.reason);
          }
        }
        let kept = 0;
        for (const p of this.offline) if (!settled.has(p)) this.offline[kept++] = p;
        this.offline.length = kept;
        if (lost) break;
      }
    } finally {
      this.flushing = false;
    }
  }

  private onRouteTable(value: Uint8Array | undefined): void {
    try {
      const doc = decodeRouteTable(value);
      const table = compileRouteTable(doc.routes);
      this.routeTable = table;
      this.defaultTtlSecs = doc.defaultTimeToLiveSecs ?? DEFAULT_TTL_SECS;
      this.routeCache = table.routes.every((r) => r.condition === null) ? new Map() : undefined;
      this.routesObserver?.(table);
    } catch (error) {
      this.report_error(error, 'route table rejected; keeping the previous one');
    }
  }

  private report_error(error: unknown, context: string): void {
    const e = isEdgeKitError(error) ? error : new EdgeKitError('transport-error', messageOf(error), { cause: error });
    try {
      this.onError(
        context ? new EdgeKitError(e.code, `${context}: ${e.message}`, { cause: e, details: e.details }) : e,
      );
    } catch {
      // a throwing onError must not break message handling
    }
  }

  // ---------------------------------------------------------------- inputs

  async onInput(input: string, handler: InputHandler<never>, options: InputOptions = {}): Promise<Registration> {
    if (this.closing) throw new EdgeKitError('closed', 'onInput: the client is closed');
    checkName('input', input);
    const codec = this.contract.codecOf('input', input);
    if (!codec) throw new RangeError(`onInput: "${input}" is not an input of this module's contract`);
    if (typeof handler !== 'function') throw new TypeError('onInput: handler must be a function');
    if (typeof options !== 'object' || options === null) throw new TypeError('onInput: options must be an object');
    const concurrency = positiveInt('concurrency', options.concurrency, 1);
    for (const b of this.bindings) {
      if ((b as InputBinding).input === input)
        throw new TypeError(`onInput: input "${input}" already has a handler; close it first`);
    }
    const address = addresses.input(this.deviceId, this.moduleId, input);
    const queue: Array<{ delivery: Delivery; epoch: number }> = [];
    let active = 0;
    const pump = () => {
      while (active < concurrency && queue.length > 0) {
        const item = queue.shift() as { delivery: Delivery; epoch: number };
        if (item.epoch !== this.epoch || this.closing) continue; // redelivered by the broker on the next connection
        const pending = this.deliver(input, codec, handler, item.delivery);
        if (pending === undefined) continue; // handled synchronously
        active++;
        this.begin();
        pending
          .catch((error: unknown) => this.report_error(error, `a message on input "${input}" could not be settled`))
          .finally(() => {
            active--;
            this.end();
            pump();
          });
      }
    };
    const binding: InputBinding = {
      input,
      internal: false,
      sub: undefined,
      conn: undefined,
      attach: (conn) => {
        const epoch = this.epoch;
        return conn.consume(address, { prefetch: Math.max(concurrency * 2, 32) }, (delivery) => {
          queue.push({ delivery, epoch });
          pump();
        });
      },
    };
    this.bindings.add(binding);
    if (this.conn && this.current.state === 'connected') {
      try {
        await this.attachBinding(binding, this.conn);
      } catch (error) {
        // A lost connection is not a failed subscription: the reconnect attaches it.
        if (!isLost(error)) {
          this.bindings.delete(binding);
          throw error;
        }
      }
    }
    return {
      close: async () => {
        this.bindings.delete(binding);
        // Delivered but never started: give them back now where the transport can (else after the connection ends).
        for (const item of queue.splice(0)) item.delivery.release?.();
        await binding.sub?.close();
      },
    };
  }

  messages(input: string, options: InputOptions = {}): AsyncIterableIterator<InboundMessage<never>> {
    type Waiting = { msg: InboundMessage<never>; resolve: () => void; reject: (e: unknown) => void };
    let registration: Promise<Registration> | undefined;
    let done = false;
    /** The message the consumer holds: acknowledged when it asks for the next one or stops. */
    let current: Waiting | undefined;
    const waiting: Waiting[] = [];
    let reader: ((result: IteratorResult<InboundMessage<never>>) => void) | undefined;
    let closingHooked = false;
    const handler = (msg: InboundMessage<never>) =>
      new Promise<void>((resolve, reject) => {
        if (done) return reject(new AbandonedDelivery());
        const item = { msg, resolve, reject };
        if (!closingHooked) {
          closingHooked = true;
          this.onClosing.push(() => void iterator.return?.());
        }
        if (reader) {
          const read = reader;
          reader = undefined;
          current = item;
          read({ value: msg, done: false });
        } else waiting.push(item);
      });
    const iterator: AsyncIterableIterator<InboundMessage<never>> = {
      next: async () => {
        current?.resolve();
        current = undefined;
        if (done || this.closing) return { value: undefined, done: true };
        if (!closingHooked) {
          closingHooked = true;
          this.onClosing.push(() => void iterator.return?.());
        }
        registration ??= this.onInput(input, handler, options);
        await registration;
        const next = waiting.shift();
        if (next) {
          current = next;
          return { value: next.msg, done: false };
        }
        return new Promise((resolve) => {
          reader = resolve;
        });
      },
      return: async () => {
        done = true;
        current?.resolve();
        current = undefined;
        // Delivered but never handed out: left unacknowledged, so the broker redelivers them.
        for (const w of waiting.splice(0)) w.reject(new AbandonedDelivery());
        reader?.({ value: undefined, done: true });
        reader = undefined;
        await (await registration)?.close();
        return { value: undefined, done: true };
      },
      [Symbol.asyncIterator]: () => iterator,
    };
    return iterator;
  }

  /**
   * Handles one delivery. The common case — a synchronous codec and a handler that succeeds — runs without a single
   * promise; anything asynchronous or failing continues in {@link deliverSlow}. Returns a promise only then.
   */
  private deliver(
    input: string,
    codec: { decode(b: Uint8Array): unknown },
    handler: InputHandler<never>,
    delivery: Delivery,
  ): Promise<void> | undefined {
    this.counters.received++;
    if (delivery.redelivered) this.counters.redelivered++;
    if (delivery.bytes.length > MAX_MESSAGE_BYTES) return this.tooLarge(input, delivery);
    let envelope: Envelope;
    try {
      envelope = decodeEnvelope(delivery.bytes);
    } catch (error) {
      this.counters.decodeErrors++;
      return this.giveUp(input, undefined, delivery.bytes, 'decode-failed', error, 0, delivery);
    }
    if (delivery.publisher !== undefined && !sentBy(envelope.header, delivery.publisher)) {
      return this.forged(input, envelope, delivery);
    }
    let body: unknown;
    try {
      body = codec.decode(envelope.body);
    } catch (error) {
      return this.undecodable(input, envelope, error, delivery);
    }
    if (isThenable(body)) {
      return Promise.resolve(body).then(
        (value) =>
          this.deliverSlow(
            input,
            envelope,
            new Inbound<never>(value as never, input, envelope.header, 1, delivery.redelivered, delivery.publisher),
            handler,
            delivery,
          ),
        (error: unknown) => this.undecodable(input, envelope, error, delivery),
      );
    }
    const message = new Inbound<never>(
      body as never,
      input,
      envelope.header,
      1,
      delivery.redelivered,
      delivery.publisher,
    );
    let result: unknown;
    try {
      result = handler(message);
    } catch (error) {
      this.counters.handlerErrors++;
      return this.deliverSlow(input, envelope, message, handler, delivery, error);
    }
    if (isThenable(result)) {
      return Promise.resolve(result).then(
        () => {
          this.counters.processed++;
          delivery.ack();
        },
        (error: unknown) => {
          if (error instanceof AbandonedDelivery) {
            delivery.release?.(); // not handled: back to the broker for redelivery
            return;
          }
          this.counters.handlerErrors++;
          return this.deliverSlow(input, envelope, message, handler, delivery, error);
        },
      );
    }
    this.counters.processed++;
    delivery.ack();
    return undefined;
  }

  /**
   * A message over the protocol's limit can only come from a sender that is not edgekit (which refuses to send it):
   * it is not handed to the handler, and only its header (when it has one) is dead-lettered, so a 10 MB message does
   * not become a 10 MB dead letter.
   */
  private tooLarge(input: string, delivery: Delivery): Promise<void> {
    this.counters.tooLarge++;
    let header: EnvelopeHeader | undefined;
    try {
      header = decodeEnvelope(delivery.bytes).header;
    } catch {
      header = undefined;
    }
    const error = new EdgeKitError(
      'message-too-large',
      `the message is ${delivery.bytes.length} bytes; the limit is ${MAX_MESSAGE_BYTES} (its body is not kept)`,
      { details: { size: delivery.bytes.length, limit: MAX_MESSAGE_BYTES } },
    );
    return this.giveUp(input, header, new Uint8Array(0), 'too-large', error, 0, delivery);
  }

  /**
   * A message whose `source` names another module than the identity it was published under: someone claims to be
   * who it is not. No handler sees it; it is dead-lettered with both names.
   */
  private forged(input: string, envelope: Envelope, delivery: Delivery): Promise<void> {
    this.counters.forged++;
    const { sourceDeviceId, sourceModuleId } = envelope.header;
    const error = new EdgeKitError(
      'not-authorized',
      `the message says it is from ${sourceDeviceId}/${sourceModuleId} but was published as ${delivery.publisher}`,
      { details: { claimed: `${sourceDeviceId}/${sourceModuleId}`, publisher: delivery.publisher } },
    );
    return this.giveUp(input, envelope.header, envelope.body, 'forged-source', error, 0, delivery);
  }

  private undecodable(input: string, envelope: Envelope, error: unknown, delivery: Delivery): Promise<void> {
    const reason = isEdgeKitError(error, 'validation-failed') ? 'validation-failed' : 'decode-failed';
    if (reason === 'decode-failed') this.counters.decodeErrors++;
    return this.giveUp(input, envelope.header, envelope.body, reason, error, 0, delivery);
  }

  /** Runs the handler's remaining attempts (after `failure` on the previous one, if given), then dead-letters. */
  private async deliverSlow(
    input: string,
    envelope: Envelope,
    first: Inbound<never>,
    handler: InputHandler<never>,
    delivery: Delivery,
    failure?: unknown,
  ): Promise<void> {
    let attempt = first.attempt;
    let lastError = failure;
    if (failure !== undefined) attempt++;
    for (; attempt <= this.opts.maxAttempts; attempt++) {
      if (lastError !== undefined && this.opts.retryDelayInMs > 0) await sleep(this.clock, this.opts.retryDelayInMs);
      try {
        await handler(attempt === first.attempt ? first : first.withAttempt(attempt));
        this.counters.processed++;
        delivery.ack();
        return;
      } catch (error) {
        if (error instanceof AbandonedDelivery) {
          delivery.release?.();
          return;
        }
        this.counters.handlerErrors++;
        lastError = error;
      }
    }
    await this.giveUp(
      input,
      envelope.header,
      envelope.body,
      'handler-failed',
      lastError,
      this.opts.maxAttempts,
      delivery,
    );
  }

  private async giveUp(
    input: string,
    header: EnvelopeHeader | undefined,
    body: Uint8Array,
    reason: DeadLetterReason,
    error: unknown,
    attempts: number,
    delivery: Delivery,
  ): Promise<void> {
    // Acknowledged only once the dead letter is with the broker; otherwise the message stays for redelivery.
    if (await this.deadLetter(input, header, body, reason, error, attempts)) delivery.ack();
    else delivery.release?.();
  }

  private async deadLetter(
    input: string,
    header: EnvelopeHeader | undefined,
    body: Uint8Array,
    reason: DeadLetterReason,
    error: unknown,
    attempts: number,
  ): Promise<boolean> {
    // The reason's text is bounded: a dead letter must stay within the size brokers are configured for.
    const text = messageOf(error);
    const info = {
      reason,
      error: text.length > MAX_DEAD_LETTER_ERROR_CHARS ? `${text.slice(0, MAX_DEAD_LETTER_ERROR_CHARS)}…` : text,
      input,
      attempts,
      at: this.clock.now(),
    };
    const dead: EnvelopeHeader = {
      ...(header ?? {
        messageId: uuid(),
        createdAt: this.clock.now(),
        sourceDeviceId: '',
        sourceModuleId: '',
        properties: {},
      }),
      deadLetter: info,
    };
    this.report_error(
      new EdgeKitError(errorCodeOf(reason), messageOf(error), {
        cause: error,
        details: info,
      }),
      `message ${header?.messageId ?? '(undecodable)'} on input "${input}" dead-lettered (${reason})`,
    );
    // The original was within the size limit; the dead-letter field adds a few hundred bytes, which brokers accept.
    const bytes = encodeEnvelope(dead, body);
    try {
      await this.publish(addresses.deadLetter(this.deviceId, this.moduleId), bytes, undefined, undefined);
      this.counters.deadLettered++;
      return true;
    } catch (publishError) {
      this.report_error(
        publishError,
        'could not publish a dead letter; the message stays unacknowledged for redelivery',
      );
      return false;
    }
  }

  // ---------------------------------------------------------------- twin

  private onDesiredValue(value: Uint8Array | undefined): void {
    let doc: TwinDocument<JsonObject>;
    try {
      doc = decodeTwin(value, 'desired properties');
    } catch (error) {
      this.report_error(error, 'desired properties ignored');
      return;
    }
    this.chainDesired(() => this.applyDesired(doc)).catch(() => undefined); // reported in the chain
  }

  /**
   * Desired work runs one step at a time, in order; close() drains it. A step that fails is reported and does not
   * stop the steps after it; the caller of this step gets its failure too.
   */
  private chainDesired(step: () => Promise<void>): Promise<void> {
    const run = this.track(this.desiredChain.then(step));
    this.desiredChain = run.catch((error: unknown) => this.report_error(error, 'applying desired properties failed'));
    return run;
  }

  private async applyDesired(doc: TwinDocument<JsonObject>): Promise<void> {
    const previous = this.desiredDoc;
    if (doc.version <= previous.version) return;
    const patch = diffPatch(previous.properties, doc.properties);
    const schema = this.contract.definition.desired;
    try {
      if (schema) await validate(schema, doc.properties, `desired properties version ${doc.version}`);
    } catch (error) {
      // Validate-then-apply: the document stays at the previous version for the module; the rejection is reported.
      this.desiredDoc = { version: doc.version, properties: previous.properties };
      await this.reportDesiredStatus(doc.version, error);
      return;
    }
    this.desiredDoc = doc;
    let rejection: unknown;
    for (const handler of this.desiredHandlers) {
      try {
        await handler(doc.properties as never, patch as never, doc.version);
      } catch (error) {
        rejection ??= error;
      }
    }
    // A rejected document does not become the module's baseline (as for a schema failure): the next patch is
    // computed against the last accepted one.
    if (rejection !== undefined) this.desiredDoc = { version: doc.version, properties: previous.properties };
    await this.reportDesiredStatus(doc.version, rejection);
  }

  /** Writes `desiredStatus` into the reported document on a rejection, and clears it on the next success. */
  private async reportDesiredStatus(version: number, error: unknown): Promise<void> {
    if (error === undefined && !this.desiredRejected) return;
    this.desiredRejected = error !== undefined;
    if (error !== undefined) this.report_error(error, `desired properties version ${version} rejected`);
    const status = error === undefined ? null : { version, status: 'rejected', reason: messageOf(error) };
    await this.report({ desiredStatus: status } as never).catch((e: unknown) =>
      this.report_error(e, 'could not report desiredStatus'),
    );
  }

  async onDesired(handler: DesiredHandler<never>): Promise<Registration> {
    if (this.closing) throw new EdgeKitError('closed', 'onDesired: the client is closed');
    if (typeof handler !== 'function') throw new TypeError('onDesired: handler must be a function');
    // Registered inside the chain: the first call sees the document current at that point, and later changes follow
    // in order (never an older version after a newer one).
    await this.chainDesired(async () => {
      this.desiredHandlers.add(handler);
      const doc = this.desiredDoc;
      if (doc.version === 0) return;
      try {
        await handler(doc.properties as never, doc.properties as never, doc.version);
      } catch (error) {
        await this.reportDesiredStatus(doc.version, error);
      }
    });
    return {
      close: async () => {
        this.desiredHandlers.delete(handler);
      },
    };
  }

  desired(): TwinSection<never> {
    return this.desiredDoc as TwinSection<never>;
  }

  report(patch: object, options: OperationOptions = {}): Promise<number> {
    try {
      checkTwin(patch, 'reported patch', { allowNull: true });
      checkSignal(options.abortSignal, 'report');
    } catch (error) {
      return Promise.reject(error);
    }
    const run = async (): Promise<number> => {
      const conn = await this.connection(options, 'report');
      const current = this.reportedDoc ?? { version: 0, properties: {} };
      const properties = mergePatch(current.properties, patch as JsonObject);
      const schema = this.contract.definition.reported;
      if (schema) await validate(schema, properties, 'reported properties');
      const next = { version: current.version + 1, properties };
      await conn.setRetained(addresses.reported(this.deviceId, this.moduleId), encodeTwin(next, 'reported properties'));
      this.reportedDoc = next;
      return next.version;
    };
    const result = this.reportChain.then(run, run);
    this.reportChain = result.catch(() => undefined);
    return this.track(result);
  }

  async getTwin(options: OperationOptions = {}): Promise<Twin<never, never>> {
    checkSignal(options.abortSignal, 'getTwin');
    const conn = await this.connection(options, 'getTwin');
    const [desired, reported] = await Promise.all([
      conn.getRetained(addresses.desired(this.deviceId, this.moduleId)),
      conn.getRetained(addresses.reported(this.deviceId, this.moduleId)),
    ]);
    return {
      desired: decodeTwin(desired, 'desired properties') as TwinSection<never>,
      reported: decodeTwin(reported, 'reported properties') as TwinSection<never>,
    };
  }

  // ---------------------------------------------------------------- methods

  async handle(method: string, handler: MethodHandler<never, unknown>): Promise<Registration> {
    if (this.closing) throw new EdgeKitError('closed', 'handle: the client is closed');
    checkName('method', method);
    if (!this.contract.methodOf(method))
      throw new RangeError(`handle: "${method}" is not a method of this module's contract`);
    if (typeof handler !== 'function') throw new TypeError('handle: handler must be a function');
    if (this.methodHandlers.has(method))
      throw new TypeError(`handle: method "${method}" already has a handler; close it first`);
    this.methodHandlers.set(method, handler);
    return {
      close: async () => {
        if (this.methodHandlers.get(method) === handler) this.methodHandlers.delete(method);
      },
    };
  }

  private async onMethodRequest(bytes: Uint8Array, publisher: string | undefined): Promise<Uint8Array> {
    const arrived = this.clock.now();
    let response: MethodResponseWire;
    try {
      response = await this.track(this.runMethod(bytes, arrived, publisher));
    } catch (error) {
      response = { status: 500, payload: { message: messageOf(error) } };
    }
    let out: Uint8Array;
    try {
      out = toJsonBytes(response);
    } catch (error) {
      out = toJsonBytes({
        status: 500,
        payload: { message: `the response cannot be encoded as JSON: ${messageOf(error)}` },
      });
    }
    if (out.length > MAX_METHOD_PAYLOAD_BYTES) {
      out = toJsonBytes({
        status: 500,
        payload: { message: `response payload is over ${MAX_METHOD_PAYLOAD_BYTES} bytes` },
      });
    }
    return out;
  }

  private async runMethod(
    bytes: Uint8Array,
    arrived: number,
    publisher: string | undefined,
  ): Promise<MethodResponseWire> {
    // Checked before decoding: a caller that is not edgekit may send anything; edgekit callers never send more.
    if (bytes.length > MAX_METHOD_PAYLOAD_BYTES) {
      return {
        status: 413,
        payload: {
          message: `the request is ${bytes.length} bytes; the limit is ${MAX_METHOD_PAYLOAD_BYTES}; not executed`,
        },
      };
    }
    const request = decodeMethodRequest(bytes);
    const anyMethod = this.anyMethod;
    const handler: MethodHandler<never, unknown> | undefined =
      this.methodHandlers.get(request.method) ??
      (anyMethod ? (payload, context) => anyMethod(request.method, payload, context) : undefined);
    const def = this.contract.methodOf(request.method);
    if (!handler || !def)
      return { status: 501, payload: { message: `method "${request.method}" is not implemented by ${this.moduleId}` } };
    const deadline = arrived + Math.min(request.timeoutInMs, MAX_METHOD_TIMEOUT);
    const wait = this.methodSlots.acquire();
    if (wait) await wait;
    const controller = new AbortController();
    let timer: ClockTimer | undefined;
    try {
      if (this.clock.now() >= deadline) {
        return { status: 504, payload: { message: 'the request expired before it could run; not executed' } };
      }
      timer = this.clock.setTimer(
        () => controller.abort(new EdgeKitError('timeout', 'the caller’s deadline passed')),
        deadline - this.clock.now(),
      );
      let payload: unknown;
      try {
        payload = await validate(def.request, request.payload, `request of method "${request.method}"`);
      } catch (error) {
        return { status: 400, payload: { message: messageOf(error) } };
      }
      const context: MethodContext = {
        signal: controller.signal,
        deadline,
        caller: callerOf(publisher, request.callerDeviceId, request.callerModuleId),
      };
      // Whatever a handler settles with after the deadline (often the abort it was given) is no answer in time: the
      // caller answers 504 on its own timer, and a late reply must not race that with another status.
      const late = (): MethodResponseWire => ({
        status: 504,
        payload: { message: `method "${request.method}" did not answer within the caller's deadline` },
      });
      try {
        const result = await handler(payload as never, context);
        if (controller.signal.aborted) return late();
        const answer = isAnswer(result) ? result : { status: 200, payload: result ?? null };
        if (answer.status < 300 && isSchema(def.response))
          await validate(def.response, answer.payload, `response of method "${request.method}"`);
        return { status: answer.status, payload: answer.payload ?? null };
      } catch (error) {
        if (controller.signal.aborted) return late();
        if (error instanceof MethodError) return { status: error.status, payload: error.payload };
        return { status: 500, payload: { message: messageOf(error) } };
      }
    } finally {
      timer?.cancel();
      this.methodSlots.release();
    }
  }

  async invoke(
    target: ModuleContract,
    module: string | ModuleRef,
    method: string,
    payload: unknown,
    options: InvokeOptions = {},
  ): Promise<MethodResult<never>> {
    if (typeof target !== 'object' || target === null || typeof target.methodOf !== 'function') {
      throw new TypeError("invoke: the first argument must be the target module's contract (or untypedModule)");
    }
    const ref = typeof module === 'string' ? { moduleId: module } : module;
    if (typeof ref !== 'object' || ref === null)
      throw new TypeError('invoke: module must be a module id or { deviceId, moduleId }');
    const deviceId = ref.deviceId === undefined ? this.deviceId : checkName('device id', ref.deviceId);
    const moduleId = checkName('module id', ref.moduleId);
    checkName('method', method);
    const def = target.methodOf(method);
    if (!def) throw new RangeError(`invoke: "${method}" is not a method of the target's contract`);
    checkSignal(options.abortSignal, 'invoke');
    const timeoutInMs = options.timeoutInMs ?? 30_000;
    if (!Number.isInteger(timeoutInMs) || timeoutInMs < MIN_METHOD_TIMEOUT || timeoutInMs > MAX_METHOD_TIMEOUT) {
      throw new RangeError(
        `invoke: timeoutInMs must be an integer from ${MIN_METHOD_TIMEOUT} to ${MAX_METHOD_TIMEOUT}, got ${timeoutInMs}`,
      );
    }
    return this.track(
      invokeMethod({
        connection: (o) => this.connection(o, 'invoke'),
        clock: this.clock,
        deviceId,
        moduleId,
        method,
        payload,
        response: def.response,
        timeoutInMs,
        ...(options.abortSignal ? { abortSignal: options.abortSignal } : {}),
        caller: { deviceId: this.deviceId, moduleId: this.moduleId },
        ...(this.watchedPresence.size < MAX_WATCHED_TARGETS || this.watchedPresence.has(`${deviceId}/${moduleId}`)
          ? { presence: () => this.presenceOf(deviceId, moduleId) }
          : {}),
      }),
    ) as Promise<MethodResult<never>>;
  }

  /**
   * Presence of a method target, from a watch kept after the first call (re-attached on reconnect like every
   * binding), so an invocation costs one round trip, not two.
   */
  private presenceOf(deviceId: string, moduleId: string): Promise<Presence | undefined> {
    const key = `${deviceId}/${moduleId}`;
    let entry = this.watchedPresence.get(key);
    if (!entry) {
      const watched: { state: Presence | undefined; ready: Promise<void> } = {
        state: undefined,
        ready: Promise.resolve(),
      };
      const binding: Binding = {
        internal: true,
        sub: undefined,
        conn: undefined,
        attach: (conn) =>
          conn.watchRetained(addresses.presence(deviceId, moduleId), (value) => {
            try {
              watched.state = decodePresence(value);
            } catch {
              watched.state = undefined;
            }
          }),
      };
      this.bindings.add(binding);
      const conn = this.conn;
      watched.ready = conn ? this.attachBinding(binding, conn) : Promise.resolve();
      entry = watched;
      this.watchedPresence.set(key, entry);
      // A failed watch is not kept: the next call tries again.
      watched.ready.catch(() => {
        this.bindings.delete(binding);
        if (this.watchedPresence.get(key) === watched) this.watchedPresence.delete(key);
      });
    }
    const e = entry;
    return e.ready.then(() => e.state);
  }
}

/** A delivery the client stopped handling without finishing it (an input iterator ended): not acked, not retried. */
class AbandonedDelivery extends Error {}

interface InputBinding extends Binding {
  readonly input: string;
}

/** A connect failure that waiting will not cure: wrong settings, or credentials the broker refuses. */
function isPermanent(error: unknown): boolean {
  if (!isEdgeKitError(error)) return false;
  if (error.code === 'invalid-configuration') return true;
  const reason = error.details.reason;
  return error.code === 'connection-failed' && (reason === 'authentication' || reason === 'not-authorized');
}

/** The error code `onError` reports a dead letter with. */
function errorCodeOf(reason: DeadLetterReason): EdgeKitErrorCode {
  if (reason === 'too-large') return 'message-too-large';
  if (reason === 'forged-source') return 'not-authorized';
  return reason;
}

/**
 * Whether a message's header names the module `publisher` is (an operator may put messages there under any source:
 * a replay keeps the original sender; an identity that is not one proves nothing).
 */
function sentBy(header: EnvelopeHeader, publisher: string): boolean {
  const identity = parseIdentity(publisher);
  if (identity?.kind !== 'module') return identity?.kind === 'operator';
  return identity.deviceId === header.sourceDeviceId && identity.moduleId === header.sourceModuleId;
}

/** A method's caller: the identity the broker proved when the transport carried one, else what the request claims. */
function callerOf(
  publisher: string | undefined,
  claimedDevice: string | undefined,
  claimedModule: string | undefined,
): MethodContext['caller'] {
  const identity = parseIdentity(publisher);
  if (identity?.kind === 'module') {
    return { deviceId: identity.deviceId, moduleId: identity.moduleId, authenticated: true };
  }
  if (identity?.kind === 'operator') return { operator: identity.name, authenticated: true };
  return {
    ...(claimedDevice === undefined ? {} : { deviceId: claimedDevice }),
    ...(claimedModule === undefined ? {} : { moduleId: claimedModule }),
    authenticated: false,
  };
}

function isAnswer(value: unknown): value is { status: number; payload: unknown } {
  if (typeof value !== 'object' || value === null) return false;
  const keys = Object.keys(value);
  return (
    typeof (value as { status?: unknown }).status === 'number' &&
    keys.every((k) => k === 'status' || k === 'payload') &&
    Number.isInteger((value as { status: number }).status)
  );
}

function checkProperties(props: unknown): Readonly<Record<string, string>> {
  if (props === undefined) return NO_PROPERTIES;
  if (typeof props !== 'object' || props === null || Array.isArray(props)) {
    throw new TypeError('send: properties must be an object of string values');
  }
  for (const [key, value] of Object.entries(props)) {
    if (key.length === 0 || key.length > 256)
      throw new RangeError(`send: property name "${key}" must be 1–256 characters`);
    if (typeof value !== 'string')
      throw new TypeError(
        `send: property "${key}" must be a string (IoT Hub properties are strings), got ${typeof value}`,
      );
  }
  return props as Record<string, string>;
}

function checkContentLabel(name: string, value: unknown): string {
  if (typeof value !== 'string' || value.length === 0 || value.length > 128 || /[\p{Cc}]/u.test(value)) {
    throw new RangeError(`send: ${name} must be a string of 1–128 characters without control characters`);
  }
  return value;
}

function checkId(name: string, value: unknown): string {
  if (typeof value !== 'string' || value.length === 0 || value.length > 128) {
    throw new RangeError(`send: ${name} must be a string of 1–128 characters`);
  }
  return value;
}

/** @internal Everything an invocation needs; shared by module clients and the service side. */
export interface InvokeRequest {
  connection(options: OperationOptions): Promise<TransportConnection>;
  readonly clock: Clock;
  readonly deviceId: string;
  readonly moduleId: string;
  readonly method: string;
  readonly payload: unknown;
  readonly response: import('../codecs/schema.js').Schema<unknown>;
  readonly timeoutInMs: number;
  readonly abortSignal?: AbortSignal;
  readonly caller?: { readonly deviceId?: string; readonly moduleId?: string };
  /** The target's presence when the caller already watches it; otherwise it is read from the broker per call. */
  readonly presence?: () => Promise<Presence | undefined>;
}

/**
 * @internal Invokes a direct method: 404 at once when the target is offline, 504 when no answer comes in time,
 * the answer's status and payload otherwise.
 */
export async function invokeMethod(req: InvokeRequest): Promise<MethodResult<unknown>> {
  const failed = (status: number, message: string, payload: unknown = { message }): MethodResult<unknown> => ({
    ok: false,
    status,
    payload,
    message,
  });
  if (req.abortSignal?.aborted) throw abortError(req.abortSignal);
  let body: Uint8Array;
  try {
    body = toJsonBytes({
      method: req.method,
      payload: req.payload === undefined ? null : req.payload,
      timeoutInMs: req.timeoutInMs,
      callerDeviceId: req.caller?.deviceId,
      callerModuleId: req.caller?.moduleId,
    });
  } catch (error) {
    throw new EdgeKitError('encode-failed', `invoke: payload cannot be encoded as JSON: ${messageOf(error)}`, {
      cause: error,
    });
  }
  if (body.length > MAX_METHOD_PAYLOAD_BYTES) {
    throw new EdgeKitError(
      'message-too-large',
      `invoke: payload is ${body.length} bytes; the limit is ${MAX_METHOD_PAYLOAD_BYTES}`,
    );
  }
  const started = req.clock.now();
  const conn = await req.connection({
    timeoutInMs: req.timeoutInMs,
    ...(req.abortSignal ? { abortSignal: req.abortSignal } : {}),
  });
  const target = `${req.deviceId}/${req.moduleId}`;
  const presence = req.presence
    ? await req.presence()
    : decodePresence(await conn.getRetained(addresses.presence(req.deviceId, req.moduleId)));
  if (presence === undefined) return failed(404, `module ${target} has never connected`);
  if (presence.state !== 'online') return failed(404, `module ${target} is offline`);
  const remaining = req.timeoutInMs - (req.clock.now() - started);
  if (remaining <= 0) return failed(504, `no answer from ${target} within ${req.timeoutInMs} ms`);
  const answer = await new Promise<Uint8Array | MethodResult<unknown>>((resolve, reject) => {
    const signal = req.abortSignal;
    const timer = req.clock.setTimer(
      () => finish(() => resolve(failed(504, `no answer from ${target} within ${req.timeoutInMs} ms`))),
      remaining,
    );
    const onAbort = () => finish(() => reject(abortError(signal as AbortSignal)));
    let settled = false;
    function finish(action: () => void) {
      if (settled) return;
      settled = true;
      timer.cancel();
      signal?.removeEventListener('abort', onAbort);
      action();
    }
    signal?.addEventListener('abort', onAbort, { once: true });
    conn.request(addresses.methods(req.deviceId, req.moduleId), body, { timeoutInMs: remaining }).then(
      (reply) => finish(() => resolve(reply)),
      (error: unknown) =>
        finish(() => {
          if (isEdgeKitError(error, 'not-found')) resolve(failed(404, `module ${target} is not serving methods`));
          else if (isEdgeKitError(error, 'timeout'))
            resolve(failed(504, `no answer from ${target} within ${req.timeoutInMs} ms`));
          else reject(error);
        }),
    );
  });
  if (!(answer instanceof Uint8Array)) return answer;
  const wire = decodeMethodResponse(answer);
  if (wire.status >= 200 && wire.status < 300) {
    try {
      return {
        ok: true,
        status: wire.status,
        payload: await validate(req.response, wire.payload, `response of ${req.method}`),
      };
    } catch (error) {
      return failed(502, messageOf(error), wire.payload);
    }
  }
  const message =
    typeof wire.payload === 'object' &&
    wire.payload !== null &&
    typeof (wire.payload as { message?: unknown }).message === 'string'
      ? (wire.payload as { message: string }).message
      : `method ${req.method} answered ${wire.status}`;
  return failed(wire.status, message, wire.payload);
}

/** @internal Replaces the id generator (deterministic ids in tests). */
export function setIdGenerator(generate: () => string): void {
  uuid = generate;
}
