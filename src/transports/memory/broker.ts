/**
 * An in-process broker with the semantics the real ones give edgekit: durable queues with per-message TTL and
 * at-least-once delivery (unacked messages return on disconnect), retained values, request/reply, last wills, and
 * simulated connection loss. It moves bytes only; the core does everything else, exactly as over MQTT or AMQP.
 */

import type { Principal } from '../../access.js';
import { type Clock, sleep, systemClock } from '../../clock.js';
import { EdgeKitError, messageOf, servedRequestFailed } from '../../errors.js';
import { checkAddressPattern, checkIdentity, matchesAddressPattern } from '../../names.js';
import type {
  ConsumeOptions,
  Delivery,
  ObserveHandler,
  PublishOptions,
  RequestHandler,
  RequestOptions,
  Subscription,
  Transport,
  TransportCloseOptions,
  TransportConnection,
  TransportConnectOptions,
} from '../../transport.js';
import { closeTimeout } from '../kit.js';

interface Stored {
  /** Publish order within the broker: messages given back return to their place in it. */
  readonly seq: number;
  readonly bytes: Uint8Array;
  readonly expiresAt: number;
  readonly priority: number;
  /** The identity of the connection that published it. */
  readonly publisher: string | undefined;
  redelivered: boolean;
}

interface Consumer {
  readonly conn: MemoryConnection;
  readonly prefetch: number;
  readonly onDelivery: (d: Delivery) => void;
  readonly unacked: Set<Stored>;
  active: boolean;
}

/** FIFO with O(1) take from the front (Array#shift is O(n) on long arrays), priority insert, and put-back. */
class Fifo {
  private items: Stored[] = [];
  private head = 0;
  get length(): number {
    return this.items.length - this.head;
  }
  push(item: Stored): void {
    this.items.push(item);
  }
  /** Inserts before the first item with a higher priority number (FIFO within a priority). */
  insertByPriority(item: Stored): void {
    let i = this.items.length;
    while (i > this.head && (this.items[i - 1] as Stored).priority > item.priority) i--;
    this.items.splice(i, 0, item);
  }
  take(): Stored | undefined {
    if (this.head >= this.items.length) return undefined;
    const item = this.items[this.head] as Stored;
    this.items[this.head] = undefined as unknown as Stored;
    this.head++;
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return item;
  }
  /** Returns unacknowledged messages to the queue, each before the first waiting message published after it. */
  putBack(returned: Stored[]): void {
    const waiting = this.items.slice(this.head);
    const back = [...returned].sort((a, b) => a.seq - b.seq);
    const merged: Stored[] = [];
    let i = 0;
    for (const item of back) {
      while (i < waiting.length && (waiting[i] as Stored).seq < item.seq) merged.push(waiting[i++] as Stored);
      merged.push(item);
    }
    while (i < waiting.length) merged.push(waiting[i++] as Stored);
    this.items = merged;
    this.head = 0;
  }
}

class Queue {
  readonly messages = new Fifo();
  readonly consumers: Consumer[] = [];
  next = 0;
  scheduled = false;
}

/** What the broker saw, for the test hub's taps. */
export interface BrokerEvent {
  readonly kind: 'publish' | 'retain';
  readonly address: string;
  readonly bytes: Uint8Array | null;
  /** The identity of the connection that published or wrote it, when it gave one. */
  readonly publisher?: string;
}

/** How long a graceful close of a connection whose link is silent waits for an answer that never comes. */
const STALLED_CLOSE_TIMEOUT_MS = 5_000;

/** Options for {@link MemoryBroker}. */
export interface MemoryBrokerOptions {
  /** Time source for TTLs and request timeouts; default the system clock. */
  readonly clock?: Clock;
  /**
   * Enforces these principals' rights (the `principals` of `planAccess` or `issueIdentities`) as a broker configured
   * by `edgekit identities` would: a connection is the principal whose client id it uses (a module, a replica) or,
   * for other client ids, the operator whose identity it speaks for; anyone else is refused, and an operation a
   * principal may not do rejects with `not-authorized`. For unit tests and demos that should fail where a module
   * oversteps its deployment, as it would on a production broker. Absent: everything is allowed.
   */
  readonly access?: readonly Principal[];
}

/**
 * The in-process broker behind the memory transport. One broker is one "network": modules connected through the
 * same broker see each other. Messages are kept for the broker's lifetime (or their TTL).
 *
 * @example
 * ```ts
 * const broker = new MemoryBroker();
 * const a = await connect(Sensor, { deviceId: 'd', moduleId: 'sensor', transport: memory({ broker }) });
 * ```
 */
export class MemoryBroker {
  readonly clock: Clock;
  private readonly queues = new Map<string, Queue>();
  private readonly retained = new Map<string, Uint8Array>();
  private readonly watchers = new Map<string, Set<(v: Uint8Array | undefined) => void>>();
  private readonly servers = new Map<string, Array<{ conn: MemoryConnection; handler: RequestHandler }>>();
  private readonly connections = new Map<string, MemoryConnection>();
  private readonly refused = new Set<string>();
  private readonly taps = new Set<(event: BrokerEvent) => void>();
  private seq = 0;

  private readonly access: readonly Principal[] | undefined;

  constructor(options: MemoryBrokerOptions = {}) {
    this.clock = options.clock ?? systemClock;
    this.access = options.access;
  }

  /** A transport whose connections go through this broker. */
  transport(): Transport {
    return {
      name: 'memory',
      capabilities: { keepsMessagesBeforeFirstConsumer: true, sharedConsumers: true, listsRetained: true },
      connect: (options) => this.connect(options),
    };
  }

  private async connect(options: TransportConnectOptions): Promise<TransportConnection> {
    if (typeof options?.clientId !== 'string' || options.clientId.length === 0) {
      throw new TypeError('memory transport: clientId must be a non-empty string');
    }
    if (options.abortSignal?.aborted) throw new EdgeKitError('aborted', 'connect aborted');
    await Promise.resolve();
    if (this.refused.has(options.clientId)) {
      throw new EdgeKitError('connection-failed', `memory broker refuses ${options.clientId} (taken offline)`);
    }
    // Session takeover, as MQTT: a new connection with the same id ends the old one (without its will).
    this.connections
      .get(options.clientId)
      ?.end(new EdgeKitError('connection-lost', 'taken over by a new connection'), false);
    const identity = options.identity === undefined ? undefined : checkIdentity(options.identity);
    const principal = this.authorize(options.clientId, identity, options.will?.key);
    const conn = new MemoryConnection(this, options.clientId, options.will, identity, principal);
    this.connections.set(options.clientId, conn);
    return conn;
  }

  /** The principal a connection is (see {@link MemoryBrokerOptions.access}); refuses one that is none. */
  private authorize(
    clientId: string,
    identity: string | undefined,
    willKey: string | undefined,
  ): Principal | undefined {
    if (this.access === undefined) return undefined;
    const principal =
      this.access.find((p) => p.clientId === clientId) ??
      this.access.find((p) => p.clientId === undefined && identity !== undefined && p.identity === identity);
    const refuse = (why: string) =>
      new EdgeKitError('connection-failed', `memory broker refuses ${clientId}: ${why}`, {
        details: { reason: 'not-authorized' },
      });
    if (principal === undefined) throw refuse('no principal of the access plan connects with this client id');
    if (identity !== undefined && identity !== principal.identity) {
      throw refuse(`it speaks for ${identity}, but the principal is ${principal.identity}`);
    }
    if (willKey !== undefined && !allows(principal, 'writeRetained', willKey)) {
      throw refuse(`its last will writes ${willKey}, which it may not write`);
    }
    return principal;
  }

  /**
   * Ends the connection(s) whose client id equals `clientId` or starts with `clientId/` abruptly, as a crash or a
   * network cut would: the last will fires and unacked deliveries return to their queues. With `refuse`, new
   * connections from that client are refused until {@link restore}.
   */
  disconnect(clientId: string, options: { refuse?: boolean } = {}): number {
    if (options.refuse) this.refused.add(clientId);
    let count = 0;
    for (const [id, conn] of [...this.connections]) {
      if (id === clientId || id.startsWith(`${clientId}/`)) {
        conn.end(new EdgeKitError('connection-lost', 'connection lost (simulated by the memory broker)'), true);
        count++;
      }
    }
    return count;
  }

  /**
   * Makes the link of the connection(s) whose client id equals `clientId` or starts with `clientId/` go silent, as a
   * black-holing network does: nothing is delivered to them and nothing they do reaches the broker (their operations
   * stay pending), yet nothing is closed. It lasts until the connection ends (see {@link disconnect}); a graceful
   * close in the meantime gets no answer, so the last will fires. Returns how many connections were stalled.
   */
  stall(clientId: string): number {
    let count = 0;
    for (const [id, conn] of this.connections) {
      if (id === clientId || id.startsWith(`${clientId}/`)) {
        conn.stall();
        count++;
      }
    }
    return count;
  }

  /** Accepts connections from `clientId` again after `disconnect(…, { refuse: true })`. */
  restore(clientId: string): void {
    this.refused.delete(clientId);
  }

  /** Client ids currently connected. */
  connectedClients(): string[] {
    return [...this.connections.keys()];
  }

  /** Observes every publish and retained write (test hub taps). Returns a function that stops observing. */
  tap(listener: (event: BrokerEvent) => void): () => void {
    this.taps.add(listener);
    return () => this.taps.delete(listener);
  }

  /** Number of messages waiting in a queue (not counting unacked ones). */
  queued(address: string): number {
    return this.queues.get(address)?.messages.length ?? 0;
  }

  // ------------------------------------------------------------ used by MemoryConnection

  /** @internal */
  forget(conn: MemoryConnection): void {
    if (this.connections.get(conn.clientId) === conn) this.connections.delete(conn.clientId);
  }

  private queue(address: string): Queue {
    let q = this.queues.get(address);
    if (!q) {
      q = new Queue();
      this.queues.set(address, q);
    }
    return q;
  }

  /** @internal */
  publish(
    address: string,
    bytes: Uint8Array,
    options: PublishOptions | undefined,
    publisher: string | undefined = undefined,
  ): void {
    const copy = Buffer.from(bytes);
    const ttl = options?.ttlInMs;
    const q = this.queue(address);
    const stored: Stored = {
      seq: this.seq++,
      bytes: copy,
      expiresAt: ttl === undefined ? Number.POSITIVE_INFINITY : this.clock.now() + ttl,
      priority: options?.priority ?? 10,
      publisher,
      redelivered: false,
    };
    if (stored.priority < 10 && q.messages.length > 0) q.messages.insertByPriority(stored);
    else q.messages.push(stored);
    if (this.taps.size > 0) {
      this.notifyTaps({ kind: 'publish', address, bytes: copy, ...(publisher === undefined ? {} : { publisher }) });
    }
    this.schedule(q);
  }

  /** A tap that throws must not break the publisher: its error is reported, the publish goes on. */
  private notifyTaps(event: BrokerEvent): void {
    for (const tap of this.taps) {
      try {
        tap(event);
      } catch (error) {
        queueMicrotask(() => {
          throw error;
        });
      }
    }
  }

  /** @internal */
  addConsumer(address: string, consumer: Consumer): Subscription {
    const q = this.queue(address);
    q.consumers.push(consumer);
    this.schedule(q);
    return {
      close: async () => {
        consumer.active = false;
        const i = q.consumers.indexOf(consumer);
        if (i >= 0) q.consumers.splice(i, 1);
      },
    };
  }

  /** @internal Puts a consumer's unacked messages back at the front of the queue, in order. */
  requeue(address: string, consumer: Consumer): void {
    const q = this.queue(address);
    const back = [...consumer.unacked];
    consumer.unacked.clear();
    for (const m of back) m.redelivered = true;
    q.messages.putBack(back);
    const i = q.consumers.indexOf(consumer);
    if (i >= 0) q.consumers.splice(i, 1);
    this.schedule(q);
  }

  /** @internal */
  ack(address: string, consumer: Consumer, stored: Stored): void {
    if (!consumer.unacked.delete(stored)) return;
    if (!consumer.active && consumer.unacked.size === 0) consumer.conn.forgetConsumer(consumer);
    const q = this.queues.get(address);
    if (q) this.schedule(q);
  }

  /** @internal Puts one unacked message back at the front of its queue, marked redelivered. */
  release(address: string, consumer: Consumer, stored: Stored): void {
    if (!consumer.unacked.delete(stored)) return;
    if (!consumer.active && consumer.unacked.size === 0) consumer.conn.forgetConsumer(consumer);
    stored.redelivered = true;
    const q = this.queue(address);
    q.messages.putBack([stored]);
    this.schedule(q);
  }

  private schedule(q: Queue): void {
    if (q.scheduled || q.messages.length === 0 || q.consumers.length === 0) return;
    q.scheduled = true;
    queueMicrotask(() => this.dispatch(q));
  }

  private dispatch(q: Queue): void {
    q.scheduled = false;
    const now = this.clock.now();
    let idle = 0;
    while (q.messages.length > 0 && q.consumers.length > 0 && idle < q.consumers.length) {
      const consumer = q.consumers[q.next % q.consumers.length] as Consumer;
      q.next = (q.next + 1) % Math.max(1, q.consumers.length);
      if (!consumer.active || consumer.conn.isStalled || consumer.unacked.size >= consumer.prefetch) {
        idle++;
        continue;
      }
      idle = 0;
      const stored = q.messages.take() as Stored;
      if (stored.expiresAt <= now) continue;
      consumer.unacked.add(stored);
      const address = consumer.conn.addressOf(consumer);
      let settled = false;
      consumer.onDelivery({
        bytes: stored.bytes,
        redelivered: stored.redelivered,
        ...(stored.publisher === undefined ? {} : { publisher: stored.publisher }),
        ack: () => {
          if (settled) return;
          settled = true;
          this.ack(address, consumer, stored);
        },
        release: () => {
          if (settled) return;
          settled = true;
          this.release(address, consumer, stored);
        },
      });
    }
  }

  /** @internal */
  setRetained(key: string, value: Uint8Array | null): void {
    if (value === null || value.length === 0) this.retained.delete(key);
    else this.retained.set(key, new Uint8Array(value));
    if (this.taps.size > 0) this.notifyTaps({ kind: 'retain', address: key, bytes: value });
    const watchers = this.watchers.get(key);
    if (!watchers) return;
    const current = this.retained.get(key);
    for (const w of watchers) queueMicrotask(() => w(current));
  }

  /** @internal */
  getRetained(key: string): Uint8Array | undefined {
    return this.retained.get(key);
  }

  /** @internal Copies of the retained values whose keys match. */
  listRetained(segments: readonly string[]): Map<string, Uint8Array> {
    const found = new Map<string, Uint8Array>();
    for (const [key, value] of this.retained) {
      if (matchesAddressPattern(segments, key)) found.set(key, new Uint8Array(value));
    }
    return found;
  }

  /** @internal */
  watch(key: string, onValue: (v: Uint8Array | undefined) => void): () => void {
    let set = this.watchers.get(key);
    if (!set) {
      set = new Set();
      this.watchers.set(key, set);
    }
    set.add(onValue);
    onValue(this.retained.get(key));
    return () => set.delete(onValue);
  }

  /** @internal */
  serve(address: string, conn: MemoryConnection, handler: RequestHandler): () => void {
    const list = this.servers.get(address) ?? [];
    const entry = { conn, handler };
    list.push(entry);
    this.servers.set(address, list);
    return () => {
      const i = list.indexOf(entry);
      if (i >= 0) list.splice(i, 1);
    };
  }

  /** @internal */
  async request(
    address: string,
    bytes: Uint8Array,
    options: RequestOptions,
    publisher: string | undefined = undefined,
  ): Promise<Uint8Array> {
    const list = this.servers.get(address);
    const server = list?.[Math.floor(Math.random() * list.length)];
    if (!server) throw new EdgeKitError('not-found', `nobody serves ${address}`);
    const copy = new Uint8Array(bytes);
    return new Promise<Uint8Array>((resolve, reject) => {
      let done = false;
      const finish = (action: () => void) => {
        if (done) return;
        done = true;
        timer.cancel();
        options.abortSignal?.removeEventListener('abort', onAbort);
        action();
      };
      const timer = this.clock.setTimer(
        () =>
          finish(() =>
            reject(new EdgeKitError('timeout', `no reply from ${address} within ${options.timeoutInMs} ms`)),
          ),
        options.timeoutInMs,
      );
      const onAbort = () => finish(() => reject(new EdgeKitError('aborted', 'request aborted')));
      options.abortSignal?.addEventListener('abort', onAbort, { once: true });
      queueMicrotask(() => {
        // A server behind a silent link never hears of the request: the caller times out.
        if (server.conn.isStalled) return;
        server.handler(copy, publisher === undefined ? {} : { publisher }).then(
          (reply) => {
            if (server.conn.isOpen) finish(() => resolve(new Uint8Array(reply)));
          },
          (error: unknown) => {
            if (server.conn.isOpen) {
              finish(() => reject(servedRequestFailed(address, messageOf(error), error)));
            }
          },
        );
      });
    });
  }
}

/** @internal One connection to a {@link MemoryBroker}. */
export class MemoryConnection implements TransportConnection {
  readonly closed: Promise<Error | undefined>;
  private resolveClosed!: (e: Error | undefined) => void;
  private open = true;
  /** Pending while the link is silent; rejects when the connection ends. */
  private silence: Promise<never> | undefined;
  private endSilence: ((cause: Error) => void) | undefined;
  private readonly consumers = new Map<Consumer, string>();
  private readonly cleanups = new Set<() => void>();

  constructor(
    private readonly broker: MemoryBroker,
    readonly clientId: string,
    private readonly will: TransportConnectOptions['will'],
    /** What it publishes under: in one process the identity needs no proof. */
    private readonly identity: string | undefined,
    /** Its rights, when the broker enforces an access plan. */
    private readonly principal: Principal | undefined,
  ) {
    this.closed = new Promise((resolve) => {
      this.resolveClosed = resolve;
    });
  }

  get isOpen(): boolean {
    return this.open;
  }

  /** @internal True while the link is silent (see {@link MemoryBroker.stall}). */
  get isStalled(): boolean {
    return this.silence !== undefined;
  }

  /** @internal See {@link MemoryBroker.stall}. */
  stall(): void {
    if (!this.open || this.silence !== undefined) return;
    this.silence = new Promise<never>((_, reject) => {
      this.endSilence = reject;
    });
    this.silence.catch(() => undefined);
  }

  addressOf(consumer: Consumer): string {
    return this.consumers.get(consumer) ?? '';
  }

  /** A closed consumer with nothing unacknowledged is forgotten (no growth per subscription). */
  forgetConsumer(consumer: Consumer): void {
    this.consumers.delete(consumer);
  }

  /** Refuses what the connection's principal may not do (see {@link MemoryBrokerOptions.access}). */
  private permit(right: Right, address: string): void {
    if (this.principal === undefined || allows(this.principal, right, address)) return;
    throw new EdgeKitError('not-authorized', `memory broker: ${this.principal.username} may not ${right} ${address}`, {
      details: { right, address, principal: this.principal.username },
    });
  }

  private check(): void {
    if (!this.open) throw new EdgeKitError('connection-lost', `connection ${this.clientId} is closed`);
  }

  async publish(address: string, bytes: Uint8Array, options?: PublishOptions): Promise<void> {
    this.check();
    this.permit('publish', address);
    if (this.silence !== undefined) await this.silence; // a silent link: pending until the connection ends
    if (!(bytes instanceof Uint8Array)) throw new TypeError('publish: bytes must be a Uint8Array');
    this.broker.publish(address, bytes, options, this.identity);
  }

  async consume(address: string, options: ConsumeOptions, onDelivery: (d: Delivery) => void): Promise<Subscription> {
    this.check();
    this.permit('consume', address);
    if (this.silence !== undefined) await this.silence; // a silent link: pending until the connection ends
    if (!Number.isInteger(options.prefetch) || options.prefetch < 1)
      throw new RangeError('consume: prefetch must be an integer ≥ 1');
    const consumer: Consumer = { conn: this, prefetch: options.prefetch, onDelivery, unacked: new Set(), active: true };
    this.consumers.set(consumer, address);
    const sub = this.broker.addConsumer(address, consumer);
    return {
      close: async () => {
        await sub.close();
        if (consumer.unacked.size === 0) this.forgetConsumer(consumer);
      },
    };
  }

  /** Memory queues keep messages from their first publish, consumed or not: only the checks. */
  async keep(address: string): Promise<void> {
    this.check();
    if (checkAddressPattern(address).includes('*'))
      throw new RangeError(`keep: ${address} is a pattern, not an address`);
    this.permit('consume', address);
  }

  async setRetained(key: string, value: Uint8Array | null): Promise<void> {
    this.check();
    this.permit('writeRetained', key);
    if (this.silence !== undefined) await this.silence; // a silent link: pending until the connection ends
    this.broker.setRetained(key, value);
  }

  async observe(pattern: string, onMessage: ObserveHandler): Promise<Subscription> {
    this.check();
    this.permit('observe', pattern);
    if (this.silence !== undefined) await this.silence; // a silent link: pending until the connection ends
    const segments = checkAddressPattern(pattern);
    if (typeof onMessage !== 'function') throw new TypeError('observe: onMessage must be a function');
    const stop = this.broker.tap((event) => {
      if (event.kind !== 'publish' || event.bytes === null || !this.open || this.isStalled) return;
      if (!matchesAddressPattern(segments, event.address)) return;
      try {
        onMessage(event.address, new Uint8Array(event.bytes), event.publisher);
      } catch {
        // an observer must not break the publisher
      }
    });
    this.cleanups.add(stop);
    return {
      close: async () => {
        stop();
        this.cleanups.delete(stop);
      },
    };
  }

  async listRetained(pattern: string): Promise<ReadonlyMap<string, Uint8Array>> {
    this.check();
    this.permit('observe', pattern);
    if (this.silence !== undefined) await this.silence; // a silent link: pending until the connection ends
    return this.broker.listRetained(checkAddressPattern(pattern));
  }

  async getRetained(key: string): Promise<Uint8Array | undefined> {
    this.check();
    this.permit('readRetained', key);
    if (this.silence !== undefined) await this.silence; // a silent link: pending until the connection ends
    const v = this.broker.getRetained(key);
    return v === undefined ? undefined : new Uint8Array(v);
  }

  async watchRetained(key: string, onValue: (value: Uint8Array | undefined) => void): Promise<Subscription> {
    this.check();
    this.permit('readRetained', key);
    if (this.silence !== undefined) await this.silence; // a silent link: pending until the connection ends
    const stop = this.broker.watch(key, (v) => {
      if (this.open && !this.isStalled) onValue(v === undefined ? undefined : new Uint8Array(v));
    });
    this.cleanups.add(stop);
    return {
      close: async () => {
        stop();
        this.cleanups.delete(stop);
      },
    };
  }

  async request(address: string, bytes: Uint8Array, options: RequestOptions): Promise<Uint8Array> {
    this.check();
    this.permit('request', address);
    if (this.silence !== undefined) await this.silence; // a silent link: pending until the connection ends
    return this.broker.request(address, bytes, options, this.identity);
  }

  async serve(address: string, handler: RequestHandler): Promise<Subscription> {
    this.check();
    this.permit('serve', address);
    if (this.silence !== undefined) await this.silence; // a silent link: pending until the connection ends
    const stop = this.broker.serve(address, this, handler);
    this.cleanups.add(stop);
    return {
      close: async () => {
        stop();
        this.cleanups.delete(stop);
      },
    };
  }

  /**
   * Closes at once: nothing to wait for in one process — unless the link is silent: then no goodbye reaches the
   * broker, so after the close timeout the connection is dropped and its last will fires, as on a real broker.
   */
  async close(options?: TransportCloseOptions): Promise<void> {
    const timeout = closeTimeout(options, STALLED_CLOSE_TIMEOUT_MS);
    if (this.isStalled && this.open) {
      await sleep(this.broker.clock, timeout);
      this.end(undefined, true);
      return;
    }
    this.end(undefined, false);
  }

  /** @internal Ends the connection; `fireWill` for abrupt ends. */
  end(cause: Error | undefined, fireWill: boolean): void {
    if (!this.open) return;
    this.open = false;
    this.endSilence?.(cause ?? new EdgeKitError('closed', `connection ${this.clientId} is closed`));
    for (const stop of this.cleanups) stop();
    this.cleanups.clear();
    for (const [consumer, address] of this.consumers) {
      consumer.active = false;
      this.broker.requeue(address, consumer);
    }
    this.consumers.clear();
    this.broker.forget(this);
    if (fireWill && this.will) this.broker.setRetained(this.will.key, this.will.value);
    this.resolveClosed(cause);
  }
}

/** What a principal may do with an address; `observe` stands for observing and listing (operators only). */
type Right = 'publish' | 'consume' | 'serve' | 'request' | 'readRetained' | 'writeRetained' | 'observe';

function allows(principal: Principal, right: Right, address: string): boolean {
  if (principal.all) return true;
  if (right === 'observe') return false;
  // What a principal may write it may also read back (its reported properties, its presence).
  const patterns =
    right === 'readRetained' ? [...principal.readRetained, ...principal.writeRetained] : principal[right];
  return patterns.some((pattern) => matchesAddressPattern(pattern.split('/'), address));
}
