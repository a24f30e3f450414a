/**
 * Validation of device, module, input, output and method names, and the broker addresses built from them.
 * A name must be safe in an MQTT topic level and an AMQP routing key word, so it is checked, never mangled.
 */

/** Longest allowed name, as IoT Hub's device and module ids. */
export const MAX_NAME_LENGTH = 128;

/** Letters, digits and `- _ : @ ~ !` ; must start with a letter, digit or `_`. */
const NAME = /^[A-Za-z0-9_][A-Za-z0-9_\-:@~!]*$/;

/** The kind of name, for error messages. */
export type NameKind = 'device id' | 'module id' | 'input' | 'output' | 'method' | 'replica id' | 'operator name';

/** Returns `value` if it is a valid name, otherwise throws a `TypeError`/`RangeError` that says why. */
export function checkName(kind: NameKind, value: unknown): string {
  if (typeof value !== 'string') throw new TypeError(`${kind} must be a string, got ${typeof value}`);
  if (value.length === 0) throw new RangeError(`${kind} must not be empty`);
  if (value.length > MAX_NAME_LENGTH) {
    throw new RangeError(
      `${kind} ${JSON.stringify(value.slice(0, 20))}… is ${value.length} characters; at most ${MAX_NAME_LENGTH}`,
    );
  }
  if (!NAME.test(value)) {
    throw new RangeError(
      `${kind} ${JSON.stringify(value)} is not allowed: use letters, digits and - _ : @ ~ ! (starting with a letter, digit or _); ` +
        'characters such as / + # * . $ and spaces are special in MQTT topics or AMQP routing keys',
    );
  }
  return value;
}

/** Whether `value` is a valid name (what {@link checkName} accepts), for text from the wire that is refused, not thrown on. */
export function isName(value: unknown): value is string {
  return typeof value === 'string' && value.length > 0 && value.length <= MAX_NAME_LENGTH && NAME.test(value);
}

/** The first segment of an operator's identity: never a device id (names cannot hold `$`). */
export const OPERATOR = '$operator';

/**
 * The identity a connection speaks for (see the transport contract): `<device>/<module>` for a module, or
 * `$operator/<name>` for an operator; every part a valid name.
 */
export type Identity = `${string}/${string}`;

/** The identity of a module. */
export function moduleIdentity(deviceId: string, moduleId: string): Identity {
  return `${deviceId}/${moduleId}`;
}

/** The identity of an operator named `name` (a valid name, e.g. `alice`). */
export function operatorIdentity(name: string): Identity {
  return `${OPERATOR}/${checkName('operator name', name)}`;
}

/** What an identity says: a module of a device, or an operator. */
export type ParsedIdentity =
  | { readonly kind: 'module'; readonly deviceId: string; readonly moduleId: string }
  | { readonly kind: 'operator'; readonly name: string };

/** Parses an identity; `undefined` for anything that is not one (never throws: it may come from a broker). */
export function parseIdentity(value: unknown): ParsedIdentity | undefined {
  if (typeof value !== 'string') return undefined;
  const slash = value.indexOf('/');
  if (slash < 0 || value.indexOf('/', slash + 1) >= 0) return undefined;
  const first = value.slice(0, slash);
  const second = value.slice(slash + 1);
  if (!isName(second)) return undefined;
  if (first === OPERATOR) return { kind: 'operator', name: second };
  return isName(first) ? { kind: 'module', deviceId: first, moduleId: second } : undefined;
}

/** Checks an identity argument; returns it. */
export function checkIdentity(value: unknown): Identity {
  if (typeof value !== 'string') throw new TypeError(`identity must be a string, got ${typeof value}`);
  if (parseIdentity(value) === undefined) {
    throw new RangeError(
      `identity ${JSON.stringify(value.slice(0, 80))} must be <device>/<module> or ${OPERATOR}/<name>, each a valid name`,
    );
  }
  return value as Identity;
}

/** Broker addresses and retained keys used by the core. Transports treat them as opaque `/`-separated paths. */
export const addresses = {
  input: (device: string, module: string, input: string) => `inputs/${device}/${module}/${input}`,
  upstream: (device: string) => `upstream/${device}`,
  deadLetter: (device: string, module: string) => `deadletter/${device}/${module}`,
  methods: (device: string, module: string) => `methods/${device}/${module}`,
  desired: (device: string, module: string) => `twin/${device}/${module}/desired`,
  reported: (device: string, module: string) => `twin/${device}/${module}/reported`,
  presence: (device: string, module: string) => `presence/${device}/${module}`,
  routes: (device: string) => `routes/${device}`,
  deployment: (device: string) => `deployment/${device}`,
  /** Whether the device's link to the cloud (its broker's bridge) is up: `1` or `0`, written by the brokers. */
  link: (device: string) => `link/${device}`,
} as const;

/**
 * Checks an address pattern for `observe`/`listRetained`: `/`-separated segments, each `*` (any one segment) or a
 * segment without `/ + # * .`, whitespace or control characters. Returns its segments.
 */
export function checkAddressPattern(pattern: unknown): readonly string[] {
  if (typeof pattern !== 'string') throw new TypeError(`pattern must be a string, got ${typeof pattern}`);
  const segments = pattern.split('/');
  for (const segment of segments) {
    if (segment === '*') continue;
    if (segment.length === 0 || /[/.+#*\s\p{Cc}]/u.test(segment)) {
      throw new RangeError(
        `pattern ${JSON.stringify(pattern)}: segment ${JSON.stringify(segment)} must be * or a non-empty segment ` +
          'without . * # + whitespace or control characters',
      );
    }
  }
  return segments;
}

/** Whether `address` matches the checked pattern `segments` (`*` matches any one segment). */
export function matchesAddressPattern(segments: readonly string[], address: string): boolean {
  const parts = address.split('/');
  if (parts.length !== segments.length) return false;
  for (let i = 0; i < parts.length; i++) {
    if (segments[i] !== '*' && segments[i] !== parts[i]) return false;
  }
  return true;
}
