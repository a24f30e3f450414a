/**
 * RabbitMQ refuses a publish by closing the publishing channel: a message over its `max_message_size` (406, research
 * Q5), or one the user may not publish (403: the connection's exchange is not the user's to write). That one publish
 * rejects with a typed error (`message-too-large`, `not-authorized`); the connection, its consumers and every other
 * publish go on: those in flight on the closed channel are published again on a new one, in order (at-least-once),
 * unless RabbitMQ would refuse them alike. The shared broker runs with `max_message_size = 524288` and users with
 * narrower rights (global-setup.ts). A watched amqplib (`lib`) shows what happened to the channels.
 */
import * as amqplib from 'amqplib';
import { afterEach, describe, expect, it } from 'vitest';
import { type EdgeKitError, isEdgeKitError } from '../../../src/errors.js';
import type { Delivery, TransportConnection } from '../../../src/transport.js';
import { amqp } from '../../../src/transports/amqp/index.js';
import type { AmqplibModule } from '../../../src/transports/amqp/options.js';
import { MAX_MESSAGE_SIZE, TEST_USERS } from './global-setup.js';
import { bytes, closeAll, Inbox, open, sharedRabbitMQ, testTransport, text, uniquePrefix, until } from './support.js';

const opened: TransportConnection[] = [];
afterEach(() => closeAll(opened));

const OVERSIZE = 600 * 1024;

/** amqplib, watched: every confirm channel the transport opens and the reply code of every error one reports. */
function watchedAmqplib(): { lib: AmqplibModule; confirmChannels: number; channelErrors: Array<number | undefined> } {
  const watched = {
    confirmChannels: 0,
    channelErrors: [] as Array<number | undefined>,
    lib: {
      async connect(url, socketOptions) {
        const model = await amqplib.connect(url, socketOptions);
        const create = model.createConfirmChannel.bind(model);
        model.createConfirmChannel = async () => {
          const channel = await create();
          watched.confirmChannels++;
          channel.on('error', (error: { code?: number }) => watched.channelErrors.push(error.code));
          return channel;
        };
        return model;
      },
    } satisfies AmqplibModule,
  };
  return watched;
}

/** Whether `promise` has settled by now (checked after every pending callback ran). */
async function settledYet(promise: Promise<unknown>): Promise<boolean> {
  let settled = false;
  void promise.then(() => {
    settled = true;
  });
  await new Promise((resolve) => setImmediate(resolve));
  return settled;
}

/** The texts of the deliveries of `address`, acknowledged as they come. */
async function collect(connection: TransportConnection, address: string): Promise<Inbox<string | undefined>> {
  const inbox = new Inbox<string | undefined>();
  await connection.consume(address, { prefetch: 100 }, (delivery: Delivery) => {
    inbox.push(delivery.bytes.byteLength > 1000 ? `${delivery.bytes.byteLength} bytes` : text(delivery.bytes));
    delivery.ack();
  });
  return inbox;
}

/** The rejection of `promise`, which must reject. */
async function rejection(promise: Promise<unknown>): Promise<EdgeKitError> {
  const outcome = await promise.then(
    () => new Error('resolved, expected a rejection'),
    (error: unknown) => error,
  );
  if (!isEdgeKitError(outcome)) throw outcome;
  return outcome;
}

/** Items in first-seen order, and how many were seen again. */
function firstSeen<T>(items: readonly T[]): { order: T[]; repeated: T[] } {
  const seen = new Set<T>();
  const repeated: T[] = [];
  for (const item of items) {
    if (seen.has(item)) repeated.push(item);
    else seen.add(item);
  }
  return { order: [...seen], repeated };
}

describe('a publish over max_message_size', () => {
  it('rejects with message-too-large; the connection, its consumer and later publishes go on', async () => {
    const watched = watchedAmqplib();
    const connection = await open(testTransport({ lib: watched.lib }), {}, opened);
    const inbox = await collect(connection, 'inputs/d1/m1/in');
    await connection.publish('inputs/d1/m1/in', bytes('before'));
    expect(await inbox.next()).toBe('before');

    const error = await rejection(connection.publish('inputs/d1/m1/in', new Uint8Array(OVERSIZE)));
    expect(error.code).toBe('message-too-large');
    expect(error.details).toEqual({ size: OVERSIZE, limit: MAX_MESSAGE_SIZE });
    expect(error.message).toBe(
      `the message for inputs/d1/m1/in is ${OVERSIZE} bytes, over RabbitMQ's max_message_size (${MAX_MESSAGE_SIZE} bytes)`,
    );

    await connection.publish('inputs/d1/m1/in', bytes('after 1'));
    await connection.publish('inputs/d1/m1/in', bytes('after 2'));
    expect(await inbox.next()).toBe('after 1');
    expect(await inbox.next()).toBe('after 2');
    expect(await connection.getRetained('twin/d1/m1/desired')).toBeUndefined();
    expect(await settledYet(connection.closed)).toBe(false);
    // RabbitMQ closed the publishing channel once, for that message; the transport opened another.
    expect(watched.channelErrors).toEqual([406]);
    expect(watched.confirmChannels).toBe(2);
    expect(inbox.items).toEqual(['before', 'after 1', 'after 2']);
  });

  it('publishes again, in order, every other publish that was in flight on the closed channel', async () => {
    const watched = watchedAmqplib();
    const connection = await open(testTransport({ lib: watched.lib }), {}, opened);
    const addresses = ['inputs/d1/m1/a', 'inputs/d1/m1/b'] as const;
    const inboxes = [await collect(connection, addresses[0]), await collect(connection, addresses[1])];
    // Both queues declared first, so the round below leaves in one turn and is in flight at once.
    await Promise.all(addresses.map((address) => connection.publish(address, bytes('warm-up'))));

    const sent: [string[], string[]] = [[], []];
    const results: Array<Promise<void>> = [];
    let oversize: Promise<void> | undefined;
    for (let i = 0; i < 200; i++) {
      if (i === 100) {
        oversize = connection.publish(addresses[0], new Uint8Array(OVERSIZE));
        results.push(oversize);
      }
      const body = `m${i}`;
      (i % 2 === 0 ? sent[0] : sent[1]).push(body);
      results.push(connection.publish(addresses[i % 2] as string, bytes(body)));
    }
    const outcomes = await Promise.allSettled(results);
    const failed = outcomes.filter((o): o is PromiseRejectedResult => o.status === 'rejected');
    expect(failed).toHaveLength(1);
    expect(isEdgeKitError(failed[0]?.reason, 'message-too-large')).toBe(true);
    await expect(oversize).rejects.toBe(failed[0]?.reason);

    // A marker behind each queue's last copy: once it is consumed, so is every copy before it.
    await Promise.all(addresses.map((address) => connection.publish(address, bytes('end'))));
    for (const [q, inbox] of inboxes.entries()) {
      await until(() => inbox.items.includes('end'), 10_000, `the end marker of ${addresses[q]}`);
      const { order, repeated } = firstSeen(inbox.items);
      expect(order).toEqual(['warm-up', ...(sent[q] ?? []), 'end']);
      // Only a publish sent before the refused one can have been queued before the channel closed; RabbitMQ dropped
      // every one after it unseen, so those come once.
      const before = new Set((sent[q] ?? []).filter((body) => Number(body.slice(1)) < 100));
      expect(repeated.filter((body) => body === undefined || !before.has(body))).toEqual([]);
      console.info(`${addresses[q]}: ${order.length - 2} messages, ${repeated.length} arrived twice`);
    }
    expect(watched.channelErrors).toEqual([406]);
    expect(await settledYet(connection.closed)).toBe(false);
  });

  it('learns the limit RabbitMQ states: later oversize publishes, on any connection of the transport, are refused before they are sent', async () => {
    const watched = watchedAmqplib();
    const transport = testTransport({ lib: watched.lib });
    const first = await open(transport, {}, opened);
    expect((await rejection(first.publish('inputs/d1/m1/in', new Uint8Array(OVERSIZE)))).code).toBe(
      'message-too-large',
    );
    expect(watched.channelErrors).toEqual([406]);

    const second = await open(transport, {}, opened);
    const inbox = await collect(second, 'inputs/d1/m1/in');
    const error = await rejection(second.publish('inputs/d1/m1/in', new Uint8Array(MAX_MESSAGE_SIZE + 1)));
    expect(error.code).toBe('message-too-large');
    expect(error.details).toEqual({ size: MAX_MESSAGE_SIZE + 1, limit: MAX_MESSAGE_SIZE });
    expect((await rejection(first.setRetained('twin/d1/m1/reported', new Uint8Array(OVERSIZE)))).code).toBe(
      'message-too-large',
    );
    // Exactly the limit is allowed.
    await second.publish('inputs/d1/m1/in', new Uint8Array(MAX_MESSAGE_SIZE));
    expect(await inbox.next()).toBe(`${MAX_MESSAGE_SIZE} bytes`);
    // No channel was closed again: two confirm channels of the first connection, one of the second.
    expect(watched.channelErrors).toEqual([406]);
    expect(watched.confirmChannels).toBe(3);
  });
});

describe('the maxMessageBytes option', () => {
  it('refuses a larger message, retained value or will before it reaches the broker; no channel is closed', async () => {
    const watched = watchedAmqplib();
    const transport = testTransport({ lib: watched.lib, maxMessageBytes: 1024 });
    const connection = await open(transport, {}, opened);
    const inbox = await collect(connection, 'inputs/d1/m1/in');

    await connection.publish('inputs/d1/m1/in', new Uint8Array(1024));
    const error = await rejection(connection.publish('inputs/d1/m1/in', new Uint8Array(1025)));
    expect(error.code).toBe('message-too-large');
    expect(error.details).toEqual({ size: 1025, limit: 1024 });
    expect(error.message).toBe('the message for inputs/d1/m1/in is 1025 bytes, over maxMessageBytes (1024)');
    const retained = await rejection(connection.setRetained('twin/d1/m1/reported', new Uint8Array(2000)));
    expect(retained.code).toBe('message-too-large');
    expect(retained.message).toMatch(/^the message for retained key twin\/d1\/m1\/reported is 2000 bytes/);
    const will = await rejection(
      open(transport, { will: { key: 'presence/d1/m1', value: new Uint8Array(1025) } }, opened),
    );
    expect(will.code).toBe('message-too-large');
    await connection.publish('inputs/d1/m1/in', bytes('after'));

    expect(await inbox.next()).toBe('1024 bytes');
    expect(await inbox.next()).toBe('after');
    expect(await connection.getRetained('twin/d1/m1/reported')).toBeUndefined();
    // Nothing reached RabbitMQ to refuse: it closed no channel.
    expect(watched.channelErrors).toEqual([]);
    expect(watched.confirmChannels).toBe(2); // the connection's, and the one of the connect that failed
    expect(inbox.items).toHaveLength(2);
  });
});

describe('a publish the user may not make (403 ACCESS_REFUSED)', () => {
  /** The shared broker's URL as `user`, with the default prefix `edgekit` that its permissions name. */
  const urlOf = (user: keyof typeof TEST_USERS) => {
    const url = new URL(sharedRabbitMQ().url);
    url.username = user;
    url.password = TEST_USERS[user];
    return url.toString();
  };

  it('refused by the write permission on its exchange: every publish rejects with not-authorized, the connection, consuming and reading go on', async () => {
    const watched = watchedAmqplib();
    const connection = await open(amqp({ url: urlOf('no-messages'), lib: watched.lib }), {}, opened);
    const sender = await open(amqp({ url: sharedRabbitMQ().url }), {}, opened);
    const device = `gw-${uniquePrefix()}`;
    const input = `inputs/${device}/m1/in`;
    const reported = `twin/${device}/m1/reported`;
    const inbox = await collect(connection, input);
    await sender.setRetained(reported, bytes('r1'));

    const refused = await rejection(connection.publish(input, bytes('not allowed')));
    expect(refused.code).toBe('not-authorized');
    expect(refused.details).toEqual({ amqpReplyCode: 403, exchange: 'edgekit.anonymous' });
    expect(refused.message).toMatch(
      new RegExp(
        `^not allowed to publish to ${input}: the user may not write to exchange "edgekit\\.anonymous" \\(RabbitMQ: ` +
          "ACCESS_REFUSED - access to exchange 'edgekit\\.anonymous' in vhost '/' refused for user 'no-messages'\\)$",
      ),
    );
    // Everything this connection writes goes through that exchange: publishes in flight together are refused alike.
    const round = await Promise.allSettled([
      connection.publish(input, bytes('m1')),
      connection.setRetained(reported, bytes('r2')),
      connection.publish(input, bytes('m2')),
    ]);
    expect(round.map((o) => o.status)).toEqual(['rejected', 'rejected', 'rejected']);
    for (const outcome of round) {
      expect(isEdgeKitError((outcome as PromiseRejectedResult).reason, 'not-authorized')).toBe(true);
    }
    await sender.publish(input, bytes('from a sender that may'));
    expect(await inbox.next()).toBe('from a sender that may');
    expect(text(await connection.getRetained(reported))).toBe('r1');
    expect(await settledYet(connection.closed)).toBe(false);
    // The first refusal, the two messages (one closed channel), and the retained write, which declares its key's
    // queue first: it goes out with the messages or, when the declaration takes longer, alone after them — so two or
    // three channels closed, every one by the 403, never one per retry.
    expect(watched.channelErrors.length).toBeGreaterThanOrEqual(2);
    expect(watched.channelErrors.length).toBeLessThanOrEqual(3);
    expect(new Set(watched.channelErrors)).toEqual(new Set([403]));
    expect(inbox.items).toEqual(['from a sender that may']);
  });
});

describe('a retained value over max_message_size', () => {
  it('rejects with message-too-large; the writes around it land, and a watch sees each of them once', async () => {
    const watched = watchedAmqplib();
    const connection = await open(testTransport({ lib: watched.lib }), {}, opened);
    const key = 'twin/d1/m1/reported';
    await connection.setRetained(key, bytes('v1'));
    const seen = new Inbox<string | undefined>();
    await connection.watchRetained(key, (value) => seen.push(text(value)));
    expect(await seen.next()).toBe('v1');

    // In flight together: v2 may be queued before RabbitMQ refuses the next, then published again with the same
    // message id, which a watch does not report twice.
    const round = [
      connection.setRetained(key, bytes('v2')),
      connection.setRetained(key, new Uint8Array(OVERSIZE)),
      connection.setRetained(key, bytes('v3')),
    ];
    const outcomes = await Promise.allSettled(round);
    expect(outcomes.map((o) => o.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    const error = (outcomes[1] as PromiseRejectedResult).reason as EdgeKitError;
    expect(isEdgeKitError(error, 'message-too-large')).toBe(true);
    expect(error.details).toEqual({ size: OVERSIZE, limit: MAX_MESSAGE_SIZE });
    expect(error.message).toMatch(/^the message for retained key twin\/d1\/m1\/reported is 614400 bytes/);

    expect(text(await connection.getRetained(key))).toBe('v3');
    await until(() => seen.items.includes('v3'), 5_000, 'the watch to see v3');
    expect(seen.items).toEqual(['v1', 'v2', 'v3']);
    expect(await settledYet(connection.closed)).toBe(false);
    expect(watched.channelErrors).toEqual([406]);
  });
});
