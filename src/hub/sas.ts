/**
 * IoT Hub shared access signature (SAS) tokens: signing them as the Azure SDKs do, and checking the one a module
 * presents as its MQTT password against that module's key.
 */

import { createHmac, timingSafeEqual } from 'node:crypto';

/** The result of {@link verifySasToken}: when the token expires, or why it is refused (never the key or signature). */
export type SasVerification = { ok: true; expiresAt: number } | { ok: false; reason: string };

/** What {@link verifySasToken} checks a token against. */
export interface SasExpectation {
  /** The IoT Hub host name (`IOTEDGE_IOTHUBHOSTNAME`), the first part of the resource URI. */
  hubHostName: string;
  deviceId: string;
  moduleId: string;
  /** The module's key, base64. */
  key: string;
  /** The current time, epoch milliseconds. */
  now: number;
}

const PREFIX = 'SharedAccessSignature ';
const FIELDS = new Set(['sr', 'sig', 'se', 'skn']);

/**
 * `encodeURIComponent` that also encodes `! ' ( ) *`, as the Azure SDKs' `encodeUriComponentStrict` does, so a token
 * signed here is byte for byte the one the SDK would make.
 */
function encodeStrict(text: string): string {
  return encodeURIComponent(text).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

function hmacBase64(key: string, stringToSign: string): string {
  return createHmac('sha256', Buffer.from(key, 'base64')).update(stringToSign).digest('base64');
}

/**
 * The resource URI a module's token is for: `{hubHostName}/devices/{deviceId}/modules/{moduleId}`.
 *
 * @example
 * ```ts
 * moduleResourceUri('myhub.azure-devices.net', 'dev1', 'modA'); // 'myhub.azure-devices.net/devices/dev1/modules/modA'
 * ```
 */
export function moduleResourceUri(hubHostName: string, deviceId: string, moduleId: string): string {
  return `${hubHostName}/devices/${deviceId}/modules/${moduleId}`;
}

/**
 * A SAS token for `resourceUri`, signed with `key` and valid until `expirySecs`, exactly as the Azure SDK signs:
 * `SharedAccessSignature sr={sr}&sig={sig}&se={expiry}` where `sr` is the url-encoded resource URI and `sig` the
 * url-encoded base64 HMAC-SHA256, under the decoded key, of `{sr}\n{expiry}`.
 *
 * @param key - the key, base64 (as in a connection string's `SharedAccessKey`).
 * @param resourceUri - what the token grants, e.g. {@link moduleResourceUri}.
 * @param expirySecs - when the token expires, in seconds since the epoch (not a duration).
 * @throws RangeError if `expirySecs` is not a non-negative integer.
 * @example
 * ```ts
 * const token = signSas(key, moduleResourceUri(hub, 'dev1', 'modA'), Math.floor(Date.now() / 1000) + 3600);
 * ```
 */
export function signSas(key: string, resourceUri: string, expirySecs: number): string {
  if (!Number.isSafeInteger(expirySecs) || expirySecs < 0) {
    throw new RangeError(`SAS expiry must be a non-negative integer number of seconds, got ${expirySecs}`);
  }
  const sr = encodeStrict(resourceUri);
  const sig = encodeStrict(hmacBase64(key, `${sr}\n${expirySecs}`));
  return `${PREFIX}sr=${sr}&sig=${sig}&se=${expirySecs}`;
}

/** The raw (still encoded) fields of a token, or `undefined` if it is not one. */
function parseToken(token: unknown): Map<string, string> | undefined {
  if (typeof token !== 'string' || !token.startsWith(PREFIX)) return undefined;
  const fields = new Map<string, string>();
  for (const part of token.slice(PREFIX.length).split('&')) {
    const eq = part.indexOf('=');
    if (eq < 0) return undefined;
    const name = part.slice(0, eq);
    if (!FIELDS.has(name) || fields.has(name)) return undefined;
    fields.set(name, part.slice(eq + 1));
  }
  return fields;
}

function decode(text: string): string | undefined {
  try {
    return decodeURIComponent(text);
  } catch {
    return undefined;
  }
}

/** Whether the decoded `sr` names the expected resource; the host part is compared case-insensitively. */
function sameResource(sr: string, expected: string): boolean {
  const slash = sr.indexOf('/');
  const expectedSlash = expected.indexOf('/');
  if (slash < 0 || slash !== expectedSlash) return false;
  return (
    sr.slice(0, slash).toLowerCase() === expected.slice(0, slash).toLowerCase() &&
    sr.slice(slash) === expected.slice(slash)
  );
}

/**
 * Checks the SAS token a module presents (its MQTT password): well formed (`SharedAccessSignature` followed by `sr`,
 * `sig`, `se` and optionally `skn`, in any order, each once), for this module's resource URI, not expired, and signed
 * with its key. The signature is recomputed over `sr` exactly as it appears in the token, so a client that
 * url-encodes a little differently still verifies. Never throws.
 *
 * @returns `{ ok: true, expiresAt }` (epoch ms, for closing the connection when the token runs out), or
 *   `{ ok: false, reason }` with a short reason that is safe to log.
 * @example
 * ```ts
 * const result = verifySasToken(password, { hubHostName, deviceId, moduleId, key, now: Date.now() });
 * if (!result.ok) refuse(result.reason);
 * ```
 */
export function verifySasToken(token: unknown, expect: SasExpectation): SasVerification {
  const fields = parseToken(token);
  const rawSr = fields?.get('sr');
  const rawSig = fields?.get('sig');
  const rawSe = fields?.get('se');
  if (rawSr === undefined || rawSig === undefined || rawSe === undefined) return refuse('malformed token');
  const sr = decode(rawSr);
  const sig = decode(rawSig);
  const se = decode(rawSe);
  if (!sr || !sig || se === undefined || !/^\d{1,12}$/.test(se)) return refuse('malformed token');

  if (!sameResource(sr, moduleResourceUri(expect.hubHostName, expect.deviceId, expect.moduleId))) {
    return refuse('token is for another identity');
  }
  const expiresAt = Number(se) * 1000;
  if (expiresAt <= expect.now) return refuse('token expired');

  if (Buffer.from(expect.key, 'base64').length === 0) return refuse('no key for this identity');
  // Compared as base64 text, not decoded bytes: Buffer's lenient base64 decoding would let altered text pass.
  const expected = Buffer.from(hmacBase64(expect.key, `${rawSr}\n${rawSe}`));
  const actual = Buffer.from(sig);
  if (actual.length !== expected.length || !timingSafeEqual(actual, expected)) {
    return refuse('signature does not match');
  }
  return { ok: true, expiresAt };
}

function refuse(reason: string): SasVerification {
  return { ok: false, reason };
}

/**
 * Derives a module's SAS key from one secret: base64 of HMAC-SHA256 keyed with `secret` (UTF-8) over `label`.
 * A gateway configured with a single password can give every module its own key — use a label that names the
 * module, such as `dev1/modA` — without storing keys: the derivation is one-way, so a leaked module key reveals
 * neither the secret nor the keys of other modules. The same secret and label always give the same key.
 *
 * @example
 * ```ts
 * const key = deriveModuleKey(process.env.HUB_SECRET!, 'dev1/modA');
 * verifySasToken(password, { hubHostName, deviceId: 'dev1', moduleId: 'modA', key, now: Date.now() });
 * ```
 */
export function deriveModuleKey(secret: string, label: string): string {
  return createHmac('sha256', secret).update(label).digest('base64');
}
