/**
 * How the mqtt transport lays addresses out as MQTT topics. An address maps one-to-one to `<prefix><address>`; the
 * transport's own per-client topics (method replies, ordering sentinels) live under `<prefix>@client/<clientId>/`,
 * a level no address can start with because names never start with `@`.
 */
import { checkAddressPattern } from '../../names.js';

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

/** The topics and filters of one connection. */
export class TopicLayout {
  /** Where method replies to this client arrive. */
  readonly replies: string;
  /** Where this client's ordering sentinels arrive (see `getRetained`). */
  readonly sync: string;
  /** The one filter covering {@link replies} and {@link sync}. */
  readonly clientFilter: string;

  constructor(
    readonly prefix: string,
    readonly shareGroup: string | undefined,
    clientId: string,
  ) {
    const root = `${prefix}${CLIENT_LEVEL}/${clientId}/`;
    this.replies = `${root}reply`;
    this.sync = `${root}sync`;
    this.clientFilter = `${root}+`;
  }

  /** The topic of an address or retained key. */
  topic(address: string): string {
    return this.prefix + address;
  }

  /**
   * The filter of a pattern's segments (`*` becomes `+`). A pattern without `*` gets a trailing `/#` (which also
   * matches the level before it): its filter then never equals the plain filter of a queue, served address or retained
   * key on the same connection, which a SUBSCRIBE would replace and an UNSUBSCRIBE remove. Topics below the address
   * that `#` also matches are dropped by the receiver (no address has them).
   */
  patternFilter(segments: readonly string[]): string {
    const filter = this.prefix + segments.map((segment) => (segment === '*' ? '+' : segment)).join('/');
    return segments.includes('*') ? filter : `${filter}/#`;
  }

  /** The address of a topic under the prefix, or `undefined` for another topic or one of the transport's own. */
  addressOf(topic: string): string | undefined {
    if (!topic.startsWith(this.prefix)) return undefined;
    const address = topic.slice(this.prefix.length);
    return address.startsWith('@') || address.startsWith('$') ? undefined : address;
  }

  /** The subscription filter for a queue or served address: shared when a share group is configured. */
  competingFilter(topic: string): string {
    return this.shareGroup === undefined ? topic : `$share/${this.shareGroup}/${topic}`;
  }
}
