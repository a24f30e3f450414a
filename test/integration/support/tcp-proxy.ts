/**
 * A loopback TCP proxy for fault tests: clients connect to the proxy instead of the broker, and the test breaks the
 * link the ways networks break: cut every connection abruptly (RST, no MQTT DISCONNECT / AMQP close reaches the
 * broker, as when a cable is pulled or a process is killed) and refuse new ones; stall (a black-holing NAT or
 * firewall: nothing is forwarded, nothing is closed); flap (every new connection is reset a random few milliseconds
 * after it opens); and fragment (every chunk is forwarded in pieces of a few bytes, so parsers see partial frames).
 */
import net from 'node:net';
import { listenOnLoopback } from './loopback.js';

/** How the proxy treats connections; {@link TcpProxy.heal} returns it to `forward`. */
export interface FlapOptions {
  /** Each accepted connection is reset this many milliseconds after it opened: a random whole number in the range. */
  readonly minMs: number;
  readonly maxMs: number;
}

export interface TcpProxy {
  readonly port: number;
  /** Connections accepted so far (refused ones not counted). */
  readonly accepted: number;
  /** Connections refused so far (while cut with `refuse`). */
  readonly refused: number;
  /** Connections reset by flapping so far. */
  readonly flapped: number;
  /** Destroys every proxied connection now with RST; with `refuse`, new connections are refused until {@link heal}. */
  cut(options?: { refuse?: boolean }): void;
  /**
   * Stops forwarding in both directions without closing anything (new connections are accepted and go silent too).
   * What was held is forwarded on {@link heal}, as TCP retransmits after a partition ends — unless the peer gave up
   * and closed first. With `afterChunksFromServer`, each connection stalls only after that many chunks came from the
   * server (e.g. 1: the handshake answer arrives, then silence).
   */
  stall(options?: { afterChunksFromServer?: number }): void;
  /** From now on every connection — the open ones too — is reset after a random delay (see {@link FlapOptions}) until {@link heal}. */
  flap(options: FlapOptions): void;
  /** Forwards every chunk in pieces of at most `maxBytes` (each its own write), until {@link heal}. */
  fragment(maxBytes: number): void;
  /** Back to plain forwarding: accepts connections, forwards what stalled connections held, stops flapping. */
  heal(): void;
  close(): Promise<void>;
}

type Mode =
  | { readonly kind: 'forward' }
  | { readonly kind: 'refuse' }
  | { readonly kind: 'stall'; readonly afterChunksFromServer: number }
  | { readonly kind: 'flap'; readonly minMs: number; readonly maxMs: number };

interface Pair {
  readonly client: net.Socket;
  readonly upstream: net.Socket;
  /** Chunks from the server so far. */
  fromServer: number;
  /** Chunks held while stalled, per direction, forwarded on heal. */
  readonly held: { readonly toServer: Buffer[]; readonly toClient: Buffer[] };
  flapTimer: NodeJS.Timeout | undefined;
}

export async function startTcpProxy(targetPort: number, targetHost = '127.0.0.1'): Promise<TcpProxy> {
  const pairs = new Set<Pair>();
  let mode: Mode = { kind: 'forward' };
  let fragmentBytes: number | undefined;
  let accepted = 0;
  let refused = 0;
  let flapped = 0;

  const stalled = (pair: Pair) =>
    mode.kind === 'stall' && pair.fromServer >= mode.afterChunksFromServer && !pair.client.destroyed;

  const write = (socket: net.Socket, chunk: Buffer) => {
    if (socket.destroyed) return;
    if (fragmentBytes === undefined) {
      socket.write(chunk);
      return;
    }
    for (let at = 0; at < chunk.length; at += fragmentBytes) socket.write(chunk.subarray(at, at + fragmentBytes));
  };

  const reset = (pair: Pair) => {
    clearTimeout(pair.flapTimer);
    pairs.delete(pair);
    // resetAndDestroy sends RST: the broker sees the connection die without a protocol-level goodbye.
    if (!pair.client.destroyed) pair.client.resetAndDestroy();
    if (!pair.upstream.destroyed) pair.upstream.resetAndDestroy();
  };

  const server = await listenOnLoopback((client, track) => {
    if (mode.kind === 'refuse') {
      refused += 1;
      client.resetAndDestroy();
      return;
    }
    accepted += 1;
    const upstream = net.connect({ port: targetPort, host: targetHost, noDelay: true });
    client.setNoDelay(true);
    track(client);
    track(upstream);
    const pair: Pair = { client, upstream, fromServer: 0, held: { toServer: [], toClient: [] }, flapTimer: undefined };
    pairs.add(pair);
    const end = () => {
      clearTimeout(pair.flapTimer);
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
    client.on('data', (chunk: Buffer) => {
      if (stalled(pair)) pair.held.toServer.push(chunk);
      else write(upstream, chunk);
    });
    upstream.on('data', (chunk: Buffer) => {
      if (stalled(pair)) {
        pair.held.toClient.push(chunk);
        return;
      }
      pair.fromServer += 1;
      write(client, chunk);
    });
    if (mode.kind === 'flap') scheduleFlap(pair, mode);
  });

  function scheduleFlap(pair: Pair, { minMs, maxMs }: FlapOptions): void {
    const delay = minMs + Math.floor(Math.random() * (maxMs - minMs + 1));
    pair.flapTimer = setTimeout(() => {
      flapped += 1;
      reset(pair);
    }, delay);
  }

  return {
    port: server.port,
    get accepted() {
      return accepted;
    },
    get refused() {
      return refused;
    },
    get flapped() {
      return flapped;
    },
    cut(options = {}) {
      mode = options.refuse ? { kind: 'refuse' } : { kind: 'forward' };
      for (const pair of [...pairs]) reset(pair);
    },
    stall(options = {}) {
      mode = { kind: 'stall', afterChunksFromServer: options.afterChunksFromServer ?? 0 };
    },
    flap(options) {
      if (!(options.minMs >= 0 && options.maxMs >= options.minMs)) throw new RangeError('flap: need 0 ≤ minMs ≤ maxMs');
      mode = { kind: 'flap', minMs: options.minMs, maxMs: options.maxMs };
      for (const pair of pairs) if (pair.flapTimer === undefined) scheduleFlap(pair, options);
    },
    fragment(maxBytes) {
      if (!(Number.isInteger(maxBytes) && maxBytes >= 1)) throw new RangeError('fragment: maxBytes must be ≥ 1');
      fragmentBytes = maxBytes;
    },
    heal() {
      mode = { kind: 'forward' };
      fragmentBytes = undefined;
      for (const pair of pairs) {
        clearTimeout(pair.flapTimer);
        for (const chunk of pair.held.toServer.splice(0)) write(pair.upstream, chunk);
        for (const chunk of pair.held.toClient.splice(0)) write(pair.client, chunk);
      }
    },
    close: () => {
      for (const pair of pairs) clearTimeout(pair.flapTimer);
      return server.close();
    },
  };
}
