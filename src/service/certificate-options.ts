/**
 * The argument checks of the certificate functions (src/service/certificates.ts): each throws a TypeError or
 * RangeError that names the option and the function, before anything is generated or signed.
 */
import { randomBytes } from 'node:crypto';
import { isIP } from 'node:net';
import { magnitude } from './der.js';

/** RFC 5280 §4.1.2.2: serial numbers (and CRL numbers, §5.2.3) are at most 20 octets. */
const MAX_INTEGER_OCTETS = 20;

export function checkDays(value: unknown, name: string, fallback: number, what: string, max = 3650): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number') throw new TypeError(`${what}: ${name} must be a number, got ${typeof value}`);
  if (!Number.isInteger(value) || value < 1 || value > max) {
    throw new RangeError(`${what}: ${name} must be a whole number of days from 1 to ${max}, got ${value}`);
  }
  return value;
}

export function checkCommonName(value: unknown, what: string): string {
  if (typeof value !== 'string') throw new TypeError(`${what}: commonName must be a string`);
  if (value.length === 0) throw new RangeError(`${what}: commonName must not be empty`);
  // Control characters would let a name print as another in logs; a lone surrogate cannot be encoded as UTF-8.
  if (/[\p{Cc}\p{Cs}]/u.test(value)) {
    throw new RangeError(`${what}: commonName ${JSON.stringify(value)} contains control characters`);
  }
  return value;
}

export function checkKeyType(value: unknown, what: string): 'ec' | 'rsa' {
  if (value === undefined) return 'ec';
  if (value !== 'ec' && value !== 'rsa') {
    throw new RangeError(`${what}: keyType must be 'ec' or 'rsa', got ${JSON.stringify(value)}`);
  }
  return value;
}

/** A DNS label as host names have them, plus the underscore container and service names use. */
export const DNS_LABEL = /^[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$/;

export function checkDnsName(value: unknown, at: string, what: string): string {
  if (typeof value !== 'string') throw new TypeError(`${what}: ${at} must be a string, got ${typeof value}`);
  const shown = JSON.stringify(value.slice(0, 300));
  if (isIP(value) !== 0) throw new RangeError(`${what}: ${at} ${shown} is an IP address; list it in ipAddresses`);
  const labels = value.split('.');
  const wildcard = labels[0] === '*';
  const named = wildcard ? labels.slice(1) : labels;
  if (value.length > 253 || !named.every((label) => DNS_LABEL.test(label))) {
    throw new RangeError(
      `${what}: ${at} ${shown} is not a DNS name: ASCII labels of letters, digits, '-' and '_' (1 to 63 characters, not starting or ending with '-') joined by dots, at most 253 characters, no trailing dot`,
    );
  }
  if (wildcard && named.length < 2) {
    throw new RangeError(`${what}: ${at} ${shown}: a wildcard needs two labels after it, as in *.hub.local`);
  }
  return value;
}

/** The iPAddress octets of an address `isIP` accepts: 4 for IPv4, 16 for IPv6. */
export function ipOctets(value: unknown, at: string, what: string): Buffer {
  if (typeof value !== 'string') throw new TypeError(`${what}: ${at} must be a string, got ${typeof value}`);
  const shown = JSON.stringify(value.slice(0, 300));
  const version = isIP(value);
  if (version === 4) return Buffer.from(value.split('.').map(Number));
  if (version !== 6) throw new RangeError(`${what}: ${at} ${shown} is not an IPv4 or IPv6 address`);
  if (value.includes('%')) {
    throw new RangeError(`${what}: ${at} ${shown} has a zone index, which a certificate cannot carry`);
  }
  // An IPv4 tail (::ffff:192.0.2.1) is the last two groups; `::` stands for as many zero groups as are missing.
  const text = value.replace(/(\d+)\.(\d+)\.(\d+)\.(\d+)$/, (_, a, b, c, d) =>
    [(Number(a) << 8) | Number(b), (Number(c) << 8) | Number(d)].map((n) => n.toString(16)).join(':'),
  );
  const groups = (part: string) => (part === '' ? [] : part.split(':').map((group) => Number.parseInt(group, 16)));
  const [head = '', tail] = text.split('::');
  const left = groups(head);
  const right = tail === undefined ? [] : groups(tail);
  const all = [...left, ...new Array<number>(8 - left.length - right.length).fill(0), ...right];
  const octets = Buffer.alloc(16);
  for (const [index, group] of all.entries()) octets.writeUInt16BE(group, index * 2);
  return octets;
}

/** Checks a list option: undefined is empty; every entry through `check`, none twice (as `key` sees them). */
export function checkList<T>(
  value: unknown,
  name: string,
  what: string,
  check: (entry: unknown, at: string, what: string) => T,
  key: (entry: T) => string,
): T[] {
  if (value === undefined) return [];
  if (!Array.isArray(value)) throw new TypeError(`${what}: ${name} must be an array of strings`);
  const seen = new Set<string>();
  return value.map((entry: unknown, index) => {
    const checked = check(entry, `${name}[${index}]`, what);
    if (seen.has(key(checked)))
      throw new RangeError(`${what}: ${name}[${index}] ${JSON.stringify(entry)} is listed twice`);
    seen.add(key(checked));
    return checked;
  });
}

export function checkDate(value: unknown, name: string, what: string): Date {
  if (!(value instanceof Date)) throw new TypeError(`${what}: ${name} must be a Date`);
  const year = value.getUTCFullYear();
  // NaN fails both comparisons: an invalid Date lands here too.
  if (!(year >= 0 && year <= 9999)) throw new RangeError(`${what}: ${name} must be a valid date in years 0–9999`);
  return value;
}

export function checkCount(value: unknown, name: string, min: bigint, what: string): bigint {
  if (typeof value !== 'bigint') throw new TypeError(`${what}: ${name} must be a bigint, got ${typeof value}`);
  if (value < min || magnitude(value).length > MAX_INTEGER_OCTETS) {
    throw new RangeError(`${what}: ${name} must be ${min === 0n ? 'non-negative' : 'positive'} and at most 20 bytes`);
  }
  return value;
}

export function randomSerial(): bigint {
  for (;;) {
    const octets = randomBytes(16);
    // Clear the top bit: the value stays positive in 16 octets, with 127 random bits (CA/B asks for at least 64).
    octets[0] = (octets[0] ?? 0) & 0x7f;
    const value = BigInt(`0x${octets.toString('hex')}`);
    if (value > 0n) return value;
  }
}

export const hex = (value: bigint) => magnitude(value).toString('hex').toUpperCase();
export const wholeSeconds = (ms: number) => new Date(Math.floor(ms / 1000) * 1000);
