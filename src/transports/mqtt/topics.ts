/**
 * How the mqtt transport lays addresses out as MQTT topics. An address maps one-to-one to `<prefix><address>`; the
 * transport's own per-client topics (method replies, ordering sentinels) live under `<prefix>@client/<clientId>/`,
 * a level no address can start with because names never start with `@`.
 */

/** Default first levels of every topic: a product name and a layout version, so a future layout can coexist. */
export const DEFAULT_TOPIC_PREFIX = 'edgekit/v1/';

/** Level under the prefix that holds per-client topics; `@` cannot start an address segment. */
export const CLIENT_LEVEL = '@client';

/**
 * Subscription identifiers (MQTT 5) tell, for every incoming message, which kind of subscription it matched — also
 * for messages a persisted session delivers before the core has registered anything on the new connection.
 */
export const SubscriptionKind = {
  queue: 1,
  retained: 2,
  serve: 3,
  client: 4,
} as const;
export type SubscriptionKind = (typeof SubscriptionKind)[keyof typeof SubscriptionKind];

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

  /** The subscription filter for a queue or served address: shared when a share group is configured. */
  competingFilter(topic: string): string {
    return this.shareGroup === undefined ? topic : `$share/${this.shareGroup}/${topic}`;
  }
}
