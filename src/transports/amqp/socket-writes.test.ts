import { Writable } from 'node:stream';
import type { ChannelModel } from 'amqplib';
import { describe, expect, it } from 'vitest';
import { coalesceSocketWrites } from './socket-writes.js';

/** A stream standing in for amqplib's socket: records each system-call-sized batch it is asked to write. */
function recordingSocket(): { stream: Writable; batches: string[][] } {
  const batches: string[][] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      batches.push([chunk.toString()]);
      callback();
    },
    writev(chunks, callback) {
      batches.push(chunks.map(({ chunk }) => String(chunk)));
      callback();
    },
  });
  return { stream, batches };
}

const model = (stream: unknown) => ({ connection: { stream } }) as unknown as ChannelModel;
const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

describe('coalesceSocketWrites', () => {
  it('writes everything written in one turn as one batch, in order, before the next turn', async () => {
    const { stream, batches } = recordingSocket();
    expect(coalesceSocketWrites(model(stream))).toBe(true);
    stream.write('a');
    stream.write('b');
    stream.write('c');
    expect(batches).toEqual([]);
    await turn();
    expect(batches).toEqual([['a', 'b', 'c']]);
    stream.write('d');
    await turn();
    expect(batches).toEqual([['a', 'b', 'c'], ['d']]);
  });

  it('keeps write() callbacks and the return value', async () => {
    const { stream } = recordingSocket();
    coalesceSocketWrites(model(stream));
    const written = new Promise<void>((resolve) => stream.write('x', () => resolve()));
    expect(stream.write('y')).toBe(true);
    await written;
  });

  it('flushes what is corked when the stream ends', async () => {
    const { stream, batches } = recordingSocket();
    coalesceSocketWrites(model(stream));
    stream.write('last');
    await new Promise<void>((resolve) => stream.end(() => resolve()));
    expect(batches.flat()).toEqual(['last']);
  });

  it('leaves amqplib alone when its socket is not where it expects it', () => {
    expect(coalesceSocketWrites(model(undefined))).toBe(false);
    expect(coalesceSocketWrites({} as unknown as ChannelModel)).toBe(false);
  });
});
