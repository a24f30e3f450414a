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
 * Why RabbitMQ closed a publishing channel when the cause was one publish, not the connection: the message was over
 * its `max_message_size`, or the user may not publish to that exchange (or, on a topic exchange, that routing key).
 * RabbitMQ reports either as a channel exception on `basic.publish` and drops everything published after it on that
 * channel; the connection and its other channels go on.
 */
export type PublishRefusal =
  | { readonly kind: 'too-large'; readonly size: number; readonly limit: number }
  | {
      readonly kind: 'access-refused';
      readonly exchange: string;
      /** Set when a topic permission refused the routing key; unset when the exchange itself is not writable. */
      readonly routingKey: string | undefined;
      /** RabbitMQ's own words, e.g. `ACCESS_REFUSED - access to topic '…' in exchange '…' … refused for user '…'`. */
      readonly text: string;
    };

/** AMQP class and method id of `basic.publish`, which RabbitMQ names in the channel exception it caused. */
const BASIC_PUBLISH = { classId: 60, methodId: 40 } as const;

/**
 * The {@link PublishRefusal} in a publishing channel's error (amqplib's "Channel closed by server" with the reply
 * code, class and method), or `undefined` for any other reason a channel ends. Matches RabbitMQ 3.x's texts.
 */
export function publishRefusalOf(error: unknown): PublishRefusal | undefined {
  if (typeof error !== 'object' || error === null) return undefined;
  const { classId, methodId } = error as { classId?: unknown; methodId?: unknown };
  if (classId !== BASIC_PUBLISH.classId || methodId !== BASIC_PUBLISH.methodId) return undefined;
  const text = messageOf(error);
  const replyCode = replyCodeOf(error);
  if (replyCode === AmqpReplyCode.preconditionFailed) {
    const size = /message size (\d+) is larger than configured max size (\d+)/.exec(text);
    if (size === null) return undefined;
    return { kind: 'too-large', size: Number(size[1]), limit: Number(size[2]) };
  }
  if (replyCode === AmqpReplyCode.accessRefused) {
    const said = /"(ACCESS_REFUSED - .*)"/.exec(text)?.[1] ?? text;
    const topic = /access to topic '(.*)' in exchange '(.*)' in vhost '/.exec(said);
    if (topic !== null) return { kind: 'access-refused', exchange: topic[2] ?? '', routingKey: topic[1], text: said };
    const exchange = /access to exchange '(.*)' in vhost '/.exec(said);
    // The default exchange's permissions are checked under the name amq.default.
    const name = exchange?.[1] === 'amq.default' ? '' : exchange?.[1];
    if (name !== undefined) return { kind: 'access-refused', exchange: name, routingKey: undefined, text: said };
  }
  return undefined;
}

/**
 * What the one publish RabbitMQ refused rejects with. `target` names what was published to (an address, a retained
 * key); `configured` says whether the limit is the `maxMessageBytes` option rather than what the broker said.
 */
export function publishRefusedError(
  refusal: PublishRefusal,
  target: string,
  cause: unknown,
  configured = false,
): EdgeKitError {
  if (refusal.kind === 'too-large') {
    const { size, limit } = refusal;
    const over = configured ? `maxMessageBytes (${limit})` : `RabbitMQ's max_message_size (${limit} bytes)`;
    return new EdgeKitError('message-too-large', `the message for ${target} is ${size} bytes, over ${over}`, {
      ...(cause === undefined ? {} : { cause }),
      details: { size, limit },
    });
  }
  const why =
    refusal.routingKey === undefined
      ? `the user may not write to exchange ${JSON.stringify(refusal.exchange)}`
      : `the user's topic permissions on exchange ${JSON.stringify(refusal.exchange)} refuse routing key ` +
        JSON.stringify(refusal.routingKey);
  return new EdgeKitError('not-authorized', `not allowed to publish to ${target}: ${why} (RabbitMQ: ${refusal.text})`, {
    cause,
    details: {
      amqpReplyCode: AmqpReplyCode.accessRefused,
      exchange: refusal.exchange,
      ...(refusal.routingKey === undefined ? {} : { routingKey: refusal.routingKey }),
    },
  });
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
    case AmqpReplyCode.accessRefused:
      // RabbitMQ also says ACCESS_REFUSED for a queue another connection uses exclusively: that is no permission.
      if (!/exclusive use/i.test(text)) code = 'not-authorized';
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
      : code === 'not-authorized'
        ? ' (the user lacks a permission: see the access plan, rabbitmqDefinitions in edgekit/amqp)'
        : replyCode === AmqpReplyCode.accessRefused
          ? ' (another connection uses it exclusively)'
          : '';
  return new EdgeKitError(code, `${what} failed: ${text}${hint}`, { cause: error, details });
}
