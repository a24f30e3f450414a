/**
 * Translation of mqtt.js and socket errors into `EdgeKitError`s, done once at the transport boundary so the core
 * and user code only ever see edgekit's error codes (with the original error as `cause`, credentials masked).
 */
import { EdgeKitError, type EdgeKitErrorCode } from '../../errors.js';
import { redactCredentials, redactError } from '../../redact.js';

/** MQTT 5 reason codes worth naming in a message (the full table is in the MQTT 5 specification, 2.4). */
const REASONS: Readonly<Record<number, string>> = {
  4: 'bad user name or password',
  5: 'not authorized',
  16: 'no matching subscribers',
  128: 'unspecified error',
  129: 'malformed packet',
  130: 'protocol error',
  131: 'implementation specific error',
  132: 'unsupported protocol version',
  133: 'client identifier not valid',
  134: 'bad user name or password',
  135: 'not authorized',
  136: 'server unavailable',
  137: 'server busy',
  138: 'banned',
  139: 'server shutting down',
  141: 'keep alive timeout',
  142: 'session taken over',
  143: 'topic filter invalid',
  144: 'topic name invalid',
  147: 'receive maximum exceeded',
  149: 'packet too large',
  151: 'quota exceeded',
  152: 'administrative action',
  153: 'payload format invalid',
  154: 'retain not supported',
  155: 'QoS not supported',
  156: 'use another server',
  157: 'server moved',
  158: 'shared subscriptions not supported',
  159: 'connection rate exceeded',
  160: 'maximum connect time',
  161: 'subscription identifiers not supported',
  162: 'wildcard subscriptions not supported',
};

/** Text for an MQTT reason code, e.g. `not authorized (135)`. */
export function describeReason(code: number): string {
  return `${REASONS[code] ?? 'reason'} (${code})`;
}

/** The MQTT reason code carried by an mqtt.js error, if any. */
export function reasonCodeOf(error: unknown): number | undefined {
  if (typeof error !== 'object' || error === null) return undefined;
  const code = (error as { code?: unknown }).code;
  return typeof code === 'number' ? code : undefined;
}

/** The errno-style code of a socket error (`ECONNREFUSED`, …), if any. */
function systemCodeOf(error: unknown): string | undefined {
  if (typeof error !== 'object' || error === null) return undefined;
  const code = (error as { code?: unknown }).code;
  return typeof code === 'string' ? code : undefined;
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * A failure to establish the connection: always `connection-failed`, with a reason a person can act on. A library
 * message may quote the URL or a credential, so it is shown, and kept as `cause`, with `secrets` and URL passwords
 * redacted.
 */
export function connectFailed(error: unknown, url: string, secrets: readonly string[]): EdgeKitError {
  const reason = reasonCodeOf(error);
  const system = systemCodeOf(error);
  const message = redactCredentials(messageOf(error), secrets);
  let why: string;
  if (reason === 4 || reason === 134) why = 'the broker refused the user name or password';
  else if (reason === 5 || reason === 135) why = 'the broker refused the client: not authorized';
  else if (reason !== undefined) why = `the broker refused the connection: ${describeReason(reason)}`;
  else if (system === 'ECONNREFUSED') why = 'nothing accepts connections there (ECONNREFUSED)';
  else if (system === 'ENOTFOUND' || system === 'EAI_AGAIN') why = `the host name does not resolve (${system})`;
  else if (system?.startsWith('ERR_TLS') || system?.includes('CERT') || system === 'DEPTH_ZERO_SELF_SIGNED_CERT') {
    why = `TLS failed: ${message}`;
  } else why = message;
  return new EdgeKitError('connection-failed', `could not connect to ${url}: ${why}`, {
    cause: redactError(error, secrets),
    details: { url, ...(reason === undefined ? {} : { reasonCode: reason }), ...(system ? { code: system } : {}) },
  });
}

/** A failed operation on an open connection (PUBACK/SUBACK with an error reason, invalid topic, …). */
export function operationFailed(error: unknown, operation: string, topic: string): EdgeKitError {
  const reason = reasonCodeOf(error);
  let code: EdgeKitErrorCode = 'transport-error';
  if (reason === 149) code = 'message-too-large';
  const why = reason === undefined ? messageOf(error) : describeReason(reason);
  return new EdgeKitError(code, `mqtt ${operation} on ${JSON.stringify(topic)} failed: ${why}`, {
    cause: error,
    details: { topic, ...(reason === undefined ? {} : { reasonCode: reason }) },
  });
}
