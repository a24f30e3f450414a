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

/**
 * The MQTT reason code carried by an mqtt.js error, if any: its `code`, or — mqtt.js 5 rejects a refused SUBSCRIBE
 * with an error that has lost it — the first refusal (0x80 and up) in the SUBACK it keeps as `packet`.
 */
export function reasonCodeOf(error: unknown): number | undefined {
  if (typeof error !== 'object' || error === null) return undefined;
  const { code, packet } = error as { code?: unknown; packet?: unknown };
  if (typeof code === 'number') return code;
  const granted = (packet as { granted?: unknown } | null | undefined)?.granted;
  if (!Array.isArray(granted)) return undefined;
  return granted.find((value): value is number => typeof value === 'number' && value >= 0x80);
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

/** MQTT reason codes that say the credentials do not allow it: 0x87 (MQTT 5) and CONNACK 5 (MQTT 3.1.1). */
export function isNotAuthorized(reason: number | undefined): boolean {
  return reason === 135 || reason === 5;
}

/**
 * Why a connect failed, as `details.reason` (the same words as the amqp transport where they mean the same):
 * `authentication` (bad user name or password), `not-authorized` (the broker's authorization refused the client —
 * Mosquitto's dynamic security also answers so for a wrong password, and for a client id bound to another user, or a
 * last will the client may not write), `refused` (another CONNACK reason, or nothing listening), `tls`, `unreachable`.
 */
export type ConnectFailureReason = 'authentication' | 'not-authorized' | 'refused' | 'tls' | 'unreachable';

/**
 * A failure to establish the connection: always `connection-failed`, with a reason a person can act on and
 * `details.reason` a program can switch on. A library message may quote the URL or a credential, so it is shown,
 * and kept as `cause`, with `secrets` and URL passwords redacted.
 */
export function connectFailed(error: unknown, url: string, secrets: readonly string[]): EdgeKitError {
  const reason = reasonCodeOf(error);
  const system = systemCodeOf(error);
  const message = redactCredentials(messageOf(error), secrets);
  let why: string;
  let kind: ConnectFailureReason | undefined;
  if (reason === 4 || reason === 134) {
    why = 'the broker refused the user name or password';
    kind = 'authentication';
  } else if (isNotAuthorized(reason)) {
    why =
      'the broker refused the client: not authorized (wrong credentials, a client id bound to another user, or a ' +
      'last will the user may not write)';
    kind = 'not-authorized';
  } else if (reason !== undefined) {
    why = `the broker refused the connection: ${describeReason(reason)}`;
    kind = 'refused';
  } else if (system === 'ECONNREFUSED') {
    why = 'nothing accepts connections there (ECONNREFUSED)';
    kind = 'refused';
  } else if (system === 'ENOTFOUND' || system === 'EAI_AGAIN') {
    why = `the host name does not resolve (${system})`;
    kind = 'unreachable';
  } else if (system?.startsWith('ERR_TLS') || system?.includes('CERT') || system === 'DEPTH_ZERO_SELF_SIGNED_CERT') {
    why = `TLS failed: ${message}`;
    kind = 'tls';
  } else why = message;
  return new EdgeKitError('connection-failed', `could not connect to ${url}: ${why}`, {
    cause: redactError(error, secrets),
    details: {
      url,
      ...(kind === undefined ? {} : { reason: kind }),
      ...(reason === undefined ? {} : { reasonCode: reason }),
      ...(system ? { code: system } : {}),
    },
  });
}

/**
 * A failed operation on an open connection (PUBACK/SUBACK with an error reason, invalid topic, …): `not-authorized`
 * when the broker's authorization refused it (reason 0x87), `message-too-large` for 0x95, else `transport-error`.
 */
export function operationFailed(error: unknown, operation: string, topic: string): EdgeKitError {
  const reason = reasonCodeOf(error);
  let code: EdgeKitErrorCode = 'transport-error';
  if (reason === 149) code = 'message-too-large';
  else if (isNotAuthorized(reason)) code = 'not-authorized';
  const why = reason === undefined ? messageOf(error) : describeReason(reason);
  return new EdgeKitError(code, `mqtt ${operation} on ${JSON.stringify(topic)} failed: ${why}`, {
    cause: error,
    details: { topic, ...(reason === undefined ? {} : { reasonCode: reason }) },
  });
}
