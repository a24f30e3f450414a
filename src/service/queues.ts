/**
 * The operator's side of the queues nobody else reads: `upstream/<device>` (what routes send `INTO $upstream`) and
 * `deadletter/<device>/<module>` (what a module gave up). Upstream is consumed at-least-once as an async iterator;
 * dead letters are listed, replayed to their input or purged. Both take messages from the broker's queue, so
 * several consumers share them (competing consumers), unlike `monitor`, which only watches copies.
 */
import type { Clock } from '../clock.js';
import type { Codec } from '../codecs/codec.js';
import { type ClosableIterator, type Deferred, deferred } from '../core/async.js';
import { type DeadLetterInfo, decodeEnvelope, type Envelope, encodeEnvelope } from '../core/envelope.js';
import { abortError, EdgeKitError, isEdgeKitError, messageOf } from '../errors.js';
import { addresses, checkName } from '../names.js';
import type { Delivery, Subscription, TransportConnection } from '../transport.js';
import { headerFields, type MessageFields } from './monitor.js';
import { decodeLink } from './operations.js';

/** A message taken from an edgekit queue, decoded. */
export interface QueueMessage extends MessageFields {
  readonly type: 'message';
  /** The body bytes, as the sender's codec encoded them. */
  readonly body: Uint8Array;
  /**
   * The identity it was published under (`<device>/<module>`, or `$operator/<name>` for a replay), read from where
   * the broker checks it; absent when the publisher gave none.
   */
  readonly publisher?: string;
  /** The broker delivered it before (a consumer did not acknowledge it). */
  readonly redelivered: boolean;
  /**
   * The body decoded with a codec, e.g. `json<Telemetry>()` or `text()`. Rejects with `decode-failed` (or the
   * codec's `validation-failed`) on a body the codec cannot read.
   */
  decode<T>(codec: Codec<T>): Promise<T>;
}

/** Bytes in a queue that are not an edgekit message: reported with why, never dropped silently. */
export interface UndecodableQueueMessage {
  readonly type: 'undecodable';
  readonly bytes: Uint8Array;
  /** `decode-failed`, saying what is wrong. */
  readonly error: EdgeKitError;
  readonly publisher?: string;
  readonly redelivered: boolean;
}

/** What {@link ServiceClient.upstream} yields. */
export type UpstreamEvent = QueueMessage | UndecodableQueueMessage;

/** Options for {@link ServiceClient.upstream}. */
export interface UpstreamOptions {
  /**
   * Messages taken from the broker ahead of the loop (1 – 1 000; default 10). They are this consumer's until it
   * acknowledges or gives them back; 1 shares a backlog most evenly among competing consumers.
   */
  readonly prefetch?: number;
  /** Ends the iteration; the message in hand and those prefetched go back to the queue. */
  readonly abortSignal?: AbortSignal;
}

/** Counts of an {@link UpstreamConsumer}. */
export interface UpstreamStats {
  /** Messages yielded (undecodable ones included). */
  readonly delivered: number;
  /** Yielded entries of type `undecodable`. */
  readonly undecodable: number;
  /** Messages acknowledged: their loop body finished. */
  readonly acknowledged: number;
}

/**
 * An async iterator of a device's upstream messages, at-least-once: a message is acknowledged when the loop asks
 * for the next one, i.e. after the loop body for it finished. `break`, a throw, `close()` or the abort signal give the
 * message in hand (and any prefetched) back to the queue, for this or another consumer. When the connection is lost
 * the iteration rejects with `connection-lost`: consume again, the broker delivers what was not acknowledged.
 */
export interface UpstreamConsumer extends AsyncIterableIterator<UpstreamEvent> {
  stats(): UpstreamStats;
  /**
   * Acknowledges the message in hand now, as the loop's next turn would: for a loop that `break`s after a message it
   * has finished with. Nothing in hand: nothing happens.
   */
  ack(): void;
  /** Stops; the message in hand is not acknowledged. Idempotent. */
  close(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

/** A dead letter: the message a module gave up, and why. */
export interface DeadLetterMessage extends QueueMessage {
  readonly deadLetter: DeadLetterInfo;
}

/** What a dead-letter queue holds: dead letters, and bytes that are none (undecodable, or with no dead-letter field). */
export type DeadLetterEntry = DeadLetterMessage | UndecodableQueueMessage;

/** Options for {@link DeadLetterQueue.list}, {@link DeadLetterQueue.replay} and {@link DeadLetterQueue.purge}. */
export interface DeadLetterOptions {
  /**
   * Most entries to read: for `list` 1 – 1 000 (default 100; a listing holds them all unacknowledged until it ends),
   * for `replay` and `purge` 1 – 10 000 (default 10 000).
   */
  readonly limit?: number;
  /**
   * The queue counts as read to its end when the broker has handed out nothing new for this long (10 – 60 000 ms;
   * default 1 000). A queue has no "empty" signal common to every transport; a broker that stalls longer than this
   * makes the operation end early, never take more than it said.
   */
  readonly idleInMs?: number;
  readonly abortSignal?: AbortSignal;
}

/** What {@link DeadLetterQueue.list} found. The entries stay in the queue. */
export interface DeadLetterListing {
  /** In queue order. */
  readonly entries: readonly DeadLetterEntry[];
  /** Entries of type `undecodable`. */
  readonly undecodable: number;
  /** `limit` entries were read: there may be more. */
  readonly limited: boolean;
}

/** A dead letter {@link DeadLetterQueue.replay} left in the queue, and why. */
export interface SkippedDeadLetter {
  readonly entry: DeadLetterEntry;
  readonly reason: string;
}

/** What {@link DeadLetterQueue.replay} did. */
export interface ReplayResult {
  /** Republished to `inputs/<device>/<module>/<input>` and removed from the dead-letter queue, in queue order. */
  readonly replayed: readonly { readonly messageId: string; readonly input: string }[];
  /** Left in the queue: undecodable bytes and dead letters that cannot be replayed. */
  readonly skipped: readonly SkippedDeadLetter[];
  /**
   * A message replayed by this run came back dead-lettered again (the module still fails it): replay stopped there,
   * leaving it and what follows in the queue.
   */
  readonly cameBack: boolean;
}

/** What {@link DeadLetterQueue.purge} removed. */
export interface PurgeResult {
  /** Entries removed, undecodable ones included. */
  readonly purged: number;
  /** Of those, undecodable. */
  readonly undecodable: number;
}

/**
 * The dead letters of one module, `deadletter/<device>/<module>`. Each operation reads the queue from its head
 * until it has given nothing new for `idleInMs`. Another consumer of the queue (another operator) meanwhile takes
 * its own share: every entry is handled by one of them.
 */
export interface DeadLetterQueue {
  readonly deviceId: string;
  readonly moduleId: string;
  /**
   * The dead letters, decoded, in queue order, without removing them: they are given back to the queue when the
   * listing ends (marked redelivered). On MQTT, at most as many as the broker hands out unacknowledged (Mosquitto's
   * `max_inflight_messages`, the transport's `receiveMaximum`) can be listed.
   */
  list(options?: DeadLetterOptions): Promise<DeadLetterListing>;
  /**
   * Republishes each dead letter, without its dead-letter field and under the operator's identity (the envelope keeps
   * the original sender, message id and properties), to the input it was given up on, then removes it — in queue
   * order, one at a time, each removed only after the broker has the copy (a crash between the two replays it twice,
   * with the same message id). Undecodable entries and dead letters that cannot be replayed (`decode-failed`,
   * `too-large`: no original body; `forged-source`: the sender was not who it claimed) stay, reported in `skipped`.
   * For a device bridged to this broker whose link is down (`ServiceClient.link`), it rejects with `not-found` and
   * replays nothing: the bridge would not carry the copies (docs/cloud.md).
   */
  replay(options?: DeadLetterOptions): Promise<ReplayResult>;
  /** Removes the entries (up to `limit`), undecodable ones too, and says how many. */
  purge(options?: DeadLetterOptions): Promise<PurgeResult>;
}

/** A connection to consume a queue on, held until released. */
export interface QueueLease {
  readonly conn: TransportConnection;
  release(): Promise<void>;
}

/** What the queue operations need of their service client. */
export interface QueueHost {
  readonly clock: Clock;
  /** The connection to consume `address` on (the client's own, or the queue's session where the transport needs one). */
  lease(address: string, signal?: AbortSignal): Promise<QueueLease>;
  /** The client's connection, to publish replays on. */
  connection(signal?: AbortSignal): Promise<TransportConnection>;
  /** Keeps the consumer until it closes, so closing the client ends it. */
  track<T extends ClosableIterator<unknown>>(consumer: T): T;
}

const MAX_PREFETCH = 1000;
const MAX_LIMIT = 10_000;
/** A listing holds every entry unacknowledged until it ends: no more than a consumer's window. */
const MAX_LIST = 1000;

function integerOption(what: string, name: string, value: unknown, min: number, max: number, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new RangeError(`${what}: ${name} must be an integer from ${min} to ${max}, got ${String(value)}`);
  }
  return value;
}

function signalOption(what: string, options: unknown): AbortSignal | undefined {
  if (typeof options !== 'object' || options === null) throw new TypeError(`${what}: options must be an object`);
  const signal = (options as { abortSignal?: unknown }).abortSignal;
  if (signal !== undefined && !(signal instanceof AbortSignal)) {
    throw new TypeError(`${what}: abortSignal must be an AbortSignal`);
  }
  return signal;
}

function asDecodeError(error: unknown): EdgeKitError {
  return isEdgeKitError(error) ? error : new EdgeKitError('decode-failed', messageOf(error), { cause: error });
}

function messageOfEnvelope(envelope: Envelope, delivery: Delivery): QueueMessage {
  const body = envelope.body;
  return {
    type: 'message',
    ...headerFields(envelope.header),
    body,
    ...(delivery.publisher === undefined ? {} : { publisher: delivery.publisher }),
    redelivered: delivery.redelivered,
    decode: async <T>(codec: Codec<T>): Promise<T> => {
      if (typeof codec?.decode !== 'function') throw new TypeError('decode: codec must be a Codec');
      try {
        return await codec.decode(body);
      } catch (error) {
        throw asDecodeError(error);
      }
    },
  };
}

function undecodable(delivery: Delivery, error: EdgeKitError): UndecodableQueueMessage {
  return {
    type: 'undecodable',
    bytes: delivery.bytes,
    error,
    ...(delivery.publisher === undefined ? {} : { publisher: delivery.publisher }),
    redelivered: delivery.redelivered,
  };
}

/** A delivery decoded: the envelope, or why it is none. Never throws. */
function read(delivery: Delivery): { envelope: Envelope } | { error: EdgeKitError } {
  try {
    return { envelope: decodeEnvelope(delivery.bytes) };
  } catch (error) {
    return { error: asDecodeError(error) };
  }
}

function upstreamEvent(delivery: Delivery): UpstreamEvent {
  const decoded = read(delivery);
  return 'error' in decoded ? undecodable(delivery, decoded.error) : messageOfEnvelope(decoded.envelope, delivery);
}

/** Gives deliveries back, last first, so that where a transport puts each at the queue's head they keep their order. */
function giveBack(deliveries: readonly Delivery[]): void {
  for (let i = deliveries.length - 1; i >= 0; i--) deliveries[i]?.release?.();
}

/** @internal Starts consuming a device's upstream queue; used by the service client. */
export async function startUpstream(
  deviceId: string,
  options: UpstreamOptions,
  host: QueueHost,
): Promise<UpstreamConsumer> {
  const signal = signalOption('upstream', options);
  if (deviceId === '*') {
    throw new EdgeKitError(
      'unsupported',
      "upstream('*'): each device's upstream is a queue of its own (on MQTT, a session of its own), and no transport " +
        'can consume them all as one queue without copies; consume each device (ServiceClient.devices() lists them)',
    );
  }
  checkName('device id', deviceId);
  const prefetch = integerOption('upstream', 'prefetch', options.prefetch, 1, MAX_PREFETCH, 10);
  if (signal?.aborted) throw abortError(signal);
  const address = addresses.upstream(deviceId);
  const lease = await host.lease(address, signal);

  /** Delivered by the broker, not yet yielded. */
  const waiting: Delivery[] = [];
  /** Yielded; acknowledged when the loop asks for the next. */
  let inHand: Delivery | undefined;
  let reader: Deferred<IteratorResult<UpstreamEvent>> | undefined;
  let ended: { error?: EdgeKitError } | undefined;
  let subscription: Subscription | undefined;
  let stopping: Promise<void> | undefined;
  let delivered = 0;
  let undecodableCount = 0;
  let acknowledged = 0;

  const yieldOf = (delivery: Delivery): IteratorResult<UpstreamEvent> => {
    inHand = delivery;
    delivered++;
    const event = upstreamEvent(delivery);
    if (event.type === 'undecodable') undecodableCount++;
    return { value: event, done: false };
  };
  const end = (error?: EdgeKitError) => {
    if (ended) return;
    ended = error === undefined ? {} : { error };
    const r = reader;
    reader = undefined;
    if (r) {
      if (error) r.reject(error);
      else r.resolve({ value: undefined, done: true });
    }
  };
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      end();
      signal?.removeEventListener('abort', onAbort);
      await subscription?.close().catch(() => undefined);
      const back = [...(inHand ? [inHand] : []), ...waiting.splice(0)];
      inHand = undefined;
      giveBack(back);
      await lease.release();
    })();
    return stopping;
  };
  const onAbort = () => void stop();

  const ack = () => {
    // Once stopping, the message in hand goes back instead.
    if (!inHand || ended) return;
    inHand.ack();
    inHand = undefined;
    acknowledged++;
  };
  const consumer = host.track<UpstreamConsumer>({
    ack,
    next: () => {
      ack();
      if (ended) return ended.error ? Promise.reject(ended.error) : Promise.resolve({ value: undefined, done: true });
      const delivery = waiting.shift();
      if (delivery) return Promise.resolve(yieldOf(delivery));
      reader = deferred();
      return reader.promise;
    },
    return: async () => {
      await stop();
      return { value: undefined, done: true };
    },
    close: stop,
    stats: () => ({ delivered, undecodable: undecodableCount, acknowledged }),
    [Symbol.asyncDispose]: stop,
    [Symbol.asyncIterator]() {
      return this;
    },
  });

  signal?.addEventListener('abort', onAbort, { once: true });
  void lease.conn.closed.then((cause) => {
    if (ended) return;
    // Unacknowledged messages went back to the broker with the connection.
    inHand = undefined;
    waiting.length = 0;
    end(
      new EdgeKitError(
        'connection-lost',
        `the connection consuming ${address} ended${cause ? `: ${messageOf(cause)}` : ''}; consume again to go on (nothing unacknowledged is lost)`,
        { cause },
      ),
    );
    void stop();
  });
  try {
    subscription = await lease.conn.consume(address, { prefetch }, (delivery) => {
      const r = ended ? undefined : reader;
      if (r) {
        reader = undefined;
        r.resolve(yieldOf(delivery));
      } else waiting.push(delivery);
    });
  } catch (error) {
    await stop();
    throw error;
  }
  if (ended) await stop(); // closed or aborted while subscribing
  return consumer;
}

interface DrainOptions {
  readonly limit: number;
  readonly idleInMs: number;
  readonly prefetch: number;
  readonly signal: AbortSignal | undefined;
}

/** What to do with one delivery: acknowledge it, keep it (given back at the end), or keep it and stop. */
type Decision = 'ack' | 'keep' | 'stop';

/**
 * Reads `address` from its head, one delivery at a time, until `limit` were read, nothing came for `idleInMs`, or
 * `decide` says stop; gives back what was kept.
 */
async function drain(
  host: QueueHost,
  address: string,
  options: DrainOptions,
  decide: (delivery: Delivery) => Promise<Decision>,
): Promise<{ read: number; limited: boolean }> {
  if (options.signal?.aborted) throw abortError(options.signal);
  const lease = await host.lease(address, options.signal);
  const waiting: Delivery[] = [];
  const kept: Delivery[] = [];
  let wake: (() => void) | undefined;
  let lost: EdgeKitError | undefined;
  let finished = false;
  let subscription: Subscription | undefined;
  const poke = () => {
    const w = wake;
    wake = undefined;
    w?.();
  };
  const onAbort = () => poke();
  options.signal?.addEventListener('abort', onAbort, { once: true });
  void lease.conn.closed.then((cause) => {
    if (finished) return;
    lost = new EdgeKitError('connection-lost', `the connection reading ${address} ended: ${messageOf(cause)}`, {
      cause,
    });
    poke();
  });
  let read = 0;
  let limited = false;
  try {
    // Deliveries that come while finishing wait too: given back once the subscription is closed.
    subscription = await lease.conn.consume(address, { prefetch: options.prefetch }, (delivery) => {
      waiting.push(delivery);
      poke();
    });
    for (;;) {
      if (lost) throw lost;
      if (options.signal?.aborted) throw abortError(options.signal);
      if (read >= options.limit) {
        limited = true;
        break;
      }
      let delivery = waiting.shift();
      if (delivery === undefined) {
        const timer = host.clock.setTimer(poke, options.idleInMs);
        await new Promise<void>((resolve) => {
          wake = resolve;
        });
        timer.cancel();
        delivery = waiting.shift();
        if (delivery === undefined) {
          if (lost || options.signal?.aborted) continue;
          break; // idle: the queue is read to its end
        }
      }
      read++;
      let decision: Decision;
      try {
        decision = await decide(delivery);
      } catch (error) {
        kept.push(delivery);
        throw error;
      }
      if (decision === 'ack') delivery.ack();
      else kept.push(delivery);
      if (decision === 'stop') break;
    }
  } finally {
    finished = true;
    options.signal?.removeEventListener('abort', onAbort);
    await subscription?.close().catch(() => undefined);
    giveBack([...kept, ...waiting.splice(0)]);
    await lease.release();
  }
  return { read, limited };
}

function deadLetterEntry(delivery: Delivery): DeadLetterEntry {
  const decoded = read(delivery);
  if ('error' in decoded) return undecodable(delivery, decoded.error);
  const { deadLetter } = decoded.envelope.header;
  if (deadLetter === undefined) {
    return undecodable(
      delivery,
      new EdgeKitError('decode-failed', 'a message in a dead-letter queue without a dead-letter field'),
    );
  }
  return { ...messageOfEnvelope(decoded.envelope, delivery), deadLetter };
}

/** Why a dead letter cannot be replayed, or undefined when it can. */
function notReplayable(entry: DeadLetterEntry): string | undefined {
  if (entry.type === 'undecodable') return `undecodable: ${entry.error.message}`;
  const { reason, input } = entry.deadLetter;
  if (reason === 'decode-failed') return 'decode-failed: its body is the bytes the module could not decode';
  if (reason === 'too-large') return 'too-large: its body was not kept';
  if (reason === 'forged-source') return 'forged-source: replaying it would pass the forged sender on';
  try {
    checkName('input', input);
  } catch (error) {
    return `its input is invalid: ${messageOf(error)}`;
  }
  return undefined;
}

function drainOptions(what: string, options: DeadLetterOptions, defaultLimit: number, maxLimit: number): DrainOptions {
  const signal = signalOption(what, options);
  const limit = integerOption(what, 'limit', options.limit, 1, maxLimit, defaultLimit);
  const idleInMs = integerOption(what, 'idleInMs', options.idleInMs, 10, 60_000, 1000);
  // Everything listed or skipped is held unacknowledged until the end, so the window must hold `limit`.
  return { limit, idleInMs, prefetch: Math.min(limit, MAX_LIST), signal };
}

/** @internal The dead-letter queue of a module; used by the service client. */
export function deadLetterQueue(deviceId: string, moduleId: string, host: QueueHost): DeadLetterQueue {
  checkName('device id', deviceId);
  checkName('module id', moduleId);
  const address = addresses.deadLetter(deviceId, moduleId);
  return {
    deviceId,
    moduleId,
    async list(options = {}) {
      const drainWith = drainOptions('deadLetters.list', options, 100, MAX_LIST);
      const entries: DeadLetterEntry[] = [];
      const { limited } = await drain(host, address, drainWith, async (delivery) => {
        entries.push(deadLetterEntry(delivery));
        return 'keep';
      });
      return { entries, undecodable: entries.filter((e) => e.type === 'undecodable').length, limited };
    },
    async replay(options = {}) {
      const drainWith = drainOptions('deadLetters.replay', options, MAX_LIMIT, MAX_LIMIT);
      const conn = await host.connection(drainWith.signal);
      // Behind a bridge that is down, what is published for the device reaches nobody (docs/cloud.md): refuse, and
      // leave every dead letter where it is.
      if (decodeLink(await conn.getRetained(addresses.link(deviceId))) === 'disconnected') {
        throw new EdgeKitError(
          'not-found',
          `deadLetters.replay: device ${deviceId} is not connected to the cloud (the bridge of its broker is down); nothing was replayed, replay once it is back`,
        );
      }
      const replayed: { messageId: string; input: string }[] = [];
      const skipped: SkippedDeadLetter[] = [];
      const done = new Set<string>();
      let cameBack = false;
      await drain(host, address, drainWith, async (delivery) => {
        const entry = deadLetterEntry(delivery);
        const why = notReplayable(entry);
        if (why !== undefined || entry.type !== 'message') {
          skipped.push({ entry, reason: why ?? 'undecodable' });
          return 'keep';
        }
        if (done.has(entry.messageId)) {
          cameBack = true;
          return 'stop';
        }
        const decoded = decodeEnvelope(delivery.bytes);
        const { deadLetter: _, ...header } = decoded.header;
        const input = entry.deadLetter.input;
        await conn.publish(addresses.input(deviceId, moduleId, input), encodeEnvelope(header, decoded.body));
        done.add(entry.messageId);
        replayed.push({ messageId: entry.messageId, input });
        return 'ack';
      });
      return { replayed, skipped, cameBack };
    },
    async purge(options = {}) {
      const drainWith = drainOptions('deadLetters.purge', options, MAX_LIMIT, MAX_LIMIT);
      let undecodableCount = 0;
      const { read: purged } = await drain(host, address, drainWith, async (delivery) => {
        if (deadLetterEntry(delivery).type === 'undecodable') undecodableCount++;
        return 'ack';
      });
      return { purged, undecodable: undecodableCount };
    },
  };
}
