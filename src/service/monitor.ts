/**
 * Watching the messages that flow, for operators: copies of what is routed to module inputs, to `$upstream` and to
 * dead-letter queues, observed without consuming them, decoded and filtered, read as an async iterator.
 */
import { isUtf8 } from 'node:buffer';
import type { Clock } from '../clock.js';
import { Channel, type ClosableIterator, closableIterator } from '../core/async.js';
import { type DeadLetterInfo, decodeEnvelope, type Envelope, type EnvelopeHeader } from '../core/envelope.js';
import { abortError, EdgeKitError, messageOf } from '../errors.js';
import { checkName } from '../names.js';
import type { Subscription, TransportConnection } from '../transport.js';

/** Where an observed message was going. */
export type MonitorDestination =
  | { readonly kind: 'input'; readonly deviceId: string; readonly moduleId: string; readonly input: string }
  | { readonly kind: 'upstream'; readonly deviceId: string }
  | { readonly kind: 'deadletter'; readonly deviceId: string; readonly moduleId: string };

/** Which destinations to watch. */
export type MonitorKind = MonitorDestination['kind'];

/** Which messages {@link ServiceClient.monitor} yields; every field narrows, absent fields match everything. */
export interface MonitorFilter {
  readonly deviceId?: string;
  /** The module that sent the message (for dead letters: the module that gave it up). */
  readonly moduleId?: string;
  /** The output it was sent on. */
  readonly output?: string;
  /** Default all: `input` (routed to a module input), `upstream`, `deadletter`. */
  readonly kinds?: readonly MonitorKind[];
}

/** Options for {@link ServiceClient.monitor}. */
export interface MonitorOptions {
  /** Messages kept for a slow reader; beyond it the oldest is dropped (counted). Default 10 000. */
  readonly maxBuffered?: number;
  /** Ends the monitor. */
  readonly abortSignal?: AbortSignal;
  /**
   * Hears of a lost connection and of each failed attempt to watch again; the monitor keeps trying, and messages
   * sent while it is away are not seen.
   */
  readonly onError?: (error: EdgeKitError) => void;
}

/** A message seen by a monitor, decoded. */
export interface MonitoredMessage extends MessageFields {
  readonly type: 'message';
  readonly destination: MonitorDestination;
  /** Epoch ms when the monitor saw it. */
  readonly observedAt: number;
  /** The parsed JSON value for JSON content, a string for text, the bytes otherwise. */
  readonly body: unknown;
  readonly bodyBytes: Uint8Array;
  /** On dead letters: why the module gave the message up. */
  readonly deadLetter?: DeadLetterInfo;
}

/** Bytes on a watched address that are not an edgekit message: shown, never dropped silently. */
export interface UndecodableMessage {
  readonly type: 'undecodable';
  readonly destination: MonitorDestination;
  readonly observedAt: number;
  readonly bytes: Uint8Array;
  /** `decode-failed`, with the reason. */
  readonly error: EdgeKitError;
}

/** What a monitor yields. */
export type MonitorEvent = MonitoredMessage | UndecodableMessage;

/** Counts of a monitor. */
export interface MonitorStats {
  /** Messages yielded or waiting to be. */
  readonly observed: number;
  readonly undecodable: number;
  /** Dropped because the reader fell more than `maxBuffered` behind. */
  readonly dropped: number;
}

/** An async iterator of {@link MonitorEvent}s; ends when closed (also by `break`). */
export interface MessageMonitor extends ClosableIterator<MonitorEvent> {
  stats(): MonitorStats;
}

/** What a monitor needs of its service client. */
export interface MonitorHost {
  readonly clock: Clock;
  /** Subscribes with `start` now and again after every reconnect. */
  keep(
    start: (conn: TransportConnection) => Promise<Subscription>,
    onError?: (error: EdgeKitError) => void,
  ): Promise<{ close(): Promise<void> }>;
  /** Keeps the monitor until it closes, so closing the client ends it. */
  track<T extends ClosableIterator<unknown>>(watch: T): T;
}

const KINDS: readonly MonitorKind[] = ['input', 'upstream', 'deadletter'];

/** The observe patterns of a filter. */
function patternsOf(filter: MonitorFilter): string[] {
  const device = filter.deviceId ?? '*';
  const kinds = filter.kinds ?? KINDS;
  return kinds.map((kind) =>
    kind === 'input'
      ? `inputs/${device}/*/*`
      : kind === 'upstream'
        ? `upstream/${device}`
        : `deadletter/${device}/${filter.moduleId ?? '*'}`,
  );
}

function destinationOf(address: string): MonitorDestination | undefined {
  const [kind, deviceId, moduleId, input] = address.split('/');
  if (deviceId === undefined) return undefined;
  if (kind === 'inputs' && moduleId !== undefined && input !== undefined)
    return { kind: 'input', deviceId, moduleId, input };
  if (kind === 'upstream') return { kind: 'upstream', deviceId };
  if (kind === 'deadletter' && moduleId !== undefined) return { kind: 'deadletter', deviceId, moduleId };
  return undefined;
}

/** A message's system and application properties, as the operator's views (monitor, upstream, dead letters) give them. */
export interface MessageFields {
  /** Unique per message; the same on a redelivery or a replay, so a consumer can de-duplicate. */
  readonly messageId: string;
  readonly correlationId?: string;
  readonly contentType?: string;
  readonly contentEncoding?: string;
  /** Epoch ms when it was sent. */
  readonly createdAt: number;
  /** The module that sent it and the output, as the envelope says (empty ids on the dead letter of bytes that were no envelope). */
  readonly source: { readonly deviceId: string; readonly moduleId: string; readonly output?: string };
  readonly properties: Readonly<Record<string, string>>;
}

/** @internal The {@link MessageFields} of an envelope header. */
export function headerFields(h: EnvelopeHeader): MessageFields {
  return {
    messageId: h.messageId,
    ...(h.correlationId === undefined ? {} : { correlationId: h.correlationId }),
    ...(h.contentType === undefined ? {} : { contentType: h.contentType }),
    ...(h.contentEncoding === undefined ? {} : { contentEncoding: h.contentEncoding }),
    createdAt: h.createdAt,
    source: {
      deviceId: h.sourceDeviceId,
      moduleId: h.sourceModuleId,
      ...(h.sourceOutput === undefined ? {} : { output: h.sourceOutput }),
    },
    properties: h.properties,
  };
}

const utf8 = new TextDecoder('utf-8');

/** JSON for JSON content types, text for text and UTF-8 content, the bytes otherwise. */
export function bodyOf(
  contentType: string | undefined,
  contentEncoding: string | undefined,
  bytes: Uint8Array,
): unknown {
  const type = contentType?.toLowerCase() ?? '';
  const textual = type.includes('json') || type.startsWith('text/') || /^utf-?8$/i.test(contentEncoding ?? '');
  if (!textual || !isUtf8(bytes)) return bytes;
  const text = utf8.decode(bytes);
  if (type.includes('json')) {
    try {
      return JSON.parse(text);
    } catch {
      return text;
    }
  }
  return text;
}

function checkFilter(filter: MonitorFilter): void {
  if (typeof filter !== 'object' || filter === null) throw new TypeError('monitor: filter must be an object');
  if (filter.deviceId !== undefined) checkName('device id', filter.deviceId);
  if (filter.moduleId !== undefined) checkName('module id', filter.moduleId);
  if (filter.output !== undefined) checkName('output', filter.output);
  if (filter.kinds !== undefined) {
    if (!Array.isArray(filter.kinds) || filter.kinds.length === 0) {
      throw new TypeError('monitor: kinds must be a non-empty array of "input", "upstream", "deadletter"');
    }
    for (const kind of filter.kinds) {
      if (!KINDS.includes(kind)) {
        throw new RangeError(`monitor: unknown kind ${JSON.stringify(kind)}; use "input", "upstream" or "deadletter"`);
      }
    }
  }
}

/** @internal Starts a monitor; used by the service client. */
export async function startMonitor(
  filter: MonitorFilter,
  options: MonitorOptions,
  host: MonitorHost,
): Promise<MessageMonitor> {
  checkFilter(filter);
  const maxBuffered = options.maxBuffered ?? 10_000;
  if (!Number.isInteger(maxBuffered) || maxBuffered < 1) {
    throw new RangeError(`monitor: maxBuffered must be a positive integer, got ${String(maxBuffered)}`);
  }
  const signal = options.abortSignal;
  if (signal?.aborted) throw abortError(signal);
  let observed = 0;
  let undecodable = 0;
  const subscriptions: Array<{ close(): Promise<void> }> = [];
  const channel = new Channel<MonitorEvent>(undefined, maxBuffered);
  let closed = false;
  const iterator = closableIterator(channel, async () => {
    closed = true;
    signal?.removeEventListener('abort', onAbort);
    await Promise.all(subscriptions.map((s) => s.close()));
  });
  const monitor: MessageMonitor = host.track(
    Object.assign(iterator, {
      stats: (): MonitorStats => ({ observed, undecodable, dropped: channel.dropped }),
    }),
  );
  const onAbort = () => void monitor.close();

  const onMessage = (address: string, bytes: Uint8Array) => {
    const destination = destinationOf(address);
    if (destination === undefined || closed) return;
    const observedAt = host.clock.now();
    let envelope: Envelope;
    try {
      envelope = decodeEnvelope(bytes);
    } catch (error) {
      undecodable++;
      const decodeError =
        error instanceof EdgeKitError ? error : new EdgeKitError('decode-failed', messageOf(error), { cause: error });
      channel.push({ type: 'undecodable', destination, observedAt, bytes, error: decodeError });
      return;
    }
    const h = envelope.header;
    const sender = destination.kind === 'deadletter' ? destination.moduleId : h.sourceModuleId;
    if (filter.moduleId !== undefined && sender !== filter.moduleId) return;
    if (filter.output !== undefined && h.sourceOutput !== filter.output) return;
    observed++;
    channel.push({
      type: 'message',
      destination,
      observedAt,
      ...headerFields(h),
      body: bodyOf(h.contentType, h.contentEncoding, envelope.body),
      bodyBytes: envelope.body,
      ...(h.deadLetter === undefined ? {} : { deadLetter: h.deadLetter }),
    });
  };

  // Listening before subscribing: an abort while subscribing closes the monitor too.
  signal?.addEventListener('abort', onAbort, { once: true });
  try {
    for (const pattern of patternsOf(filter)) {
      const kept = await host.keep((conn) => conn.observe(pattern, onMessage), options.onError);
      subscriptions.push(kept);
      if (closed) await kept.close(); // closed (or aborted) while subscribing
    }
  } catch (error) {
    await monitor.close();
    throw error;
  }
  return monitor;
}
