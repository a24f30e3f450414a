/**
 * The RabbitMQ names edgekit uses: how a transport address or retained key becomes an exchange, queue and routing key,
 * and the arguments each queue is declared with. docs/transports/amqp.md documents the same table for operators.
 */
import { createHash } from 'node:crypto';

/** AMQP 0-9-1 short strings (queue names, routing keys) hold at most 255 bytes. */
export const MAX_AMQP_NAME_BYTES = 255;

/**
 * Default prefix of every exchange and queue.
 *
 * @example
 * ```ts
 * amqp({ url, prefix: DEFAULT_PREFIX }); // queues such as `edgekit.msg.inputs.gw-1.filter.in1`
 * ```
 */
export const DEFAULT_PREFIX = 'edgekit';

const PREFIX = /^[A-Za-z0-9_][A-Za-z0-9_\-:.]*$/;
const MAX_PREFIX_LENGTH = 64;

/** A segment never contains these: `/` separates, `.` separates AMQP words, `*`/`#` are wildcards, `+` MQTT's. */
const FORBIDDEN_IN_SEGMENT = /[/.+#*\s\p{Cc}]/u;

/** Checks a `/`-separated address or key; throws a `TypeError`/`RangeError` naming the problem. */
export function checkAddress(kind: 'address' | 'key', value: unknown): string {
  if (typeof value !== 'string') throw new TypeError(`${kind} must be a string, got ${typeof value}`);
  if (value.length === 0) throw new RangeError(`${kind} must not be empty`);
  for (const segment of value.split('/')) {
    if (segment.length === 0) throw new RangeError(`${kind} ${JSON.stringify(value)} has an empty segment`);
    if (FORBIDDEN_IN_SEGMENT.test(segment)) {
      throw new RangeError(
        `${kind} ${JSON.stringify(value)}: segment ${JSON.stringify(segment)} contains a character that is special in ` +
          'AMQP routing keys or MQTT topics (. * # + whitespace or control characters)',
      );
    }
  }
  return value;
}

/** Checks the `prefix` option; returns it. */
export function checkPrefix(value: unknown): string {
  if (typeof value !== 'string') throw new TypeError(`prefix must be a string, got ${typeof value}`);
  if (value.length === 0 || value.length > MAX_PREFIX_LENGTH) {
    throw new RangeError(`prefix must be 1 to ${MAX_PREFIX_LENGTH} characters, got ${value.length}`);
  }
  if (!PREFIX.test(value)) {
    throw new RangeError(
      `prefix ${JSON.stringify(value)} is not allowed: use letters, digits and - _ : . (starting with a letter, digit or _)`,
    );
  }
  if (value.toLowerCase().startsWith('amq.')) {
    throw new RangeError(
      `prefix ${JSON.stringify(value)} is not allowed: names starting with "amq." are reserved by RabbitMQ`,
    );
  }
  return value;
}

/** Every exchange and queue name of one prefix. */
export interface Topology {
  readonly prefix: string;
  /** Topic exchange carrying retained values (and fired wills); routing key = the key's last-value queue name. */
  readonly retainedExchange: string;
  /**
   * Direct exchange carrying messages; routing key = the message queue's name. Each message queue is bound to it with
   * its own name, and so is {@link observeExchange} (an exchange-to-exchange binding per queue), which gives observers
   * a copy of every message published to a declared queue.
   */
  readonly messagesExchange: string;
  /**
   * Topic exchange that receives a copy of every message from {@link messagesExchange}; observers bind queues of
   * their own to it with patterns (see {@link observeBindingKey}). Without observers it routes to nothing.
   */
  readonly observeExchange: string;
  /** Durable queue of a message address, also its routing key on {@link messagesExchange}. */
  messageQueue(address: string): string;
  /**
   * The binding key on {@link observeExchange} for an address pattern's segments (`*` stays `*`, one word), or
   * `undefined` when it is longer than AMQP allows (then no queue it matches has a plain name either).
   */
  observeBindingKey(segments: readonly string[]): string | undefined;
  /** The address of a message queue's name (a routing key), or `undefined` for a hashed or foreign name. */
  addressOfMessageQueue(name: string): string | undefined;
  /** Durable last-value queue of a retained key, also its routing key on {@link retainedExchange}. */
  retainedQueue(key: string): string;
  /** Auto-delete queue that requests to `address` are sent to (through the default exchange). */
  requestQueue(address: string): string;
  /** Durable queue holding the last will of the connection `clientId`. */
  willQueue(clientId: string): string;
}

/** The name for `kind` and `path`: `<prefix>.<kind>.<segments joined by .>`, or a hash when that is too long. */
function nameOf(prefix: string, kind: string, path: string): string {
  const direct = `${prefix}.${kind}.${path.split('/').join('.')}`;
  if (Buffer.byteLength(direct) <= MAX_AMQP_NAME_BYTES) return direct;
  // `=` never occurs in a segment, so a hashed name cannot equal a direct one.
  const first = path.split('/')[0] ?? '';
  const hashed = `${prefix}.${kind}.${first.slice(0, 64)}.=${createHash('sha256').update(path).digest('hex')}`;
  return hashed;
}

/** Names for the given prefix (already checked by {@link checkPrefix}). */
export function topology(prefix: string): Topology {
  return {
    prefix,
    retainedExchange: `${prefix}.retained`,
    messagesExchange: `${prefix}.messages`,
    observeExchange: `${prefix}.observe`,
    messageQueue: (address) => nameOf(prefix, 'msg', address),
    observeBindingKey: (segments) => {
      const key = `${prefix}.msg.${segments.join('.')}`;
      return Buffer.byteLength(key) <= MAX_AMQP_NAME_BYTES ? key : undefined;
    },
    addressOfMessageQueue: (name) => {
      const start = `${prefix}.msg.`;
      if (!name.startsWith(start)) return undefined;
      const words = name.slice(start.length).split('.');
      // A hashed name (`…=<sha-256>`) cannot be turned back into its address.
      if (words.some((word) => word.length === 0 || word.startsWith('='))) return undefined;
      return words.join('/');
    },
    retainedQueue: (key) => nameOf(prefix, 'retained', key),
    requestQueue: (address) => nameOf(prefix, 'rpc', address),
    willQueue: (clientId) => {
      // A client id is any string; keep it readable when it is plain, hash it otherwise.
      const direct = `${prefix}.will.${clientId}`;
      if (
        /^[\x21-\x7e]+$/.test(clientId) &&
        !clientId.startsWith('=') &&
        Buffer.byteLength(direct) <= MAX_AMQP_NAME_BYTES
      )
        return direct;
      return `${prefix}.will.=${createHash('sha256').update(clientId).digest('hex')}`;
    },
  };
}

/** Highest AMQP priority a queue is declared with when priorities are on; edgekit's 0 maps to it. */
export const AMQP_MAX_PRIORITY = 9;

/** Arguments of a message queue; every client of one broker must use the same, or RabbitMQ refuses the declaration. */
export function messageQueueArguments(priorities: boolean): Record<string, unknown> {
  return priorities ? { 'x-max-priority': AMQP_MAX_PRIORITY } : {};
}

/** A last-value queue keeps only its newest message: older ones are dropped from the head. */
export const RETAINED_QUEUE_ARGUMENTS = { 'x-max-length': 1, 'x-overflow': 'drop-head' } as const;

/** An unused will queue (its connection gone, its will fired) is deleted by the broker after this long. */
export const WILL_QUEUE_EXPIRES_IN_MS = 3_600_000;

/** Arguments of a will queue: an expired will is dead-lettered to the key's last-value queue. */
export function willQueueArguments(names: Topology, willKey: string): Record<string, unknown> {
  return {
    'x-dead-letter-exchange': names.retainedExchange,
    'x-dead-letter-routing-key': names.retainedQueue(willKey),
    'x-expires': WILL_QUEUE_EXPIRES_IN_MS,
  };
}

/**
 * Arguments of an observer's queue: at most this many copies wait for a slow observer, the oldest dropped first
 * (observing is best effort; the broker must not fill up for a monitor).
 */
export const OBSERVER_QUEUE_ARGUMENTS = { 'x-max-length': 10_000, 'x-overflow': 'drop-head' } as const;

/** Header marking a retained value as deleted (a tombstone keeps the key's queue and tells watchers). */
export const DELETED_HEADER = 'x-edgekit-deleted';
