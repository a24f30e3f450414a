/**
 * Keeping broker credentials out of error messages and logs: redaction of the password in URL-like text (also when
 * it does not parse) and in library errors, and percent-decoding of URL credentials that never throws.
 */

/** What a redacted password reads as. */
export const REDACTED = '***';

// Matches just the password of URL-like text, so the scheme and user name stay readable. Alternatives are tried in
// order at each position, so a URL with a scheme is never taken for a scheme-less `user:password@`.
const PASSWORD = new RegExp(
  [
    // scheme://user:password@ — the password runs to the last @ on the line: a malformed URL may have an unencoded
    // @, space, / or # in it, and masking too much beats showing a piece of the password.
    String.raw`(?<=[a-z][a-z0-9+.\-]*://[^\s:@/?#\[\]]*:)[^\r\n]*(?=@)`,
    // scheme://user:password with no host after it: the "port" is no number, so it may well be the password.
    String.raw`(?<=[a-z][a-z0-9+.\-]*://[^\s:@/?#\[\]]*:)(?=[^\s/?#@]*[^\s/?#@0-9])[^\s/?#@]+`,
    // user:password@host without a scheme, as a word of its own (not a path like file:///…/@scope).
    String.raw`(?<=(?:^|[\s"'(<=,])[^\s:@/?#\[\]"'<>(]+:)(?!/)\S*(?=@)`,
    // ?password=… in a query, where some clients take credentials (edgekit refuses queries, quoting the URL).
    String.raw`(?<=[?&;](?:password|passwd|pass|pwd|passphrase|secret|token)=)[^&#\s"']*`,
  ].join('|'),
  'gi',
);

/**
 * `text` with every password of a URL-like part (also a `password=` query parameter) replaced by `***`, the user
 * name kept: `mqtt://u:***@host/x`. It
 * works on text that does not parse as a URL (`mqtt://u:pa ss@ho st`, `amqp://u:p@`, `not a url u:p@h`) and on whole
 * messages that quote a URL. Each of `secrets` (e.g. a password given as an option, a TLS passphrase) is masked
 * wherever it appears, also percent-encoded. The result is safe to show, and redacting it again changes nothing.
 *
 * @example
 * ```ts
 * redactCredentials('mqtt://filter:s3cret@gw:1883/x'); // 'mqtt://filter:***@gw:1883/x'
 * redactCredentials('login failed for s3cret', ['s3cret']); // 'login failed for ***'
 * ```
 */
export function redactCredentials(text: string, secrets: Iterable<string | undefined> = []): string {
  let result = text;
  for (const secret of secrets) {
    if (!secret) continue;
    for (const form of new Set([secret, encodeURIComponent(secret)])) result = result.split(form).join(REDACTED);
  }
  return result.replace(PASSWORD, REDACTED);
}

/**
 * What to add to "is not a URL" when {@link redactCredentials} masked part of `url`: the mistake may be under the
 * mask, most often a reserved character written as it is in the password. Empty when nothing was masked.
 */
export function maskedUrlHint(url: string): string {
  return redactCredentials(url) === url
    ? ''
    : ' (the password is masked; in a URL, write @ : / ? # and spaces in it as %40 %3A %2F %3F %23 %20)';
}

/**
 * `error` as it may be shown: the same object when neither its message, stack, string properties nor its `cause`
 * chain contain credentials; otherwise a copy (same prototype, so `instanceof` and `name` still hold) with them
 * redacted by {@link redactCredentials}. Meant for library errors that become the `cause` of an edgekit error.
 */
export function redactError(error: unknown, secrets: Iterable<string | undefined> = []): unknown {
  return redactErrorAt(error, [...secrets], 0);
}

function redactErrorAt(error: unknown, secrets: readonly (string | undefined)[], depth: number): unknown {
  if (typeof error === 'string') return redactCredentials(error, secrets);
  // A cause chain may be circular; ten levels are more than any library builds.
  if (!(error instanceof Error) || depth > 10) return error;
  const copy = Object.create(Object.getPrototypeOf(error)) as Error;
  let changed = false;
  for (const key of Reflect.ownKeys(error)) {
    const descriptor = Object.getOwnPropertyDescriptor(error, key);
    if (descriptor === undefined) continue;
    if (!('value' in descriptor)) {
      // An accessor (V8's `stack` can be one) reads the original's internal slots: copy the value it gives.
      descriptor.value = Reflect.get(error, key);
      delete descriptor.get;
      delete descriptor.set;
      descriptor.writable = true;
    }
    const original: unknown = descriptor.value;
    const shown = redactValue(original, secrets, depth);
    if (shown !== original) changed = true;
    descriptor.value = shown;
    Object.defineProperty(copy, key, descriptor);
  }
  return changed ? copy : error;
}

/** A string, an error (a `cause`) or an array of them (AggregateError's `errors`) masked; anything else as it is. */
function redactValue(value: unknown, secrets: readonly (string | undefined)[], depth: number): unknown {
  if (typeof value === 'string') return redactCredentials(value, secrets);
  if (!Array.isArray(value) || depth > 10) return redactErrorAt(value, secrets, depth + 1);
  const shown = value.map((item: unknown) => redactValue(item, secrets, depth + 1));
  return shown.every((item, i) => item === value[i]) ? value : shown;
}

/**
 * Percent-decodes a user name, password or vhost taken from a URL. A `%` that does not start a valid escape (`50%`,
 * `%zz`, a lone `%C3`) is kept as it is: `decodeURIComponent` would throw `URIError: URI malformed` for the whole
 * value, and a password with a `%` is more likely meant literally than mistyped.
 *
 * @example
 * ```ts
 * decodeUrlComponent('p%40ss'); // 'p@ss'
 * decodeUrlComponent('50%');    // '50%'
 * ```
 */
export function decodeUrlComponent(text: string): string {
  return text.replace(/(?:%[0-9a-f]{2})+/gi, (escapes) => {
    try {
      return decodeURIComponent(escapes);
    } catch {
      return escapes;
    }
  });
}
