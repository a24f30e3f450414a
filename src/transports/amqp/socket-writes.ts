/**
 * Write coalescing for amqplib's socket. amqplib hands every frame — each publish, ack and reply — to the socket on
 * its own, and with TCP_NODELAY (which a request/reply round trip needs) each one becomes a system call and usually a
 * TCP segment of its own. Corking the socket at the first write of a turn of the event loop and uncorking it when the
 * turn ends sends everything written in that turn with one `writev`: the same bytes in the same order, no later
 * (nothing waits for a timer), with a fraction of the system calls — for amqplib the largest single cost of a busy
 * connection, for RabbitMQ fewer, fuller packets to read.
 */
import { Writable } from 'node:stream';
import type { ChannelModel } from 'amqplib';

type WriteFn = (...args: unknown[]) => boolean;

/**
 * Makes the socket under `model` send the writes of one turn together. amqplib keeps its socket in the private
 * `connection.stream`; if a future amqplib no longer does, nothing changes but the number of system calls.
 * Returns whether the socket was found.
 */
export function coalesceSocketWrites(model: ChannelModel): boolean {
  const stream = socketOf(model);
  if (stream === undefined || typeof stream.cork !== 'function' || typeof stream.uncork !== 'function') {
    return false;
  }
  const socket = stream as Writable & { write: WriteFn };
  const write: WriteFn = socket.write.bind(socket) as WriteFn;
  let corked = false;
  const uncork = () => {
    corked = false;
    socket.uncork();
  };
  socket.write = (...args: unknown[]): boolean => {
    if (!corked && !socket.destroyed) {
      corked = true;
      socket.cork();
      // Runs once the current callback (amqplib writes its queued frames in one) and its microtasks are done.
      process.nextTick(uncork);
    }
    return write(...args);
  };
  return true;
}

/** The socket amqplib keeps in the private `connection.stream`, if this amqplib still does. */
export function socketOf(model: ChannelModel): Writable | undefined {
  const stream: unknown = (model as { connection?: { stream?: unknown } }).connection?.stream;
  return stream instanceof Writable ? stream : undefined;
}
