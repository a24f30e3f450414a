/**
 * Batched acknowledgements for one consumer channel. The acks given during one turn of the event loop leave as a
 * single `basic.ack` with `multiple` set, naming the newest of them — which RabbitMQ reads as "every delivery up to
 * this one". That is only right when every earlier delivery on the channel is already settled, so an ack that
 * overtakes an unsettled earlier delivery (handlers finishing out of order) goes out alone, at once. The batch is
 * sent before the turn ends, and before the channel is closed, so no ack is ever held back.
 */
import type { Channel, Message } from 'amqplib';

export class AckBatcher {
  /** Every delivery tag up to this one is settled (acked, batched, or given back). Tags start at 1 per channel. */
  private floor = 0;
  /** Settled tags above `floor + 1`, already sent on their own. */
  private readonly ahead = new Set<number>();
  /** The newest delivery whose ack is due and not sent yet: everything up to it is settled. */
  private due: Message | undefined;
  private scheduled = false;

  constructor(
    private readonly channel: Channel,
    /** False once the connection ended: the broker requeues unacked messages itself, nothing to send. */
    private readonly live: () => boolean,
  ) {}

  /** Acknowledges `message`: batched when every earlier delivery is settled, otherwise sent now. */
  ack(message: Message): void {
    const tag = message.fields.deliveryTag;
    if (tag !== this.floor + 1) {
      this.ahead.add(tag);
      this.send(() => this.channel.ack(message, false));
      return;
    }
    this.advance(tag);
    this.due = message;
    if (!this.scheduled) {
      this.scheduled = true;
      process.nextTick(this.flush);
    }
  }

  /** Gives `message` back to the queue now (nack with requeue); counts as settled. */
  requeue(message: Message): void {
    const tag = message.fields.deliveryTag;
    if (tag === this.floor + 1) this.advance(tag);
    else this.ahead.add(tag);
    this.send(() => this.channel.nack(message, false, true));
  }

  /** Sends the due batch now; called at the end of each turn and before the channel closes. */
  readonly flush = (): void => {
    this.scheduled = false;
    const due = this.due;
    if (due === undefined) return;
    this.due = undefined;
    this.send(() => this.channel.ack(due, true));
  };

  private advance(tag: number): void {
    this.floor = tag;
    while (this.ahead.delete(this.floor + 1)) this.floor++;
  }

  private send(frame: () => void): void {
    if (!this.live()) return;
    try {
      frame();
    } catch {
      // The channel closed under us: its unacked messages go back to the queue, as after a lost connection.
    }
  }
}
