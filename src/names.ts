/**
 * Validation of device, module, input, output and method names, and the broker addresses built from them.
 * A name must be safe in an MQTT topic level and an AMQP routing key word, so it is checked, never mangled.
 */

/** Longest allowed name, as IoT Hub's device and module ids. */
export const MAX_NAME_LENGTH = 128;

/** Letters, digits and `- _ : @ ~ !` ; must start with a letter, digit or `_`. */
const NAME = /^[A-Za-z0-9_][A-Za-z0-9_\-:@~!]*$/;

/** The kind of name, for error messages. */
export type NameKind = 'device id' | 'module id' | 'input' | 'output' | 'method' | 'replica id';

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
