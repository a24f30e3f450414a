import { EventEmitter } from 'node:events';
import type { ConfirmChannel, Options } from 'amqplib';
import { describe, expect, it } from 'vitest';
import { isEdgeKitError } from '../../errors.js';
import { publishRefusalOf } from './errors.js';
import { BrokerLimits, type ConfirmCallback, ConfirmPublisher, type PublisherHost } from './publisher.js';

/** RabbitMQ's words, as amqplib 2.3 reports them on the channel (observed on RabbitMQ 3.10.8). */
const TOO_LARGE =
  'Channel closed by server: 406 (PRECONDITION-FAILED) with message "PRECONDITION_FAILED - message size 1001 is ' +
  'larger than configured max size 1000"';
const TOPIC_REFUSED =
  'Channel closed by server: 403 (ACCESS-REFUSED) with message "ACCESS_REFUSED - access to topic ' +
  "'p.retained.routes.gw' in exchange 'p.retained' in vhost '/' refused for user 'u'\"";
const EXCHANGE_REFUSED =
  'Channel closed by server: 403 (ACCESS-REFUSED) with message "ACCESS_REFUSED - access to exchange ' +
  "'p.messages' in vhost '/' refused for user 'u'\"";

function channelError(message: string, code: number, classId = 60, methodId = 40): Error {
  return Object.assign(new Error(message), { code, classId, methodId });
}

interface Sent {
  readonly exchange: string;
  readonly routingKey: string;
  readonly size: number;
  readonly properties: Options.Publish;
}

/**
 * A confirm channel that behaves as amqplib's does when the broker closes it: 'error' with the reply code, then
 * 'close', whose first listener (amqplib's own, added at construction) fails every unconfirmed publish.
 */
class FakeConfirmChannel extends EventEmitter {
  readonly sent: Sent[] = [];
  private unconfirmed: ConfirmCallback[] = [];
  private confirmWaiters: Array<() => void> = [];

  constructor() {
    super();
    this.on('close', () => {
      for (const callback of this.unconfirmed.splice(0)) callback(new Error('channel closed'));
      for (const wake of this.confirmWaiters.splice(0)) wake();
    });
  }

  publish(
    exchange: string,
    routingKey: string,
    content: Buffer,
    properties: Options.Publish,
    callback: ConfirmCallback,
  ): boolean {
    this.sent.push({ exchange, routingKey, size: content.byteLength, properties });
    this.unconfirmed.push(callback);
    return true;
  }

  waitForConfirms(): Promise<void> {
    if (this.unconfirmed.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.confirmWaiters.push(resolve));
  }

  /** The broker confirms everything so far. */
  confirmAll(): void {
    for (const callback of this.unconfirmed.splice(0)) callback(null);
    for (const wake of this.confirmWaiters.splice(0)) wake();
  }

  /** The broker closes the channel with `error`. */
  closeWith(error: Error | undefined): void {
    if (error !== undefined) this.emit('error', error);
    this.emit('close');
  }
}

function setUp(options: { reopen?: 'fails'; maxMessageBytes?: number } = {}) {
  const channels = [new FakeConfirmChannel()];
  const lost: Array<Error | undefined> = [];
  const host: PublisherHost = {
    openChannel: async () => {
      if (options.reopen === 'fails') throw new Error('connection closed');
      const channel = new FakeConfirmChannel();
      channels.push(channel);
      return channel as unknown as ConfirmChannel;
    },
    lose: (cause) => lost.push(cause),
    returned: () => undefined,
  };
  const limits = new BrokerLimits(options.maxMessageBytes);
  const publisher = new ConfirmPublisher(channels[0] as unknown as ConfirmChannel, limits, host);
  const outcomes = new Map<string, unknown>();
  const publish = (name: string, size = 10, exchange = 'p.messages', routingKey = `q.${name}`) =>
    publisher.publish(exchange, routingKey, Buffer.alloc(size), { messageId: name }, name, (error) =>
      outcomes.set(name, error ?? 'confirmed'),
    );
  const channel = (i: number) => channels[i] as FakeConfirmChannel;
  return { publisher, limits, channels, channel, lost, outcomes, publish };
}

const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

describe('publishRefusalOf', () => {
  it("reads RabbitMQ's refusals of one publish", () => {
    expect(publishRefusalOf(channelError(TOO_LARGE, 406))).toEqual({ kind: 'too-large', size: 1001, limit: 1000 });
    expect(publishRefusalOf(channelError(TOPIC_REFUSED, 403))).toEqual({
      kind: 'access-refused',
      exchange: 'p.retained',
      routingKey: 'p.retained.routes.gw',
      text: "ACCESS_REFUSED - access to topic 'p.retained.routes.gw' in exchange 'p.retained' in vhost '/' refused for user 'u'",
    });
    expect(publishRefusalOf(channelError(EXCHANGE_REFUSED, 403))).toMatchObject({
      exchange: 'p.messages',
      routingKey: undefined,
    });
    const defaultExchange = EXCHANGE_REFUSED.replace("'p.messages'", "'amq.default'");
    expect(publishRefusalOf(channelError(defaultExchange, 403))).toMatchObject({ exchange: '' });
  });

  it('reads nothing else as one', () => {
    expect(publishRefusalOf(channelError("NOT_FOUND - no exchange 'x' in vhost '/'", 404))).toBeUndefined();
    expect(publishRefusalOf(channelError('PRECONDITION_FAILED - inequivalent arg', 406))).toBeUndefined();
    // The same words, but not about basic.publish (queue.declare is class 50, method 10).
    expect(publishRefusalOf(channelError(TOPIC_REFUSED, 403, 50, 10))).toBeUndefined();
    expect(publishRefusalOf(new Error('channel closed'))).toBeUndefined();
    expect(publishRefusalOf(undefined)).toBeUndefined();
  });
});

describe('ConfirmPublisher', () => {
  it('rejects the refused publish and those refused alike, publishes the others again in order, then the waiting ones', async () => {
    const { channel, lost, outcomes, publish, limits } = setUp();
    publish('a');
    publish('big', 1001);
    publish('b');
    publish('big too', 2000);
    publish('c');
    channel(0).closeWith(channelError(TOO_LARGE, 406));
    publish('d'); // while the new channel opens
    expect(outcomes.get('big')).toSatisfy((e: unknown) => isEdgeKitError(e, 'message-too-large'));
    expect(outcomes.get('big too')).toMatchObject({ code: 'message-too-large', details: { size: 2000, limit: 1000 } });
    expect(limits.maxMessageBytes).toBe(1000);
    await turn();
    expect(channel(1).sent.map((s) => s.properties.messageId)).toEqual(['a', 'b', 'c', 'd']);
    channel(1).confirmAll();
    expect([...outcomes.keys()]).toEqual(['big', 'big too', 'a', 'b', 'c', 'd']);
    expect(outcomes.get('d')).toBe('confirmed');
    expect(lost).toEqual([]);
  });

  it('refuses a body over the learned or configured limit without sending it', () => {
    const { channel, outcomes, publish } = setUp({ maxMessageBytes: 100 });
    publish('ok', 100);
    publish('over', 101);
    expect(channel(0).sent.map((s) => s.properties.messageId)).toEqual(['ok']);
    expect(outcomes.get('over')).toMatchObject({
      code: 'message-too-large',
      message: 'the message for over is 101 bytes, over maxMessageBytes (100)',
    });
  });

  it('matches a 403 to its exchange and topic routing key', async () => {
    const { channel, outcomes, publish } = setUp();
    publish('twin', 10, 'p.retained', 'p.retained.twin.gw');
    publish('routes', 10, 'p.retained', 'p.retained.routes.gw');
    publish('message', 10, 'p.messages', 'p.msg.x');
    publish('routes again', 10, 'p.retained', 'p.retained.routes.gw');
    channel(0).closeWith(channelError(TOPIC_REFUSED, 403));
    await turn();
    expect(channel(1).sent.map((s) => s.properties.messageId)).toEqual(['twin', 'message']);
    expect(outcomes.get('routes')).toMatchObject({
      code: 'not-authorized',
      details: { amqpReplyCode: 403, exchange: 'p.retained', routingKey: 'p.retained.routes.gw' },
    });
    expect(outcomes.get('routes again')).toMatchObject({ code: 'not-authorized' });
  });

  it('gives the connection up when the channel ends for another reason', () => {
    const { channel, lost, outcomes, publish } = setUp();
    publish('a');
    const notFound = channelError("NOT_FOUND - no exchange 'p.messages' in vhost '/'", 404);
    channel(0).closeWith(notFound);
    expect(lost).toEqual([notFound]);
    expect(outcomes.get('a')).toMatchObject({ message: 'channel closed' });
    publish('later');
    expect(outcomes.get('later')).toMatchObject({ message: 'channel closed' });
  });

  it('gives the connection up when a refusal names no publish it was waiting for', () => {
    const { channel, channels, lost, outcomes, publish } = setUp();
    publish('small');
    channel(0).closeWith(channelError(TOO_LARGE, 406));
    expect(lost).toHaveLength(1);
    expect(outcomes.get('small')).toMatchObject({ message: 'channel closed' });
    expect(channels).toHaveLength(1);
  });

  it('gives the connection up when no new channel can be opened, failing what was held', async () => {
    const { channel, lost, outcomes, publish } = setUp({ reopen: 'fails' });
    publish('a');
    publish('big', 1001);
    channel(0).closeWith(channelError(TOO_LARGE, 406));
    publish('b');
    await turn();
    expect(lost).toMatchObject([{ message: 'connection closed' }]);
    expect(outcomes.get('big')).toMatchObject({ code: 'message-too-large' });
    expect(outcomes.get('a')).toMatchObject({ message: 'channel closed' });
    expect(outcomes.get('b')).toMatchObject({ message: 'channel closed' });
  });

  it('drains the publishes moved to a new channel too', async () => {
    const { publisher, channel, publish } = setUp();
    publish('a');
    publish('big', 1001);
    let drained = false;
    const draining = publisher.drain().then(() => {
      drained = true;
    });
    channel(0).closeWith(channelError(TOO_LARGE, 406));
    await turn();
    expect(drained).toBe(false);
    channel(1).confirmAll();
    await draining;
    expect(drained).toBe(true);
  });
});
