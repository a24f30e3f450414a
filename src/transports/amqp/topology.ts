/**
 * The RabbitMQ names edgekit uses: how a transport address or retained key becomes an exchange, queue and routing key,
 * and the arguments each queue is declared with. docs/transports/amqp.md documents the same table for operators.
 */
import { createHash } from 'node:crypto';
import { parseIdentity } from '../../names.js';

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

/**
 * Every exchange and queue name of one prefix.
 *
 * What a connection may write is what its own exchange reaches. Each identity publishes everything — messages,
 * retained values, requests, its will — to its **own** direct exchange ({@link fromExchange}), and only the operator's
 * bindings (or, on a broker without edgekit permissions, the connection's own declarations) lead from there: straight
 * to message queues, and to one fanout exchange per retained key ({@link updatesExchange}) and per method address
 * ({@link callsExchange}). RabbitMQ checks the write permission on that exchange, so a delivery's exchange names who
 * published it. A routing key, `CC`/`BCC` header or dead-letter routing key reaches no further than its bindings:
 * RabbitMQ routes a message by all of its keys in every exchange it passes, and checks topic permissions against the
 * routing key of a publish only (docs/transports/amqp.md, Permissions), so no exchange past an identity's own may
 * route by key to anything but observers and reply queues.
 */
export interface Topology {
  readonly prefix: string;
  /**
   * Fanout exchange of a retained key's updates: bound to the key's last-value queue, its readers' views and their
   * watches; reached only through the exchanges of identities that may write the key (one binding each).
   */
  updatesExchange(key: string): string;
  /**
   * Fanout exchange of the requests to a method address: the served request queue is bound to it; reached only through
   * the exchanges of identities that may call it.
   */
  callsExchange(address: string): string;
  /**
   * Topic exchange that receives a copy of every message from the identities' exchanges (one exchange-to-exchange
   * binding per destination queue); observers bind queues of their own to it with patterns ({@link observeBindingKey}).
   */
  readonly observeExchange: string;
  /**
   * Topic exchange replies are published to: each requesting connection binds its reply queue with a key that starts
   * with its identity ({@link replyKey}), so only that identity may bind it and a reply never reaches anything else.
   */
  readonly repliesExchange: string;
  /** The exchange earlier versions published messages to (direct); still bound to their queues, no longer used. */
  readonly legacyMessagesExchange: string;
  /** The exchange earlier versions published retained values to (topic); no longer used. */
  readonly legacyRetainedExchange: string;
  /**
   * The direct exchange a connection publishes everything to: `<prefix>.from.<device>.<module>` for a module,
   * `<prefix>.from.$operator.<name>` for an operator, `<prefix>.anonymous` without an identity; hashed when too long.
   */
  fromExchange(identity: string | undefined): string;
  /**
   * Whether {@link fromExchange} of `identity` is hashed: then publishes carry the identity in
   * {@link PUBLISHER_HEADER}, which a receiver checks against the hash.
   */
  fromExchangeHashed(identity: string | undefined): boolean;
  /**
   * The identity a message was published under, read from the exchange it was published to (`fields.exchange`, which
   * RabbitMQ keeps across exchange-to-exchange bindings and sets to the dead-letter exchange on dead-lettering), or
   * `undefined` for any other exchange. `claimed` is the {@link PUBLISHER_HEADER} of the message, used only to name
   * the identity of a hashed exchange, and only when it hashes to it. Never throws.
   */
  publisherOf(exchange: string, claimed: unknown): string | undefined;
  /** Durable queue of a message address, also its routing key. */
  messageQueue(address: string): string;
  /**
   * The binding key on {@link observeExchange} for an address pattern's segments (`*` stays `*`, one word), or
   * `undefined` when it is longer than AMQP allows (then no queue it matches has a plain name either).
   */
  observeBindingKey(segments: readonly string[]): string | undefined;
  /** The address of a message queue's name (a routing key), or `undefined` for a hashed or foreign name. */
  addressOfMessageQueue(name: string): string | undefined;
  /** Durable last-value queue of a retained key, also the routing key its writes are published with. */
  retainedQueue(key: string): string;
  /**
   * A reader's own copy of a retained key (`<prefix>.view.<reader device>.<reader module>.<key>`): a last-value queue
   * bound like the key's own, which a module reads instead, so reading — RabbitMQ's `read` permission includes
   * `basic.get` + ack and purge — can only ever empty its own copy.
   */
  viewQueue(identity: string, key: string): string;
  /** Auto-delete queue of the requests to `address` (bound to its {@link callsExchange}), also their routing key. */
  requestQueue(address: string): string;
  /** Durable queue holding the last will of the connection `clientId`. */
  willQueue(clientId: string): string;
  /**
   * The routing key a connection's replies are published with, on {@link repliesExchange}:
   * `<identity words>.<token>` (`anonymous.<token>` without an identity), hashed identity words when too long.
   */
  replyKey(identity: string | undefined, token: string): string;
  /** The first word(s) of every {@link replyKey} of `identity`, for the topic permission that confines binding them. */
  replyKeyStem(identity: string | undefined): string;
}

/** Header carrying the identity of a publish whose exchange name is hashed (see {@link Topology.fromExchangeHashed}). */
export const PUBLISHER_HEADER = 'x-edgekit-publisher';

/** The words of an identity (`gw-1/filter` → `gw-1.filter`); identities never contain `.`. */
function wordsOf(identity: string): string {
  return identity.split('/').join('.');
}

function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

function fits(name: string): boolean {
  return Buffer.byteLength(name) <= MAX_AMQP_NAME_BYTES;
}

/** The name for `kind` and `path`: `<prefix>.<kind>.<segments joined by .>`, or a hash when that is too long. */
function nameOf(prefix: string, kind: string, path: string): string {
  const direct = `${prefix}.${kind}.${path.split('/').join('.')}`;
  if (fits(direct)) return direct;
  // `=` never occurs in a segment, so a hashed name cannot equal a direct one.
  const first = path.split('/')[0] ?? '';
  return `${prefix}.${kind}.${first.slice(0, 64)}.=${sha256(path)}`;
}

/** Names for the given prefix (already checked by {@link checkPrefix}). */
export function topology(prefix: string): Topology {
  const fromStem = `${prefix}.from.`;
  const anonymous = `${prefix}.anonymous`;
  const fromExchange = (identity: string | undefined): string => {
    if (identity === undefined) return anonymous;
    const direct = `${fromStem}${wordsOf(identity)}`;
    return fits(direct) ? direct : `${fromStem}=${sha256(identity)}`;
  };
  const replyKeyStem = (identity: string | undefined): string => {
    if (identity === undefined) return 'anonymous';
    const words = wordsOf(identity);
    // Room for `.` and a 36-character token.
    return words.length + 37 <= MAX_AMQP_NAME_BYTES ? words : `=${sha256(identity)}`;
  };
  return {
    prefix,
    updatesExchange: (key) => nameOf(prefix, 'updates', key),
    callsExchange: (address) => nameOf(prefix, 'calls', address),
    observeExchange: `${prefix}.observe`,
    repliesExchange: `${prefix}.replies`,
    legacyMessagesExchange: `${prefix}.messages`,
    legacyRetainedExchange: `${prefix}.retained`,
    fromExchange,
    fromExchangeHashed: (identity) => identity !== undefined && !fits(`${fromStem}${wordsOf(identity)}`),
    publisherOf: (exchange, claimed) => {
      if (!exchange.startsWith(fromStem)) return undefined;
      const rest = exchange.slice(fromStem.length);
      if (rest.startsWith('=')) {
        if (typeof claimed !== 'string' && !Buffer.isBuffer(claimed)) return undefined;
        const identity = String(claimed);
        return parseIdentity(identity) !== undefined && fromExchange(identity) === exchange ? identity : undefined;
      }
      const words = rest.split('.');
      if (words.length !== 2) return undefined;
      const identity = words.join('/');
      return parseIdentity(identity) === undefined ? undefined : identity;
    },
    messageQueue: (address) => nameOf(prefix, 'msg', address),
    observeBindingKey: (segments) => {
      const key = `${prefix}.msg.${segments.join('.')}`;
      return fits(key) ? key : undefined;
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
    viewQueue: (identity, key) => nameOf(prefix, 'view', `${identity}/${key}`),
    requestQueue: (address) => nameOf(prefix, 'rpc', address),
    willQueue: (clientId) => {
      // A client id is any string; keep it readable when it is plain, hash it otherwise.
      const direct = `${prefix}.will.${clientId}`;
      if (/^[\x21-\x7e]+$/.test(clientId) && !clientId.startsWith('=') && fits(direct)) return direct;
      return `${prefix}.will.=${sha256(clientId)}`;
    },
    replyKey: (identity, token) => `${replyKeyStem(identity)}.${token}`,
    replyKeyStem,
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

/**
 * Arguments of a will queue: an expired will is dead-lettered through the connection's own exchange (`from`), which
 * leads to the will key's last-value queue only if the connection may write that key — RabbitMQ checks the write
 * permission on a dead-letter exchange when the queue is declared, not its dead-letter routing key.
 */
export function willQueueArguments(names: Topology, from: string, willKey: string): Record<string, unknown> {
  return {
    'x-dead-letter-exchange': from,
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
