/**
 * Translation of amqplib and socket errors into `EdgeKitError` codes, done once at the transport boundary so the core
 * never sees an amqplib error.
 */
import { EdgeKitError, type EdgeKitErrorCode, isEdgeKitError, messageOf } from '../../errors.js';
import { redactCredentials, redactError } from '../../redact.js';

/** AMQP reply codes that matter here (AMQP 0-9-1 §1.9 constants). */
export const AmqpReplyCode = {
  connectionForced: 320,
  accessRefused: 403,
  notFound: 404,
  resourceLocked: 405,
  preconditionFailed: 406,
  notAllowed: 530,
} as const;

/** The AMQP reply code amqplib attaches to channel and connection errors, if any. */
export function replyCodeOf(error: unknown): number | undefined {
  if (typeof error !== 'object' || error === null) return undefined;
  const code = (error as { code?: unknown }).code;
  return typeof code === 'number' ? code : undefined;
}

function socketCodeOf(error: unknown): string | undefined {
  if (typeof error !== 'object' || error === null) return undefined;
  const code = (error as { code?: unknown }).code;
  return typeof code === 'string' ? code : undefined;
}

/** True when the error says the channel or connection is gone rather than that the operation was refused. */
export function isClosedError(error: unknown): boolean {
  if (typeof error !== 'object' || error === null) return false;
  if ((error as { name?: unknown }).name === 'IllegalOperationError') return true;
  return /channel (closed|ended|closing)|connection (closed|closing)|socket closed/i.test(messageOf(error));
}

/**
 * Translates a failure while connecting: everything is `connection-failed`, with the reason in `details`. amqplib's
 * and the socket's message may quote the URL or a credential, so it is shown, and kept as `cause`, with `secrets` and
 * URL passwords redacted.
 */
export function translateConnectError(error: unknown, target: string, secrets: readonly string[]): EdgeKitError {
  if (isEdgeKitError(error)) return error;
  const text = messageOf(error);
  const socketCode = socketCodeOf(error);
  let reason = 'unreachable';
  if (/ACCESS.REFUSED|authentication|login/i.test(text)) reason = 'authentication';
  else if (/NOT.ALLOWED|vhost|virtual host|ConnectionOpenOk/i.test(text)) reason = 'vhost';
  else if (socketCode?.startsWith('ERR_TLS') || /certificate|ssl|tls/i.test(text)) reason = 'tls';
  else if (socketCode === 'ECONNREFUSED') reason = 'refused';
  const hint =
    reason === 'authentication'
      ? ' (wrong username or password, or the user may not connect from this host)'
      : reason === 'vhost'
        ? ' (the virtual host does not exist or the user has no access to it)'
        : '';
  const shown = redactCredentials(text, secrets);
  return new EdgeKitError('connection-failed', `could not connect to RabbitMQ at ${target}: ${shown}${hint}`, {
    cause: redactError(error, secrets),
    details: { reason, ...(socketCode === undefined ? {} : { code: socketCode }) },
  });
}

/**
 * Translates an operation's failure. `lost` is what the operation rejects with when the connection itself ended
 * (so a dying connection reports one cause, not a different amqplib message per operation).
 */
export function translateOperationError(error: unknown, what: string, lost?: EdgeKitError): EdgeKitError {
  if (isEdgeKitError(error)) return error;
  const text = messageOf(error);
  const replyCode = replyCodeOf(error);
  const details = replyCode === undefined ? {} : { amqpReplyCode: replyCode };
  let code: EdgeKitErrorCode = 'transport-error';
  switch (replyCode) {
    case AmqpReplyCode.notFound:
      code = 'not-found';
      break;
    case AmqpReplyCode.preconditionFailed:
      if (/inequivalent arg/i.test(text)) code = 'invalid-configuration';
      else if (/max size|message size|too large/i.test(text)) code = 'message-too-large';
      break;
    case AmqpReplyCode.connectionForced:
      code = 'connection-lost';
      break;
    default:
      if (replyCode === undefined && isClosedError(error)) {
        if (lost !== undefined) return lost;
        code = 'connection-lost';
      }
  }
  const hint =
    code === 'invalid-configuration'
      ? ' (the queue or exchange exists with other arguments: are all clients using the same edgekit/amqp options, ' +
        'e.g. `priorities`?)'
      : replyCode === AmqpReplyCode.accessRefused
        ? ' (the user lacks a permission, or the resource is in exclusive use)'
        : '';
  return new EdgeKitError(code, `${what} failed: ${text}${hint}`, { cause: error, details });
}
