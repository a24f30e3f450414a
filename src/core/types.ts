/**
 * The public types of the module client: messages, options, status, results. The implementation is in client.ts.
 */
import type { Clock } from '../clock.js';
import type { EdgeKitError } from '../errors.js';
import type { Transport } from '../transport.js';
import type {
  DesiredOf,
  InputBody,
  InputName,
  MethodName,
  MethodRequest,
  MethodResponse,
  ModuleContract,
  OutputBody,
  OutputName,
  ReportedOf,
} from './contract.js';
import type { DeadLetterInfo } from './envelope.js';

/** Where a message came from. */
export interface MessageSource {
  readonly deviceId: string;
  readonly moduleId: string;
  /** The output it was sent on (absent for messages injected by a service or test). */
  readonly output?: string;
}

/** A message arriving on an input, with its decoded body. */
export interface InboundMessage<T> {
  readonly body: T;
  /** The input it arrived on. */
  readonly input: string;
  readonly messageId: string;
  readonly correlationId: string | undefined;
  readonly contentType: string | undefined;
  readonly contentEncoding: string | undefined;
  readonly createdAt: Date;
  /** Application properties (always strings, as in IoT Hub). */
  readonly properties: Readonly<Record<string, string>>;
  readonly source: MessageSource;
  /** 1 on the first attempt; counts the handler's attempts for this delivery. */
  readonly attempt: number;
  /** True when the broker delivered this message before (a previous run did not finish it): de-duplicate by `messageId`. */
  readonly redelivered: boolean;
  /**
   * Who sent it, as the broker saw it: `<device>/<module>`, or `$operator/<name>` for a message an operator put
   * there; `undefined` when the transport carries no identity. With the broker permissions `edgekit identities`
   * generates, the broker refuses a message sent under another identity, and a message whose {@link source} names
   * another module than its publisher is dead-lettered (`forged-source`) before any handler sees it — so `source` can
   * be trusted whenever `publisher` is a module.
   */
  readonly publisher: string | undefined;
}

/** Options for `send`. */
export interface SendOptions {
  /** Application properties; values must be strings. */
  readonly properties?: Readonly<Record<string, string>>;
  /** Defaults to a random UUID. */
  readonly messageId?: string;
  readonly correlationId?: string;
  /**
   * Only for `untypedModule`, whose bodies are bytes passed on: the content type (and encoding) of those bytes,
   * e.g. what another system labelled them with. A contract's outputs take both from their codec; giving them there
   * is a TypeError.
   */
  readonly contentType?: string;
  readonly contentEncoding?: string;
  readonly abortSignal?: AbortSignal;
}

/** What `send` resolves to once the broker has every routed copy. */
export interface SendResult {
  readonly messageId: string;
  /** How many destinations (inputs and `$upstream`) the routes sent it to; 0 means no route matched. */
  readonly destinations: number;
}

/** Options for `onInput`. */
export interface InputOptions {
  /** Messages handled at once on this input. Default 1: strictly in order. */
  readonly concurrency?: number;
}

/** A registered handler; `close()` stops it. */
export interface Registration {
  close(): Promise<void>;
}

/** Handler of one input. Resolving acknowledges the message; throwing retries it, then dead-letters it. */
export type InputHandler<T> = (message: InboundMessage<T>) => void | Promise<void>;

/** Deeply optional form of `T` where `null` deletes a member: a JSON merge patch. */
export type TwinPatch<T> = {
  [K in keyof T]?: (T[K] extends Record<string, unknown> ? TwinPatch<T[K]> : T[K]) | null;
};

/** Called on every desired-properties change, and once at registration with the current document. */
export type DesiredHandler<D> = (desired: D, patch: TwinPatch<D>, version: number) => void | Promise<void>;

/** A twin section as the module sees it. */
export interface TwinSection<T> {
  readonly version: number;
  readonly properties: T;
}

/** Both twin sections. */
export interface Twin<D, R> {
  readonly desired: TwinSection<D>;
  readonly reported: TwinSection<R>;
}

/** Context given to a method handler. */
export interface MethodContext {
  /** Aborts at the caller's deadline: stop work, the caller has already been answered with 504. */
  readonly signal: AbortSignal;
  /** Epoch ms by which the caller needs the answer. */
  readonly deadline: number;
  /**
   * Who called. `authenticated`: the broker proved it (the request carried the caller's identity, which the broker's
   * permissions check) — then `deviceId`/`moduleId` are the calling module's, or `operator` the calling operator's
   * name; otherwise they are what the caller claimed.
   */
  readonly caller: {
    readonly deviceId?: string;
    readonly moduleId?: string;
    readonly operator?: string;
    readonly authenticated: boolean;
  };
}

/** An explicit method answer; a handler may also return just the payload (status 200). */
export interface MethodAnswer<T> {
  readonly status: number;
  readonly payload: T;
}

/** Handler of one direct method. Throw `MethodError(status)` for a chosen status; any other throw answers 500. */
export type MethodHandler<Req, Res> = (
  request: Req,
  context: MethodContext,
) => Res | MethodAnswer<Res> | Promise<Res | MethodAnswer<Res>>;

/** Result of `invoke`: `ok` for a 2xx status with the typed payload, otherwise the error status and its payload. */
export type MethodResult<Res> =
  | { readonly ok: true; readonly status: number; readonly payload: Res }
  | { readonly ok: false; readonly status: number; readonly payload: unknown; readonly message: string };

/** Which module a call is for; the device defaults to the caller's own. */
export interface ModuleRef {
  readonly deviceId?: string;
  readonly moduleId: string;
}

/** Options for `invoke`. */
export interface InvokeOptions {
  /** 5 000 – 300 000; default 30 000. The handler sees it as its deadline. */
  readonly timeoutInMs?: number;
  readonly abortSignal?: AbortSignal;
}

/** Options for operations that wait for the broker. */
export interface OperationOptions {
  readonly abortSignal?: AbortSignal;
  /** Give up after this long (default 30 000). */
  readonly timeoutInMs?: number;
}

/**
 * The connection's lifecycle; `status()` yields the current state first, then every change. A client never gives up
 * reconnecting by itself: `closed` comes after `close()`, or — with the `cause` — when the first connection could not
 * be made within `connectTimeoutInMs`.
 */
export type ConnectionStatus =
  | { readonly state: 'connecting' }
  | { readonly state: 'connected'; readonly since: Date }
  | { readonly state: 'disconnected'; readonly cause: Error }
  | { readonly state: 'reconnecting'; readonly attempt: number; readonly delayInMs: number; readonly cause: Error }
  | { readonly state: 'closed'; readonly cause?: Error };

/** Counters since the client was created. */
export interface ClientStats {
  readonly sent: number;
  /** Sends that matched no route. */
  readonly unrouted: number;
  readonly received: number;
  readonly processed: number;
  /** Handler attempts that threw. */
  readonly handlerErrors: number;
  readonly deadLettered: number;
  /** Messages whose bytes could not be decoded. */
  readonly decodeErrors: number;
  /** Messages that arrived over the 256 KiB limit (from a sender that is not edgekit), dead-lettered unread. */
  readonly tooLarge: number;
  /** Messages whose `source` named another module than the identity they were published under, dead-lettered. */
  readonly forged: number;
  readonly redelivered: number;
  readonly reconnects: number;
  /** Sends waiting in the offline queue right now. */
  readonly offlineQueued: number;
  /** Sends evicted or refused by the offline queue policy. */
  readonly offlineDropped: number;
  /** Sends whose TTL ran out while they waited in the offline queue (not sent, as the broker would drop them). */
  readonly offlineExpired: number;
}

/** Reconnect policy: exponential backoff with jitter. */
export interface ReconnectOptions {
  /** Default 200. */
  readonly initialDelayInMs?: number;
  /** Default 30 000. */
  readonly maxDelayInMs?: number;
  /** Default 2. */
  readonly multiplier?: number;
  /** Random spread as a fraction of the delay, 0–1. Default 0.2. */
  readonly jitter?: number;
}

/** What happens to sends while the client is disconnected. */
export interface OfflineQueueOptions {
  /** Default 1000; 0 makes sends fail at once while disconnected. */
  readonly maxMessages?: number;
  /** When full: `reject-new` (default) fails the new send; `drop-oldest` evicts (and fails) the oldest. */
  readonly policy?: 'reject-new' | 'drop-oldest';
}

/** Options for `connect`. */
export interface ConnectOptions {
  readonly deviceId: string;
  readonly moduleId: string;
  /** Defaults to the in-process memory transport on the process's default broker. */
  readonly transport?: Transport;
  /** Distinguishes replicas of one module (they share its inputs); part of the broker client id. */
  readonly replicaId?: string;
  /** Give up the first connection after this long. Default 30 000. */
  readonly connectTimeoutInMs?: number;
  readonly abortSignal?: AbortSignal;
  readonly reconnect?: ReconnectOptions;
  readonly offlineQueue?: OfflineQueueOptions;
  /** Handler attempts per message before it is dead-lettered. Default 3. */
  readonly maxAttempts?: number;
  /** Pause between handler attempts. Default 100. */
  readonly retryDelayInMs?: number;
  /** Direct methods handled at once. Default 8. */
  readonly methodConcurrency?: number;
  /** Errors that no promise can report: a dead-lettered message, a rejected desired patch, a bad route table. Default: `console.warn`. */
  readonly onError?: (error: EdgeKitError) => void;
  /** Time source (tests use a manual clock). */
  readonly clock?: Clock;
}

/** Options for `close`. */
export interface CloseOptions {
  /**
   * The longest `close()` takes, whatever the network does. In-flight handlers and sends get most of it; the rest
   * marks the module offline and disconnects. What does not finish in time is cut off: unfinished messages are
   * redelivered later, the connection is dropped and the broker's last will marks the module offline. 0 closes at
   * once without waiting for anything. Default 30 000.
   */
  readonly drainTimeoutInMs?: number;
}

/** Messages that reached the dead-letter queue, as observed by operators and tests. */
export interface DeadLetter {
  readonly info: DeadLetterInfo;
  readonly messageId: string;
  readonly body: Uint8Array;
  readonly properties: Readonly<Record<string, string>>;
}

/**
 * A connected module. Everything is typed from its contract `C`.
 *
 * @example
 * ```ts
 * const client = await connect(Filter, { deviceId: 'dev1', moduleId: 'filter' });
 * await client.onInput('telemetry', async (msg) => {
 *   if (msg.body.temperature > limit) await client.send('alerts', { temperature: msg.body.temperature });
 * });
 * ```
 */
export interface ModuleClient<C extends ModuleContract = ModuleContract> extends AsyncDisposable {
  readonly deviceId: string;
  readonly moduleId: string;
  readonly contract: C;

  /** Registers the handler of an input; resolves once the subscription is in place. */
  onInput<K extends InputName<C>>(
    input: K,
    handler: InputHandler<InputBody<C, K>>,
    options?: InputOptions,
  ): Promise<Registration>;
  /** The messages of an input as an async iterator; each is acknowledged when the next is requested (or the loop ends). */
  messages<K extends InputName<C>>(
    input: K,
    options?: InputOptions,
  ): AsyncIterableIterator<InboundMessage<InputBody<C, K>>>;
  /** Sends `body` on an output; resolves when the broker has every copy the routes make. */
  send<K extends OutputName<C>>(output: K, body: OutputBody<C, K>, options?: SendOptions): Promise<SendResult>;

  /** Registers a desired-properties handler; it is called at once with the current document if there is one. */
  onDesired(handler: DesiredHandler<DesiredOf<C>>): Promise<Registration>;
  /** The desired document as last received. */
  desired(): TwinSection<DesiredOf<C>>;
  /** Merges `patch` into the reported document; resolves to the new version once the broker has it. */
  report(patch: TwinPatch<ReportedOf<C>>, options?: OperationOptions): Promise<number>;
  /** Reads both twin sections from the broker. */
  getTwin(options?: OperationOptions): Promise<Twin<DesiredOf<C>, ReportedOf<C>>>;

  /** Serves a direct method. */
  handle<K extends MethodName<C>>(
    method: K,
    handler: MethodHandler<MethodRequest<C, K>, MethodResponse<C, K>>,
  ): Promise<Registration>;
  /** Invokes a method of another module, typed by that module's contract. */
  invoke<T extends ModuleContract, K extends MethodName<T>>(
    target: T,
    module: string | ModuleRef,
    method: K,
    payload: MethodRequest<T, K>,
    options?: InvokeOptions,
  ): Promise<MethodResult<MethodResponse<T, K>>>;

  /** The current connection state, then every change, until closed. */
  status(): AsyncIterableIterator<ConnectionStatus>;
  /** The current connection state. */
  readonly state: ConnectionStatus;
  stats(): ClientStats;

  /** Stops taking messages, drains in-flight handlers and sends, marks the module offline and disconnects. Idempotent. */
  close(options?: CloseOptions): Promise<void>;
  /** Resolves when the client is closed; never rejects. */
  closed(): Promise<void>;
}
