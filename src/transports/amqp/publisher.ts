/**
 * Publishing with confirms on a channel that outlives RabbitMQ's refusal of one publish. RabbitMQ answers a publish it
 * will not take — over its `max_message_size`, or one the user may not make — by closing the channel, which fails
 * every publish awaiting its confirm, although some of them may already be queued. Instead of giving the connection
 * up, the publisher rejects the publish that caused it, opens a new confirm channel and publishes the others again
 * there, in their order: at-least-once, so one that was already queued arrives twice.
 */
import type { ConfirmChannel, Message, Options } from 'amqplib';
import { type PublishRefusal, publishRefusalOf, publishRefusedError } from './errors.js';

/**
 * What one transport knows about its broker's message size limit, shared by every connection it makes: RabbitMQ does
 * not announce its `max_message_size`, so once it refused a message for it, the limit it stated is kept here and
 * later publishes over it are refused before they are sent (the channel is closed at most once for that).
 */
export class BrokerLimits {
  /** The largest message body to send: the `maxMessageBytes` option, or the smaller limit RabbitMQ stated. */
  maxMessageBytes: number;
  /** Whether {@link maxMessageBytes} is the option's rather than RabbitMQ's word (for the error message). */
  configured: boolean;

  constructor(maxMessageBytes: number | undefined) {
    this.maxMessageBytes = maxMessageBytes ?? Number.POSITIVE_INFINITY;
    this.configured = maxMessageBytes !== undefined;
  }

  /** Keeps a limit RabbitMQ stated, if it is lower than the one known. */
  learn(limit: number): void {
    if (limit >= this.maxMessageBytes) return;
    this.maxMessageBytes = limit;
    this.configured = false;
  }
}

/** Called once per publish: with `null`/`undefined` when the broker confirmed it, otherwise with the error. */
export type ConfirmCallback = (error: unknown) => void;

/** A publish awaiting its confirm, with all it takes to publish it again on another channel. */
interface Outgoing {
  readonly exchange: string;
  readonly routingKey: string;
  readonly content: Buffer;
  /** Kept as given, so a republished message keeps its `messageId` (retained values, the will). */
  readonly properties: Options.Publish;
  /** What was published to, for error messages: an address, a retained key. */
  readonly target: string;
  readonly done: ConfirmCallback;
}

/** One confirm channel and what happened to it. */
interface Lane {
  readonly channel: ConfirmChannel;
  /** The channel's last error, if it reported one. */
  error: Error | undefined;
  /** Set when that error was RabbitMQ refusing one publish: the channel can be replaced. */
  refusal: PublishRefusal | undefined;
  /** Publishes the closing channel failed while {@link refusal} was set, in their order. */
  readonly stranded: Outgoing[];
}

/** What the publisher needs from its connection. */
export interface PublisherHost {
  /** Opens a new confirm channel on the connection. */
  openChannel(): Promise<ConfirmChannel>;
  /** The channel ended for another reason than a refusal, or no new one could be opened: the connection is over. */
  lose(cause: Error | undefined): void;
  /** A mandatory message the broker returned as unroutable (it comes before the message's confirm). */
  returned(message: Message): void;
}

/** The error publishes get when the publisher has ended: the connection's end explains it. */
function channelClosed(): Error {
  return new Error('channel closed');
}

/**
 * The confirm channel of one connection, replaced when RabbitMQ closes it to refuse a publish. While a replacement
 * opens, new publishes wait behind the ones to publish again, so everything goes out in the order it was given.
 */
export class ConfirmPublisher {
  /** The open channel; unset while a replacement opens and after the end. */
  private lane: Lane | undefined;
  /** Publishes waiting for the replacement channel, in order; set only while one opens. */
  private backlog: Outgoing[] | undefined;
  /** Settles (never rejects) once a replacement channel is in use, or the publisher ended. */
  private replacing: Promise<void> | undefined;
  private ended = false;

  constructor(
    channel: ConfirmChannel,
    private readonly limits: BrokerLimits,
    private readonly host: PublisherHost,
  ) {
    this.lane = this.attach(channel);
  }

  /**
   * Publishes `content`; `done` is called once, when the broker confirmed it or it failed. A body over the known limit
   * fails with `message-too-large` without being sent.
   */
  publish(
    exchange: string,
    routingKey: string,
    content: Buffer,
    properties: Options.Publish,
    target: string,
    done: ConfirmCallback,
  ): void {
    if (content.byteLength > this.limits.maxMessageBytes) {
      done(this.tooLarge(content.byteLength, target));
      return;
    }
    const lane = this.lane;
    if (lane !== undefined) this.send(lane, exchange, routingKey, content, properties, target, done);
    else if (this.backlog !== undefined) this.backlog.push({ exchange, routingKey, content, properties, target, done });
    else done(channelClosed());
  }

  /**
   * Resolves once every publish made so far is confirmed or failed, including those published again on a replacement
   * channel; never rejects.
   */
  async drain(): Promise<void> {
    for (;;) {
      if (this.replacing !== undefined) {
        await this.replacing;
        continue;
      }
      const lane = this.lane;
      if (lane === undefined) return;
      await lane.channel.waitForConfirms().catch(() => undefined);
      // A refusal meanwhile moved the unconfirmed ones to a new channel: wait for those too.
      if (this.lane === lane) return;
    }
  }

  private send(
    lane: Lane,
    exchange: string,
    routingKey: string,
    content: Buffer,
    properties: Options.Publish,
    target: string,
    done: ConfirmCallback,
  ): void {
    lane.channel.publish(exchange, routingKey, content, properties, (error: unknown) => {
      if (error === null || error === undefined || lane.refusal === undefined) done(error);
      // The channel is closing because RabbitMQ refused one publish: this one's outcome is unknown (it may be queued
      // already, or was dropped after the refused one). Decided, with the others, once the channel has closed.
      else lane.stranded.push({ exchange, routingKey, content, properties, target, done });
    });
  }

  private attach(channel: ConfirmChannel): Lane {
    const lane: Lane = { channel, error: undefined, refusal: undefined, stranded: [] };
    // amqplib emits 'error' (with the reply code) just before 'close', and on 'close' first fails every unconfirmed
    // publish (its own listener, added when the channel was made), then calls this one: by then `stranded` is whole.
    channel.on('error', (error: Error) => {
      lane.error = error;
      lane.refusal = publishRefusalOf(error);
    });
    channel.on('close', () => this.closed(lane));
    channel.on('return', (message: Message) => this.host.returned(message));
    return lane;
  }

  private closed(lane: Lane): void {
    if (this.lane !== lane) return;
    this.lane = undefined;
    const refusal = lane.refusal;
    if (refusal === undefined || this.ended) {
      this.end(lane.error, lane.stranded);
      return;
    }
    if (refusal.kind === 'too-large') this.limits.learn(refusal.limit);
    const again: Outgoing[] = [];
    let refused = 0;
    for (const outgoing of lane.stranded) {
      // Those after the refused one were dropped unseen, and RabbitMQ would refuse those alike again (and close this
      // channel again for each): they fail with the same error. Any other is published again.
      if (refusedAlike(refusal, outgoing)) {
        refused++;
        const own = refusal.kind === 'too-large' ? { ...refusal, size: outgoing.content.byteLength } : refusal;
        outgoing.done(publishRefusedError(own, outgoing.target, lane.error));
      } else again.push(outgoing);
    }
    if (refused === 0) {
      // RabbitMQ named a publish this channel was not waiting for: nothing tells which one it meant.
      this.end(lane.error, again);
      return;
    }
    this.backlog = again;
    this.replacing = this.host.openChannel().then(
      (channel) => {
        const next = this.attach(channel);
        const queued = this.backlog ?? [];
        this.backlog = undefined;
        this.replacing = undefined;
        this.lane = next;
        for (const o of queued) {
          try {
            this.send(next, o.exchange, o.routingKey, o.content, o.properties, o.target, o.done);
          } catch (error) {
            o.done(error);
          }
        }
      },
      (error: unknown) => {
        this.replacing = undefined;
        this.end(error instanceof Error ? error : lane.error, []);
      },
    );
  }

  /** No channel any more: the connection is lost (or closing), and every publish still held fails. */
  private end(cause: Error | undefined, held: readonly Outgoing[]): void {
    this.ended = true;
    const waiting = [...held, ...(this.backlog ?? [])];
    this.backlog = undefined;
    this.host.lose(cause);
    for (const outgoing of waiting) outgoing.done(channelClosed());
  }

  private tooLarge(size: number, target: string): Error {
    const limit = this.limits.maxMessageBytes;
    return publishRefusedError({ kind: 'too-large', size, limit }, target, undefined, this.limits.configured);
  }
}

/** Whether RabbitMQ refuses `outgoing` for the same reason as the publish it refused. */
function refusedAlike(refusal: PublishRefusal, outgoing: Outgoing): boolean {
  if (refusal.kind === 'too-large') return outgoing.content.byteLength > refusal.limit;
  return (
    outgoing.exchange === refusal.exchange &&
    (refusal.routingKey === undefined || outgoing.routingKey === refusal.routingKey)
  );
}
