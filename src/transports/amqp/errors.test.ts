import { describe, expect, it } from 'vitest';
import { translateOperationError } from './errors.js';

/** amqplib's channel error: the message RabbitMQ sent, with the reply code. */
function channelError(text: string, code: number): Error {
  return Object.assign(new Error(`Channel closed by server: ${code} with message "${text}"`), { code });
}

describe('translateOperationError', () => {
  it('a 403 on an operation is not-authorized, with the reply code', () => {
    const error = translateOperationError(
      channelError("ACCESS_REFUSED - access to queue 'q' in vhost '/' refused for user 'gw-1/filter'", 403),
      'consume inputs/gw-1/sensor/in',
    );
    expect(error).toMatchObject({ code: 'not-authorized', details: { amqpReplyCode: 403 } });
    expect(error.message).toMatch(/^consume inputs\/gw-1\/sensor\/in failed: .*lacks a permission/);
  });

  it('a queue in exclusive use by another connection is no permission problem', () => {
    const error = translateOperationError(
      channelError("ACCESS_REFUSED - queue 'q' in vhost '/' in exclusive use", 403),
      'consume',
    );
    expect(error).toMatchObject({ code: 'transport-error', details: { amqpReplyCode: 403 } });
    expect(error.message).toMatch(/another connection uses it exclusively/);
  });

  it('keeps the other codes', () => {
    expect(translateOperationError(channelError('NOT_FOUND - no queue', 404), 'x').code).toBe('not-found');
    expect(
      translateOperationError(channelError("PRECONDITION_FAILED - inequivalent arg 'x-max-priority'", 406), 'x').code,
    ).toBe('invalid-configuration');
  });
});
