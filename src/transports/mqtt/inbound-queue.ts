/**
 * The local side of one consumed topic: QoS 1 messages the broker handed to this connection, waiting for (or held
 * by) consumers. The PUBACK of a message is sent only when the core acks its delivery, so whatever is still here when
 * the connection dies is redelivered by the broker on the next connection with the same client id.
 */
import type { Delivery } from '../../transport.js';

/** One QoS 1 message held unacknowledged. */
export interface InboundMessage {
  readonly bytes: Uint8Array;
  readonly redelivered: boolean;
  /** The identity it was published under, read from its topic (see `suffixOf`); undefined: none. */
  readonly publisher: string | undefined;
  /** Sends the PUBACK (a no-op once the connection that received the message is gone). */
  readonly puback: () => void;
  /** Epoch ms after which the message is dropped (acked, never handed out) instead of delivered. */
  readonly expiresAt?: number;
}

/** A consumer registered on an {@link InboundQueue}. */
export interface QueueConsumer {
  readonly prefetch: number;
  readonly onDelivery: (delivery: Delivery) => void;
  unacked: number;
  active: boolean;
}

/** Messages of one topic and the consumers that take them, in order, each with at most `prefetch` unacked. */
export class InboundQueue {
  private readonly waiting: InboundMessage[] = [];
  private readonly consumers: QueueConsumer[] = [];
  private nextConsumer = 0;
  private dispatchScheduled = false;
  private stopped = false;

  /** Messages not yet handed to a consumer. */
  get size(): number {
    return this.waiting.length;
  }

  push(message: InboundMessage): void {
    if (this.stopped) return;
    this.waiting.push(message);
    this.dispatch();
  }

  /** Adds a consumer; it receives nothing until {@link activate} (after the broker confirmed the subscription). */
  addConsumer(prefetch: number, onDelivery: (delivery: Delivery) => void): QueueConsumer {
    const consumer: QueueConsumer = { prefetch, onDelivery, unacked: 0, active: false };
    this.consumers.push(consumer);
    return consumer;
  }

  activate(consumer: QueueConsumer): void {
    consumer.active = true;
    this.dispatch();
  }

  /** Stops deliveries to `consumer`; deliveries it holds can still be acked. */
  removeConsumer(consumer: QueueConsumer): void {
    consumer.active = false;
    const index = this.consumers.indexOf(consumer);
    if (index >= 0) this.consumers.splice(index, 1);
    if (this.nextConsumer >= this.consumers.length) this.nextConsumer = 0;
  }

  /** Drops everything: the connection is gone and the broker will redeliver. */
  stop(): void {
    this.stopped = true;
    this.waiting.length = 0;
    for (const consumer of this.consumers) consumer.active = false;
    this.consumers.length = 0;
  }

  private scheduleDispatch(): void {
    if (this.dispatchScheduled) return;
    this.dispatchScheduled = true;
    queueMicrotask(() => {
      this.dispatchScheduled = false;
      this.dispatch();
    });
  }

  /** Hands waiting messages, oldest first, to consumers with room, round robin. */
  private dispatch(): void {
    while (this.waiting.length > 0 && !this.stopped) {
      const consumer = this.pickConsumer();
      if (consumer === undefined) return;
      const message = this.waiting.shift()!;
      if (message.expiresAt !== undefined && Date.now() >= message.expiresAt) {
        message.puback(); // expired while it waited: done with, never delivered
        continue;
      }
      consumer.unacked += 1;
      let acked = false;
      const delivery: Delivery = {
        bytes: message.bytes,
        redelivered: message.redelivered,
        publisher: message.publisher,
        ack: () => {
          if (acked) return;
          acked = true;
          consumer.unacked -= 1;
          message.puback();
          // Not synchronously: the core may ack from inside onDelivery, and deep recursion helps nobody.
          this.scheduleDispatch();
        },
        // Back to the front of this queue, for this or another consumer of the topic on this connection; the broker
        // still has it unacknowledged, so it is redelivered by the session if the connection ends first.
        release: () => {
          if (acked || this.stopped) return;
          acked = true;
          consumer.unacked -= 1;
          this.waiting.unshift({ ...message, redelivered: true });
          this.scheduleDispatch();
        },
      };
      try {
        consumer.onDelivery(delivery);
      } catch (error) {
        // onDelivery belongs to the core and must not throw; surface the bug instead of wedging the mqtt.js reader.
        queueMicrotask(() => {
          throw error;
        });
      }
    }
  }

  private pickConsumer(): QueueConsumer | undefined {
    const count = this.consumers.length;
    for (let i = 0; i < count; i++) {
      const index = (this.nextConsumer + i) % count;
      const consumer = this.consumers[index]!;
      if (consumer.active && consumer.unacked < consumer.prefetch) {
        this.nextConsumer = (index + 1) % count;
        return consumer;
      }
    }
    return undefined;
  }
}
