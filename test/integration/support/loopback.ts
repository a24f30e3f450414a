/**
 * Loopback networking for the integration tests: a free port for a broker, whether a port accepts connections, and
 * small TCP servers (silent servers, proxies) that close every socket they accepted when closed.
 */
import net from 'node:net';

/** A port that was free on 127.0.0.1 a moment ago (bind to 0, read it back, release it). */
export async function freePort(): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      if (address === null || typeof address === 'string') {
        server.close();
        reject(new Error('could not read a free port'));
        return;
      }
      server.close(() => resolve(address.port));
    });
  });
}

/** Whether something accepts TCP connections on 127.0.0.1:`port` now. */
export function accepts(port: number): Promise<boolean> {
  return new Promise<boolean>((resolve) => {
    const socket = net.connect({ port, host: '127.0.0.1' });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => {
      socket.destroy();
      resolve(false);
    });
  });
}

/** A TCP server on 127.0.0.1 whose {@link close} also destroys the sockets handed to `track`. */
export interface LoopbackServer {
  readonly port: number;
  close(): Promise<void>;
}

/**
 * Listens on a free loopback port. `onConnection` gets each accepted socket and `track`, which registers a socket
 * (the accepted one, an upstream connection) to be destroyed by `close()`.
 */
export async function listenOnLoopback(
  onConnection: (socket: net.Socket, track: (socket: net.Socket) => void) => void,
): Promise<LoopbackServer> {
  const sockets = new Set<net.Socket>();
  const track = (socket: net.Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  };
  const server = net.createServer((socket) => onConnection(socket, track));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('the server has no port');
  return {
    port: address.port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
