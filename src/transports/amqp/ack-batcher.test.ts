import type { Channel, Message } from 'amqplib';
import { describe, expect, it } from 'vitest';
import { AckBatcher } from './ack-batcher.js';

type Frame = { kind: 'ack' | 'nack'; tag: number; multiple: boolean };

/** A channel that records the ack/nack frames it would send. */
function recordingChannel(): { channel: Channel; frames: Frame[] } {
  const frames: Frame[] = [];
  const channel = {
    ack: (message: Message, multiple = false) => {
      frames.push({ kind: 'ack', tag: message.fields.deliveryTag, multiple });
    },
    nack: (message: Message, multiple = false) => {
      frames.push({ kind: 'nack', tag: message.fields.deliveryTag, multiple });
    },
  } as unknown as Channel;
  return { channel, frames };
}

const message = (deliveryTag: number) => ({ fields: { deliveryTag } }) as unknown as Message;
const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

describe('AckBatcher', () => {
  it('sends the acks of one turn, given in delivery order, as one multiple ack of the newest', async () => {
    const { channel, frames } = recordingChannel();
    const acks = new AckBatcher(channel, () => true);
    for (const tag of [1, 2, 3]) acks.ack(message(tag));
    expect(frames).toEqual([]);
    await turn();
    expect(frames).toEqual([{ kind: 'ack', tag: 3, multiple: true }]);
    acks.ack(message(4));
    await turn();
    expect(frames.at(-1)).toEqual({ kind: 'ack', tag: 4, multiple: true });
  });

  it('sends at once, alone, an ack that overtakes an unsettled earlier delivery', async () => {
    const { channel, frames } = recordingChannel();
    const acks = new AckBatcher(channel, () => true);
    acks.ack(message(2));
    acks.ack(message(3));
    expect(frames).toEqual([
      { kind: 'ack', tag: 2, multiple: false },
      { kind: 'ack', tag: 3, multiple: false },
    ]);
    // Tag 1 settles last: only it is still unacknowledged, and everything before it is settled.
    acks.ack(message(1));
    await turn();
    expect(frames.at(-1)).toEqual({ kind: 'ack', tag: 1, multiple: true });
    // From here on, in order again: batched.
    acks.ack(message(4));
    acks.ack(message(5));
    await turn();
    expect(frames.slice(3)).toEqual([{ kind: 'ack', tag: 5, multiple: true }]);
  });

  it('never covers a delivery still in its handler', async () => {
    const { channel, frames } = recordingChannel();
    const acks = new AckBatcher(channel, () => true);
    acks.ack(message(1));
    // 2 is still running; 3 and 4 finish.
    acks.ack(message(3));
    acks.ack(message(4));
    await turn();
    for (const frame of frames) {
      if (frame.multiple) expect(frame.tag).toBeLessThan(2);
      expect(frame.tag).not.toBe(2);
    }
  });

  it('counts a requeued delivery as settled and sends the nack at once', async () => {
    const { channel, frames } = recordingChannel();
    const acks = new AckBatcher(channel, () => true);
    acks.ack(message(1));
    acks.requeue(message(2));
    acks.ack(message(3));
    await turn();
    expect(frames).toEqual([
      { kind: 'nack', tag: 2, multiple: false },
      { kind: 'ack', tag: 3, multiple: true },
    ]);
  });

  it('flush() sends the due batch now (before a channel closes)', () => {
    const { channel, frames } = recordingChannel();
    const acks = new AckBatcher(channel, () => true);
    acks.ack(message(1));
    acks.ack(message(2));
    acks.flush();
    expect(frames).toEqual([{ kind: 'ack', tag: 2, multiple: true }]);
    acks.flush();
    expect(frames).toHaveLength(1);
  });

  it('sends nothing once the connection has ended, and survives a closed channel', async () => {
    let live = true;
    const { channel, frames } = recordingChannel();
    const acks = new AckBatcher(channel, () => live);
    acks.ack(message(1));
    live = false;
    await turn();
    acks.ack(message(3));
    expect(frames).toEqual([]);

    const closed = {
      ack: () => {
        throw new Error('Channel closed');
      },
    } as unknown as Channel;
    const onClosed = new AckBatcher(closed, () => true);
    expect(() => onClosed.ack(message(2))).not.toThrow();
    onClosed.ack(message(1));
    expect(() => onClosed.flush()).not.toThrow();
  });
});
