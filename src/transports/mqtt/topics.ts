/**
 * How the mqtt transport lays addresses out as MQTT topics. An address maps one-to-one to `<prefix><address>`; a
 * connection with an identity publishes messages and requests one level pair deeper, `<prefix><address>/<identity>`,
 * so that a broker ACL can allow each user exactly its own identity there and a receiver can read who sent what from
 * the topic. The transport's own per-client topics (method replies, ordering sentinels) live under
 * `<prefix>@client/<clientId>/`, a level no address can start with because names never start with `@`.
 */
import { checkAddressPattern, checkIdentity, parseIdentity } from '../../names.js';

/** Default first levels of every topic: a product name and a layout version, so a future layout can coexist. */
export const DEFAULT_TOPIC_PREFIX = 'edgekit/v1/';

/** Level under the prefix that holds per-client topics; `@` cannot start an address segment. */
export const CLIENT_LEVEL = '@client';

/**
 * Subscription identifiers (MQTT 5) tell, for every incoming message, which kind of subscription it matched — also
 * for messages a persisted session delivers before the core has registered anything on the new connection.
 *
 * Identifiers from `observe` up belong to pattern subscriptions (`observe`, `listRetained`): each observed filter has
 * an identifier of its own, so a message matching two overlapping patterns goes to each of them once, whether the
 * broker sends one copy per subscription or one copy carrying both identifiers.
 */
export const SubscriptionKind = {
  queue: 1,
  retained: 2,
  serve: 3,
  client: 4,
  observe: 16,
} as const;
export type SubscriptionKind = (typeof SubscriptionKind)[keyof typeof SubscriptionKind];

/** Largest MQTT 5 subscription identifier (a variable byte integer). */
export const MAX_SUBSCRIPTION_IDENTIFIER = 268_435_455;

/** True when `value` has an MQTT wildcard (`+`, `#`) or a NUL character, none of which a topic name may hold. */
export function hasWildcardOrNul(value: string): boolean {
  return value.includes('+') || value.includes('#') || value.includes('\0');
}

/** Checks an address or retained key given to the transport; throws `TypeError`/`RangeError`. */
export function checkAddress(kind: 'address' | 'key', value: unknown): string {
  if (typeof value !== 'string') throw new TypeError(`${kind} must be a string, got ${typeof value}`);
  if (value.length === 0) throw new RangeError(`${kind} must not be empty`);
  if (hasWildcardOrNul(value)) {
    throw new RangeError(`${kind} ${JSON.stringify(value)} contains an MQTT wildcard (+ #) or a NUL character`);
  }
  if (value.split('/').some((segment) => segment.length === 0)) {
    throw new RangeError(`${kind} ${JSON.stringify(value)} has an empty segment (leading, trailing or double /)`);
  }
  if (value.startsWith('@') || value.startsWith('$')) {
    throw new RangeError(
      `${kind} ${JSON.stringify(value)} must not start with @ or $ (reserved by the transport and MQTT)`,
    );
  }
  return value;
}

/**
 * Checks an `observe`/`listRetained` pattern: an address whose segments may be `*` (see `checkAddressPattern`), not
 * starting with `@` or `$` (the transport's own topics, and MQTT's). Returns its segments.
 */
export function checkPattern(pattern: unknown): readonly string[] {
  const segments = checkAddressPattern(pattern);
  const first = segments[0] ?? '';
  if (first.startsWith('@') || first.startsWith('$')) {
    throw new RangeError(
      `pattern ${JSON.stringify(pattern)} must not start with @ or $ (reserved by the transport and MQTT)`,
    );
  }
  return segments;
}

/** Checks a client id for use in the MQTT CONNECT packet and in the per-client topics. */
export function checkClientId(value: unknown, what = 'clientId'): string {
  if (typeof value !== 'string') throw new TypeError(`${what} must be a string, got ${typeof value}`);
  if (value.length === 0) throw new RangeError(`${what} must not be empty`);
  if (Buffer.byteLength(value, 'utf8') > 0xffff) throw new RangeError(`${what} is longer than 65535 bytes`);
  if (hasWildcardOrNul(value)) {
    throw new RangeError(
      `${what} ${JSON.stringify(value)} contains + # or NUL; the mqtt transport uses the client id as topic levels`,
    );
  }
  return value;
}

/** Levels of an identity (`<device>/<module>`, `$operator/<name>`) at the end of a message's or request's topic. */
export const IDENTITY_LEVELS = 2;

/**
 * Where a message arrived, read from its topic below a known base (a consumed or served address's topic): the
 * publisher's identity (`undefined`: the old layout, published without one), or `invalid` for anything else under
 * the base — a topic no edgekit client publishes to, to be dropped.
 */
export type TopicSuffix = { readonly publisher: string | undefined } | 'invalid';

/**
 * What follows `base` in `topic` (which starts with it): nothing, or exactly one identity as two levels.
 *
 * @example
 * ```ts
 * suffixOf('edgekit/v1/inputs/gw-1/filter/in1/gw-1/sensor', 'edgekit/v1/inputs/gw-1/filter/in1'); // { publisher: 'gw-1/sensor' }
 * ```
 */
export function suffixOf(topic: string, base: string): TopicSuffix {
  if (topic.length === base.length) return { publisher: undefined };
  if (topic.charCodeAt(base.length) !== 0x2f /* / */) return 'invalid';
  const publisher = topic.slice(base.length + 1);
  return parseIdentity(publisher) === undefined ? 'invalid' : { publisher };
}

/** The topics and filters of one connection. */
export class TopicLayout {
  /** Where method replies to this client arrive. */
  readonly replies: string;
  /** Where this client's ordering sentinels arrive (see `getRetained`). */
  readonly sync: string;
  /** The one filter covering {@link replies} and {@link sync}. */
  readonly clientFilter: string;
  /** `/<identity>`, appended to every message and request topic; empty without an identity. */
  readonly publisherSuffix: string;
  /** The start of every reply topic of this layout: `<prefix>@client/`. */
  private readonly clientRoot: string;

  constructor(
    readonly prefix: string,
    readonly shareGroup: string | undefined,
    clientId: string,
    identity: string | undefined = undefined,
  ) {
    this.clientRoot = `${prefix}${CLIENT_LEVEL}/`;
    const root = `${this.clientRoot}${clientId}/`;
    this.replies = `${root}reply`;
    this.sync = `${root}sync`;
    this.clientFilter = `${root}+`;
    this.publisherSuffix = identity === undefined ? '' : `/${checkIdentity(identity)}`;
  }

  /** The topic of an address or retained key. */
  topic(address: string): string {
    return this.prefix + address;
  }

  /** The topic a message or request to `address` is published to: the address's topic and this client's identity. */
  publishTopic(address: string): string {
    return this.prefix + address + this.publisherSuffix;
  }

  /**
   * The filter of a consumed or served address: its topic and everything below (`#` also matches the topic itself,
   * the old layout), so one subscription takes messages from every publisher; shared when a share group is set.
   */
  queueFilter(topic: string): string {
    return this.competingFilter(`${topic}/#`);
  }

  /** The filter a version before identities subscribed for the same address (see `MqttConnection.consume`). */
  legacyQueueFilter(topic: string): string {
    return this.competingFilter(topic);
  }

  /**
   * The filters of a pattern's segments (`*` becomes `+`), covering the addresses and the identity levels below them.
   * A pattern with `*` gets `/#`: such a filter never equals one of a queue, served address or retained key on the
   * same connection (which a SUBSCRIBE would replace and an UNSUBSCRIBE remove). A pattern without `*` is one address,
   * whose `<topic>/#` is its queue's filter: it gets `<topic>` and `<topic>/+/+` instead, exactly the old and the new
   * layout. Topics that `#` also matches but no edgekit client publishes to are dropped by the receiver.
   */
  patternFilters(segments: readonly string[]): readonly string[] {
    const filter = this.prefix + segments.map((segment) => (segment === '*' ? '+' : segment)).join('/');
    return segments.includes('*') ? [`${filter}/#`] : [filter, `${filter}/+/+`];
  }

  /** The address of a topic under the prefix, or `undefined` for another topic or one of the transport's own. */
  addressOf(topic: string): string | undefined {
    if (!topic.startsWith(this.prefix)) return undefined;
    const address = topic.slice(this.prefix.length);
    return address.startsWith('@') || address.startsWith('$') ? undefined : address;
  }

  /**
   * Whether `topic` is where a client of this layout takes its method replies, `<prefix>@client/<clientId>/reply`:
   * a server replies nowhere else, so a caller cannot point a reply at another module's input or twin.
   */
  isReplyTopic(topic: string): boolean {
    if (!topic.startsWith(this.clientRoot) || !topic.endsWith('/reply') || hasWildcardOrNul(topic)) return false;
    const clientId = topic.slice(this.clientRoot.length, -'/reply'.length);
    return clientId.length > 0 && !clientId.split('/').some((level) => level.length === 0);
  }

  /** The subscription filter for a queue or served address: shared when a share group is configured. */
  competingFilter(topic: string): string {
    return this.shareGroup === undefined ? topic : `$share/${this.shareGroup}/${topic}`;
  }
}
