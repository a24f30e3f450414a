/**
 * The one error type edgekit throws for operational failures, plus helpers for argument errors.
 * Argument mistakes (a bad name, a negative timeout) are `TypeError`/`RangeError` thrown at the call.
 */

/** Every reason an edgekit operation can fail; switch on {@link EdgeKitError.code}. */
export type EdgeKitErrorCode =
  /** The transport could not connect (bad URL, refused, authentication failed). */
  | 'connection-failed'
  /** The connection dropped while an operation was in flight. */
  | 'connection-lost'
  /** The client or connection was closed before or during the operation. */
  | 'closed'
  /** The operation did not finish within its `…InMs` budget. */
  | 'timeout'
  /** The caller's `abortSignal` fired. */
  | 'aborted'
  /** An encoded message is over the 256 KiB limit, or a method payload over 128 KB. */
  | 'message-too-large'
  /** A body could not be encoded by its codec (e.g. a value JSON cannot represent). */
  | 'encode-failed'
  /** Bytes from the wire could not be decoded (malformed envelope or body). */
  | 'decode-failed'
  /** A body, desired document or method payload failed its schema. */
  | 'validation-failed'
  /** An input handler kept throwing; the message was dead-lettered (reported through `onError`). */
  | 'handler-failed'
  /** A route does not parse or compile; {@link EdgeKitError.details} names the position. */
  | 'invalid-route'
  /** A twin document breaks IoT Hub's limits (size, depth, property names). */
  | 'twin-limit'
  /** An optimistic-concurrency check failed: the twin moved since the expected version. */
  | 'version-conflict'
  /** The bounded offline send queue was full under the `reject` policy, or the message was evicted. */
  | 'offline-queue-full'
  /** A request found nobody serving it (target offline or unknown). */
  | 'not-found'
  /**
   * The broker refused the operation because the credentials do not allow it (an MQTT `not authorized` reason code,
   * AMQP `403 ACCESS_REFUSED`), or a message's claimed sender is not the identity that published it.
   */
  | 'not-authorized'
  /** A configuration value is missing or invalid (e.g. `fromEnvironment`). */
  | 'invalid-configuration'
  /** An optional peer dependency (mqtt, amqplib, protobufjs) is not installed. */
  | 'missing-dependency'
  /** The transport does not support the requested operation. */
  | 'unsupported'
  /** Any other failure reported by a transport library, translated at the boundary. */
  | 'transport-error';

/** Options for {@link EdgeKitError}. */
export interface EdgeKitErrorOptions {
  /** The underlying error, e.g. the transport library's. */
  cause?: unknown;
  /** Structured facts about the failure (position of a route error, limits, names). */
  details?: Readonly<Record<string, unknown>>;
}

/**
 * An operational failure. Check with {@link isEdgeKitError} (works across bundled copies of edgekit)
 * and branch on `code`.
 *
 * @example
 * ```ts
 * try { await client.send('alerts', alert) }
 * catch (e) { if (isEdgeKitError(e) && e.code === 'message-too-large') shrink(alert) }
 * ```
 */
export class EdgeKitError extends Error {
  override readonly name = 'EdgeKitError';
  readonly code: EdgeKitErrorCode;
  readonly details: Readonly<Record<string, unknown>>;

  constructor(code: EdgeKitErrorCode, message: string, options: EdgeKitErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.details = options.details ?? {};
  }
}

/** True for any {@link EdgeKitError}, optionally of the given code; checks `name` so it works across copies. */
export function isEdgeKitError(value: unknown, code?: EdgeKitErrorCode): value is EdgeKitError {
  if (typeof value !== 'object' || value === null) return false;
  const e = value as { name?: unknown; code?: unknown };
  return e.name === 'EdgeKitError' && typeof e.code === 'string' && (code === undefined || e.code === code);
}

/** The error an aborted operation rejects with: `aborted`, carrying the signal's reason as `cause`. */
export function abortError(signal: AbortSignal): EdgeKitError {
  return new EdgeKitError('aborted', 'the operation was aborted', { cause: signal.reason });
}

/**
 * What a transport's `request` rejects with when the handler serving it failed (the transport contract): the caller
 * learns at once, with the reason, instead of waiting for its timeout.
 */
export function servedRequestFailed(address: string, reason: string, cause?: unknown): EdgeKitError {
  return new EdgeKitError('transport-error', `the request on ${address} failed where it was served: ${reason}`, {
    ...(cause === undefined ? {} : { cause }),
  });
}

/** Message text of any thrown value, for logs and error payloads. */
export function messageOf(error: unknown): string {
  if (error instanceof Error) return error.message;
  return typeof error === 'string' ? error : String(error);
}

/**
 * Thrown by a method handler to answer with a chosen status (and optional payload).
 *
 * @example
 * ```ts
 * await client.handle('setInterval', (req) => {
 *   if (req.ms < 100) throw new MethodError(400, 'ms must be at least 100');
 *   return { ok: true };
 * });
 * ```
 */
export class MethodError extends Error {
  override readonly name = 'MethodError';
  readonly status: number;
  readonly payload: unknown;

  constructor(status: number, message: string, payload?: unknown) {
    super(message);
    if (!Number.isInteger(status) || status < 100 || status > 999) {
      throw new RangeError(`MethodError status must be an integer from 100 to 999, got ${status}`);
    }
    this.status = status;
    this.payload = payload === undefined ? { message } : payload;
  }
}
