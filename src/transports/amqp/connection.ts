/**
 * One edgekit transport connection on amqplib: an AMQP connection with a confirm channel for publishing (replaced
 * when RabbitMQ refuses one publish, see publisher.ts), short-lived channels for declarations and retained reads, and
 * one channel per consumer, watch and server. Everything it sends goes to its identity's own exchange (topology.ts),
 * so the broker's permissions decide where it may go and receivers learn who sent it. Every amqplib error is
 * translated here; the core only ever sees `EdgeKitError`s.
 */
import { randomUUID } from 'node:crypto';
import type { Channel, ChannelModel, ConfirmChannel, ConsumeMessage, GetMessage, Message, Options } from 'amqplib';
import { abortError, EdgeKitError, isEdgeKitError, messageOf, servedRequestFailed } from '../../errors.js';
import { checkAddressPattern, checkIdentity, parseIdentity } from '../../names.js';
import { redactError } from '../../redact.js';
import type {
  ConsumeOptions,
  Delivery,
  ObserveHandler,
  PublishOptions,
  RequestHandler,
  RequestOptions,
  Subscription,
  TransportCloseOptions,
  TransportConnection,
  TransportConnectOptions,
} from '../../transport.js';
import { closeTimeout } from '../kit.js';
import { AckBatcher } from './ack-batcher.js';
import {
  AmqpReplyCode,
  publishRefusalOf,
  publishRefusedError,
  replyCodeOf,
  translateConnectError,
  translateOperationError,
} from './errors.js';
import type { AmqplibModule, ResolvedAmqpOptions } from './options.js';
import { type BrokerLimits, ConfirmPublisher } from './publisher.js';
import { coalesceSocketWrites, socketOf } from './socket-writes.js';
import {
  AMQP_MAX_PRIORITY,
  checkAddress,
  DELETED_HEADER,
  messageQueueArguments,
  OBSERVER_QUEUE_ARGUMENTS,
  PUBLISHER_HEADER,
  RETAINED_QUEUE_ARGUMENTS,
  type Topology,
  willQueueArguments,
} from './topology.js';

/**
 * RabbitMQ's pseudo-queue for direct reply-to, which earlier versions asked replies to go to. Replying to it means
 * publishing to the default exchange, whose write permission lets a user reach every queue by name, so edgekit's own
 * requests use {@link Topology.repliesExchange}; a server still answers an earlier version's request this way when
 * its user may.
 */
const DIRECT_REPLY_TO = 'amq.rabbitmq.reply-to';

/** Header of a reply whose handler failed: the reason. The caller's `request` rejects with `transport-error`. */
const REPLY_ERROR_HEADER = 'x-edgekit-error';
const EMPTY_REPLY = new Uint8Array(0);

/**
 * Waits between retained reads that found the key's queue empty: another reader holds its only message for the
 * moment of a non-destructive read (get, then requeue), or a writer declared it and is about to publish.
 */
const EMPTY_READ_RETRY_DELAYS_MS = [1, 2, 4, 8, 16, 32, 64, 128];

/** How long a graceful close may wait for the broker (outstanding confirms, channel closes, the will, the connection). */
const CLOSE_TIMEOUT_MS = 10_000;

/** How long connect waits for the broker to hand the freshly published will back to its holder. */
const WILL_HOLD_TIMEOUT_MS = 5_000;

const noop = () => undefined;

/** Properties of every message and retained value: kept on disk, and returned if it reaches no queue. */
const PERSISTENT_MANDATORY: Readonly<Options.Publish> = Object.freeze({ persistent: true, mandatory: true });

/** A `Uint8Array` over a Buffer's bytes, without copying (a Buffer is a Uint8Array subclass; some equality checks differ). */
function bytesOf(buffer: Buffer): Uint8Array {
  return new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
}

function bufferOf(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

function checkBytes(what: string, value: unknown): Uint8Array {
  if (!(value instanceof Uint8Array)) throw new TypeError(`${what} must be a Uint8Array`);
  return value;
}

function checkDuration(name: string, value: unknown): number {
  if (typeof value !== 'number') throw new TypeError(`${name} must be a number, got ${typeof value}`);
  if (!Number.isFinite(value) || value <= 0 || value > 2_147_483_647) {
    throw new RangeError(`${name} must be a positive number of milliseconds (at most 2147483647), got ${value}`);
  }
  return value;
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * The newest message of a last-value queue, read without consuming it: gets its message (and any a requeue race left
 * behind), then gives them all back. `undefined` when the queue is empty.
 */
export async function peekLatest(channel: Channel, queue: string): Promise<GetMessage | undefined> {
  const first = await channel.get(queue, { noAck: false });
  if (first === false) return undefined;
  let latest: GetMessage = first;
  while (latest.fields.messageCount > 0) {
    const next = await channel.get(queue, { noAck: false });
    if (next === false) break;
    latest = next;
  }
  channel.nack(latest, true, true);
  return latest;
}

/** A channel used for one-off operations; reopened on next use after the broker closed it (e.g. a 404). */
class ChannelSlot {
  private current: Promise<Channel> | undefined;
  /** The open channel, once there is one: lets hot paths skip a promise turn. */
  ready: Channel | undefined;

  constructor(private readonly open: () => Promise<Channel>) {}

  get(): Promise<Channel> {
    if (this.current === undefined) {
      const opening = this.open().then((channel) => {
        channel.on('error', noop);
        channel.on('close', () => {
          if (this.current === opening) this.current = undefined;
          if (this.ready === channel) this.ready = undefined;
        });
        this.ready = channel;
        return channel;
      });
      opening.catch(() => {
        if (this.current === opening) this.current = undefined;
      });
      this.current = opening;
    }
    return this.current;
  }
}

/**
 * A subscription owning one channel. Closing it cancels the consumer at once (no new deliveries); deliveries already
 * handed out may still be acknowledged, and the channel closes when the last of them is — those never acknowledged
 * go back to the queue when the connection ends.
 */
class ChannelSubscription implements Subscription {
  /** No more deliveries are handed out, and the channel's end is expected. */
  stopped = false;
  consumerTag: string | undefined;
  private outstanding = 0;
  private closing: Promise<void> | undefined;
  private channelClosing: Promise<void> | undefined;

  /** With `acks`, the batch of acknowledgements still due goes out before the channel closes. */
  constructor(
    readonly channel: Channel,
    private readonly acks?: AckBatcher,
  ) {}

  /**
   * Counts a message handed out; returns two functions that settle it — by acknowledging it, or by giving it back —
   * of which only the first call counts.
   */
  handOut(
    message: Message,
    acknowledge: (message: Message) => void,
    giveBack: (message: Message) => void = acknowledge,
  ): [settle: () => void, giveBack: () => void] {
    this.outstanding++;
    let done = false;
    const once = (how: (message: Message) => void) => () => {
      if (done) return;
      done = true;
      this.outstanding--;
      how(message);
      if (this.closing !== undefined && this.outstanding === 0) void this.closeChannel();
    };
    return [once(acknowledge), once(giveBack)];
  }

  /** Closes the channel once; resolves when the broker confirmed it (so every earlier ack on it is settled). */
  closeChannel(): Promise<void> {
    if (this.channelClosing === undefined) this.acks?.flush();
    this.channelClosing ??= this.channel.close().catch(noop);
    return this.channelClosing;
  }

  close(): Promise<void> {
    if (this.closing === undefined) {
      this.stopped = true;
      this.closing = (async () => {
        if (this.consumerTag !== undefined) await this.channel.cancel(this.consumerTag).catch(noop);
        if (this.outstanding === 0) await this.closeChannel();
      })();
    }
    return this.closing;
  }
}

interface PendingRequest {
  readonly address: string;
  resolve(bytes: Uint8Array): void;
  reject(error: Error): void;
}

interface RetainedRead {
  readonly id: string | undefined;
  readonly value: Uint8Array | undefined;
}

function decodeRetained(message: Message): RetainedRead {
  const id = typeof message.properties.messageId === 'string' ? message.properties.messageId : undefined;
  const deleted = message.properties.headers?.[DELETED_HEADER] === true;
  return { id, value: deleted ? undefined : bytesOf(message.content) };
}

type State = 'open' | 'closing' | 'closed' | 'lost';

/** What authorization.ts needs of a connection to declare an access plan through it. */
export interface AmqpInternals {
  readonly names: Topology;
  /** The connection's own exchange. */
  readonly from: string;
  readonly priorities: boolean;
  /** Runs `operation` on the connection's amqplib connection, translating its errors as every operation's. */
  run<T>(what: string, operation: (model: ChannelModel) => Promise<T>): Promise<T>;
}

const internals = new WeakMap<object, AmqpInternals>();

/** The internals of a connection made by this transport, or `undefined` for any other value. */
export function amqpInternalsOf(connection: unknown): AmqpInternals | undefined {
  return typeof connection === 'object' && connection !== null ? internals.get(connection) : undefined;
}

/** The {@link TransportConnection} on one AMQP connection. */
export class AmqpConnection implements TransportConnection {
  readonly closed: Promise<Error | undefined>;

  private state: State = 'open';
  private lostError: EdgeKitError | undefined;
  private resolveClosed!: (value: Error | undefined) => void;
  private closing: Promise<void> | undefined;

  /** Rejecters of every operation in flight, so a lost connection fails them at once. */
  private readonly pending = new Set<(error: Error) => void>();
  private readonly requests = new Map<string, PendingRequest>();
  private readonly subscriptions = new Set<ChannelSubscription>();
  /** Queues declared (and bound) on this connection: each is declared once per connection. */
  private readonly declared = new Map<string, Promise<void>>();
  /** Queues declared on this connection and not since found missing: publish skips the declaration for these. */
  private readonly ready = new Set<string>();
  /**
   * Returns (unroutable messages) not yet matched with their confirm, by routing key. RabbitMQ sends a message's
   * `basic.return` before its `basic.ack`, so a confirm that finds one counted here is that message's (a routing key's
   * publishes all go to the same bindings, so which of several is which does not matter).
   */
  private readonly unroutable = new Map<string, number>();
  /** Checked message addresses and their queue names (the hot path of publish). */
  private readonly messageQueues = new Map<string, string>();
  private readonly topologySlot: ChannelSlot;
  private readonly probeSlot: ChannelSlot;
  private readonly replySlot: ChannelSlot;
  private probeTail: Promise<unknown> = Promise.resolve();
  private requestChannel: Promise<Channel> | undefined;
  private will: { channel: Channel; queue: string; message: ConsumeMessage } | undefined;
  private lastConnectionError: Error | undefined;
  /** Correlation ids: this connection's random prefix and a counter (unique, and cheaper than a UUID each). */
  private readonly idPrefix = `${randomUUID()}-`;
  private requestCount = 0;
  private requestChannelReady: Channel | undefined;
  /** The routing key replies to this connection's requests carry on the replies exchange (its `reply-to`). */
  private replyKey: string | undefined;
  private readonly publisher: ConfirmPublisher;
  /** The exchange everything this connection publishes goes to: its identity's (see topology.ts). */
  private readonly from: string;
  /** Properties of a message publish (persistent, mandatory; the identity header when {@link from} is hashed). */
  private readonly messageProperties: Readonly<Options.Publish>;
  /** Headers every other publish carries: the identity header when {@link from} is hashed. */
  private readonly identityHeaders: Readonly<Record<string, string>> | undefined;
  /**
   * Whether this connection may declare its own exchange, and so (on a broker without edgekit's permissions, or as an
   * operator) declares and binds what it uses on first use. Without it the topology is the operator's
   * (rabbitmqDefinitions / declareRabbitAccess): nothing is declared or bound for publishing, and a publish RabbitMQ
   * routes nowhere is one the access plan does not allow.
   */
  private manages = true;
  /** Cache of publishers by delivery exchange (plain names only; hashed ones depend on a header). */
  private readonly publishers = new Map<string, string | undefined>();

  private constructor(
    private readonly model: ChannelModel,
    confirm: ConfirmChannel,
    private readonly names: Topology,
    private readonly options: ResolvedAmqpOptions,
    limits: BrokerLimits,
    private readonly identity: string | undefined,
  ) {
    this.closed = new Promise((resolve) => {
      this.resolveClosed = resolve;
    });
    this.from = names.fromExchange(identity);
    this.identityHeaders =
      identity !== undefined && names.fromExchangeHashed(identity) ? { [PUBLISHER_HEADER]: identity } : undefined;
    this.messageProperties =
      this.identityHeaders === undefined
        ? PERSISTENT_MANDATORY
        : Object.freeze({ ...PERSISTENT_MANDATORY, headers: this.identityHeaders });
    internals.set(this, {
      names,
      from: this.from,
      priorities: options.priorities,
      run: (what, operation) => this.run(what, () => operation(model)),
    });
    this.topologySlot = new ChannelSlot(() => model.createChannel());
    this.probeSlot = new ChannelSlot(() => model.createChannel());
    this.replySlot = new ChannelSlot(() => model.createChannel());
    model.on('error', (error: Error) => {
      this.lastConnectionError = error;
    });
    model.on('close', (error?: Error) => {
      this.lose(error ?? this.lastConnectionError ?? new Error('the broker closed the connection'));
    });
    this.publisher = new ConfirmPublisher(confirm, limits, {
      openChannel: () => model.createConfirmChannel(),
      lose: (cause) => this.lose(cause ?? this.lastConnectionError ?? new Error('the publishing channel closed')),
      // The broker returns an unroutable mandatory message before it confirms it: the confirm callback then knows.
      returned: (message) => {
        const key = message.fields.routingKey;
        this.unroutable.set(key, (this.unroutable.get(key) ?? 0) + 1);
      },
    });
  }

  /**
   * Opens the channels, declares the connection's exchange (or finds the operator's) and the shared ones, and arms the
   * will; closes the connection if any step fails.
   */
  static async open(
    model: ChannelModel,
    options: ResolvedAmqpOptions,
    connectOptions: TransportConnectOptions,
    limits: BrokerLimits,
  ): Promise<AmqpConnection> {
    const confirm = await model.createConfirmChannel();
    const connection = new AmqpConnection(model, confirm, options.names, options, limits, connectOptions.identity);
    try {
      await connection.declareExchanges();
      if (connectOptions.will !== undefined) await connection.armWill(connectOptions.clientId, connectOptions.will);
    } catch (error) {
      connection.state = 'closed';
      await model.close().catch(noop);
      throw error;
    }
    return connection;
  }

  /**
   * Declares this connection's own exchange and, if it may, the shared ones. A user that may not declare its own
   * exchange (a module under rabbitmqDefinitions' permissions) uses the operator's topology as it is: its exchange must
   * exist (a passive check needs no permission), and nothing else is declared.
   */
  private async declareExchanges(): Promise<void> {
    const names = this.names;
    try {
      await (await this.topologySlot.get()).assertExchange(this.from, 'direct', { durable: true });
    } catch (error) {
      if (replyCodeOf(error) !== AmqpReplyCode.accessRefused) throw error;
      this.manages = false;
      try {
        await (await this.topologySlot.get()).checkExchange(this.from);
      } catch (missing) {
        if (replyCodeOf(missing) !== AmqpReplyCode.notFound) throw missing;
        throw new EdgeKitError(
          'not-authorized',
          `the exchange ${this.from} of ${this.identity ?? 'connections without an identity'} does not exist and ` +
            'this user may not declare it: the operator declares it with the access plan (rabbitmqDefinitions or ' +
            'declareRabbitAccess from edgekit/amqp)',
          { cause: error, details: { amqpReplyCode: AmqpReplyCode.accessRefused, exchange: this.from } },
        );
      }
      return;
    }
    const channel = await this.topologySlot.get();
    await Promise.all([
      channel.assertExchange(names.observeExchange, 'topic', { durable: true }),
      channel.assertExchange(names.repliesExchange, 'topic', { durable: true }),
    ]);
  }

  /** Whether this connection reads retained values from its own views (a module under the operator's topology). */
  private readsViews(): boolean {
    return !this.manages && this.identity !== undefined && parseIdentity(this.identity)?.kind === 'module';
  }

  /** Who published a delivered message, from the exchange RabbitMQ says it was published to. */
  private publisherOf(message: Message): string | undefined {
    const exchange = message.fields.exchange;
    if (this.publishers.has(exchange)) return this.publishers.get(exchange);
    const publisher = this.names.publisherOf(exchange, message.properties.headers?.[PUBLISHER_HEADER]);
    // A hashed exchange's publisher is told by each message's header, checked against the hash: not cached.
    if (!exchange.startsWith(`${this.names.prefix}.from.=`)) {
      if (this.publishers.size >= 10_000) this.publishers.clear();
      this.publishers.set(exchange, publisher);
    }
    return publisher;
  }

  // ---- lifecycle ----

  private endedError(): EdgeKitError {
    if (this.state === 'lost' && this.lostError !== undefined) return this.lostError;
    return new EdgeKitError('closed', 'the AMQP connection is closed');
  }

  /** The connection or a channel it cannot do without ended unexpectedly: fail everything, once. */
  private lose(reason: unknown): void {
    if (this.state !== 'open') return;
    this.state = 'lost';
    const cause = redactError(reason, this.options.secrets);
    const error = new EdgeKitError('connection-lost', `the connection to RabbitMQ was lost: ${messageOf(cause)}`, {
      cause,
      details: replyCodeOf(cause) === undefined ? {} : { amqpReplyCode: replyCodeOf(cause) },
    });
    this.lostError = error;
    this.failPending(error);
    for (const subscription of this.subscriptions) subscription.stopped = true;
    this.resolveClosed(error);
    this.model.close().catch(noop);
  }

  private failPending(error: Error): void {
    for (const request of [...this.requests.values()]) request.reject(error);
    for (const reject of [...this.pending]) reject(error);
    this.pending.clear();
  }

  /** Runs an operation so it rejects with the connection's end cause if the connection ends meanwhile. */
  private run<T>(what: string, operation: () => Promise<T>): Promise<T> {
    if (this.state !== 'open') return Promise.reject(this.endedError());
    return new Promise<T>((resolve, reject) => {
      const fail = (error: Error) => reject(error);
      this.pending.add(fail);
      operation().then(
        (value) => {
          this.pending.delete(fail);
          resolve(value);
        },
        (error: unknown) => {
          this.pending.delete(fail);
          reject(
            this.state === 'open'
              ? translateOperationError(error, what, undefined)
              : translateEnded(error, this.endedError()),
          );
        },
      );
    });
  }

  /** A channel whose unexpected end means the connection can no longer keep its promises. */
  private guard(channel: Channel, what: string, subscription?: ChannelSubscription): void {
    let lastError: Error | undefined;
    channel.on('error', (error: Error) => {
      lastError = error;
    });
    channel.on('close', () => {
      if (subscription?.stopped) return;
      this.lose(lastError ?? new Error(`the ${what} channel closed`));
    });
  }

  close(options: TransportCloseOptions = {}): Promise<void> {
    if (this.closing !== undefined) return this.closing;
    const budget = closeTimeout(options, CLOSE_TIMEOUT_MS);
    const deadline = Date.now() + budget;
    const left = () => Math.max(0, deadline - Date.now());
    this.closing = (async () => {
      if (this.state !== 'open') return;
      this.state = 'closing';
      const closedError = new EdgeKitError('closed', 'the AMQP connection was closed');
      for (const request of [...this.requests.values()]) request.reject(closedError);
      // Let publishes already sent get their confirms, so a send that raced close() is not reported as failed.
      await withTimeout(this.publisher.drain().catch(noop), left());
      this.failPending(closedError);
      // Close the consumer channels first: a channel's close follows its acks on the wire, so every ack the core
      // gave is settled before the connection goes (amqplib may write a connection close ahead of other channels).
      for (const subscription of this.subscriptions) subscription.stopped = true;
      // Every step shares the budget: a broker that stopped answering must not keep close() pending.
      await withTimeout(Promise.all([...this.subscriptions].map((s) => s.closeChannel())), left());
      await withTimeout(this.disarmWill().catch(noop), left());
      if ((await withTimeout(this.model.close().catch(noop), left())) === 'timed out') {
        // No answer in time: drop the connection (the broker then fires the will, as for a crash). With an error, so
        // amqplib hears of it (it listens for 'error' and 'end', not 'close') and stops its heartbeat timer.
        socketOf(this.model)?.destroy(new Error('the broker did not answer the close in time'));
      }
      this.state = 'closed';
      this.resolveClosed(undefined);
    })();
    return this.closing;
  }

  // ---- declarations ----

  private declareOnce(queue: string, declare: () => Promise<void>): Promise<void> {
    let declaring = this.declared.get(queue);
    if (declaring === undefined) {
      declaring = declare().then(() => {
        this.ready.add(queue);
        this.unroutable.delete(queue);
      });
      this.declared.set(queue, declaring);
      declaring.catch(() => {
        if (this.declared.get(queue) === declaring) this.declared.delete(queue);
      });
    }
    return declaring;
  }

  /** Declares a message queue (idempotent), with the arguments every client of the broker uses. */
  private async declareMessageQueue(channel: Channel, queue: string): Promise<void> {
    await channel.assertQueue(queue, { durable: true, arguments: messageQueueArguments(this.options.priorities) });
  }

  /**
   * What a connection that manages its topology does before its first publish to a message queue: declares the queue
   * and binds it, and the observe exchange, to its own exchange with the queue's name (all idempotent; a queue of an
   * earlier version gets the bindings here). A direct exchange per identity plus an exchange-to-exchange binding to a
   * topic exchange for observers, rather than one topic exchange for all: topic routing of every message cost about
   * twice as much broker throughput (see docs/transports/amqp.md).
   */
  private async routeMessageQueue(channel: Channel, queue: string): Promise<void> {
    await this.declareMessageQueue(channel, queue);
    await Promise.all([
      channel.bindQueue(queue, this.from, queue),
      channel.bindExchange(this.names.observeExchange, this.from, queue),
    ]);
  }

  /**
   * Declares a key's updates exchange (fanout) and last-value queue bound to it, and the binding that takes this
   * connection's writes of the key there (routing key: the queue's name).
   */
  private async routeRetainedQueue(channel: Channel, key: string, queue: string): Promise<void> {
    const updates = this.names.updatesExchange(key);
    await Promise.all([
      channel.assertExchange(updates, 'fanout', { durable: true }),
      channel.assertQueue(queue, { durable: true, arguments: { ...RETAINED_QUEUE_ARGUMENTS } }),
    ]);
    await Promise.all([channel.bindQueue(queue, updates, ''), channel.bindExchange(updates, this.from, queue)]);
  }

  private ensureMessageRoute(queue: string): Promise<void> {
    return this.declareOnce(queue, async () => this.routeMessageQueue(await this.topologySlot.get(), queue));
  }

  private ensureRetainedRoute(key: string, queue: string): Promise<void> {
    return this.declareOnce(queue, async () => this.routeRetainedQueue(await this.topologySlot.get(), key, queue));
  }

  /** The calls exchange of a method address, and the binding that takes this connection's requests to it. */
  private ensureRequestRoute(address: string, queue: string): Promise<void> {
    return this.declareOnce(queue, async () => {
      const channel = await this.topologySlot.get();
      const calls = this.names.callsExchange(address);
      await channel.assertExchange(calls, 'fanout', { durable: true });
      await channel.bindExchange(calls, this.from, queue);
    });
  }

  // ---- publishing ----

  /**
   * Publishes on the confirm channel; resolves on the broker's ack, telling whether the message was unroutable.
   * `target` names the address or key in errors.
   */
  private publishConfirmed(
    exchange: string,
    routingKey: string,
    bytes: Uint8Array,
    properties: Options.Publish,
    target: string,
  ): Promise<'routed' | 'returned'> {
    return new Promise((resolve, reject) => {
      this.publisher.publish(exchange, routingKey, bufferOf(bytes), properties, target, (error: unknown) => {
        if (error === null || error === undefined) resolve(this.takeReturn(routingKey) ? 'returned' : 'routed');
        else if (this.state === 'open' && /nack/i.test(messageOf(error))) {
          reject(
            new EdgeKitError(
              'transport-error',
              'RabbitMQ refused the message (basic.nack): it may be short of disk or memory',
              {
                cause: error,
              },
            ),
          );
        } else reject(error);
      });
    });
  }

  /** Whether a return of a publish with `routingKey` is waiting for its confirm; counts it as matched. */
  private takeReturn(routingKey: string): boolean {
    const returns = this.unroutable.get(routingKey);
    if (returns === undefined) return false;
    if (returns <= 1) this.unroutable.delete(routingKey);
    else this.unroutable.set(routingKey, returns - 1);
    return true;
  }

  /**
   * Publishes to this connection's exchange with `routingKey`, the name of the queue it must reach. A connection that
   * manages its topology declares and binds the queue first (`ensure`), and if RabbitMQ returns the message as
   * unroutable (the queue was deleted since) does so again and publishes once more. Under the operator's topology the
   * bindings are the operator's: a message RabbitMQ routes nowhere is one the access plan does not allow (`refused`).
   */
  private async publishRouted(
    routingKey: string,
    ensure: (queue: string) => Promise<void>,
    bytes: Uint8Array,
    properties: Options.Publish,
    target: string,
    refused: () => EdgeKitError,
  ): Promise<void> {
    if (this.manages && !this.ready.has(routingKey)) await ensure(routingKey);
    if ((await this.publishConfirmed(this.from, routingKey, bytes, properties, target)) === 'routed') return;
    if (!this.manages) throw refused();
    this.ready.delete(routingKey);
    this.declared.delete(routingKey);
    await ensure(routingKey);
    if ((await this.publishConfirmed(this.from, routingKey, bytes, properties, target)) === 'routed') return;
    throw new EdgeKitError('not-found', `RabbitMQ routed the message to no queue (expected ${routingKey})`);
  }

  /** What a publish under the operator's topology rejects with when RabbitMQ routed it nowhere. */
  private routedNowhere(what: string, routingKey: string): EdgeKitError {
    const who = this.identity ?? 'a connection without an identity';
    return new EdgeKitError(
      'not-authorized',
      `RabbitMQ routed ${what} nowhere: nothing is bound to ${this.from} for ${routingKey}, so the access plan does ` +
        `not let ${who} write there (or the operator has not declared it: rabbitmqDefinitions / declareRabbitAccess)`,
      { details: { exchange: this.from, routingKey } },
    );
  }

  /** The queue of a message address, checking the address the first time it is seen. */
  private messageQueueOf(address: string): string {
    let queue = this.messageQueues.get(address);
    if (queue === undefined) {
      checkAddress('address', address);
      queue = this.names.messageQueue(address);
      if (this.messageQueues.size >= 10_000) this.messageQueues.clear();
      this.messageQueues.set(address, queue);
    }
    return queue;
  }

  publish(address: string, bytes: Uint8Array, options?: PublishOptions): Promise<void> {
    const queue = this.messageQueueOf(address);
    checkBytes('bytes', bytes);
    let properties: Options.Publish = this.messageProperties;
    if (options?.ttlInMs !== undefined || options?.priority !== undefined) {
      properties = { ...this.messageProperties };
      const { ttlInMs: ttl, priority } = options;
      if (ttl !== undefined) {
        if (typeof ttl !== 'number' || !Number.isFinite(ttl) || ttl < 0) {
          throw new RangeError(`ttlInMs must be a non-negative number of milliseconds, got ${String(ttl)}`);
        }
        properties.expiration = String(Math.ceil(ttl));
      }
      if (priority !== undefined) {
        if (!Number.isInteger(priority) || priority < 0 || priority > 9) {
          throw new RangeError(`priority must be an integer from 0 (highest) to 9, got ${String(priority)}`);
        }
        // edgekit: 0 is most urgent; AMQP: the larger the more urgent.
        if (this.options.priorities) properties.priority = AMQP_MAX_PRIORITY - priority;
      }
    }
    if (this.state !== 'open') return Promise.reject(this.endedError());
    // Not through run(): amqplib fails every unconfirmed publish when its channel ends, so nothing is left pending.
    return this.publishRouted(
      queue,
      (q) => this.ensureMessageRoute(q),
      bytes,
      properties,
      address,
      () => this.routedNowhere(`the message for ${address}`, queue),
    ).catch((error: unknown) => {
      throw this.state === 'open'
        ? translateOperationError(error, `publish to ${address}`)
        : translateEnded(error, this.endedError());
    });
  }

  // ---- consuming ----

  /**
   * A message queue is durable and declared by its first publisher or consumer, and keeps what it is given with or
   * without a consumer: nothing to do but the checks.
   */
  async keep(address: string): Promise<void> {
    checkAddress('address', address);
    if (this.state !== 'open') throw this.endedError();
  }

  consume(address: string, options: ConsumeOptions, onDelivery: (delivery: Delivery) => void): Promise<Subscription> {
    checkAddress('address', address);
    const prefetch = options?.prefetch;
    if (typeof prefetch !== 'number' || !Number.isInteger(prefetch) || prefetch < 1 || prefetch > 65_535) {
      throw new RangeError(`prefetch must be an integer from 1 to 65535, got ${String(prefetch)}`);
    }
    if (typeof onDelivery !== 'function') throw new TypeError('onDelivery must be a function');
    const queue = this.names.messageQueue(address);
    return this.run(`consume ${address}`, async () => {
      let channel = await this.model.createChannel();
      channel.on('error', noop);
      try {
        // Declared here so messages wait for this consumer from now on; senders bind it (or the operator did).
        await this.declareMessageQueue(channel, queue);
      } catch (error) {
        if (this.manages || replyCodeOf(error) !== AmqpReplyCode.accessRefused) {
          await channel.close().catch(noop);
          throw error;
        }
        // A queue of the operator's topology that this user may consume but not declare: it must exist.
        channel = await this.model.createChannel();
        channel.on('error', noop);
        try {
          await channel.checkQueue(queue);
        } catch (missing) {
          await channel.close().catch(noop);
          if (replyCodeOf(missing) !== AmqpReplyCode.notFound) throw missing;
          throw new EdgeKitError(
            'not-authorized',
            `the queue of ${address} (${queue}) does not exist and this user may not declare it: the operator ` +
              'declares it with the access plan (rabbitmqDefinitions or declareRabbitAccess from edgekit/amqp)',
            { cause: error, details: { amqpReplyCode: AmqpReplyCode.accessRefused, queue } },
          );
        }
      }
      // After the connection ended the broker requeues unacked messages by itself: nothing to tell it.
      const acks = new AckBatcher(channel, () => this.state === 'open');
      const subscription = new ChannelSubscription(channel, acks);
      try {
        await channel.prefetch(prefetch);
      } catch (error) {
        return this.abandonStart(channel, subscription, error);
      }
      const ack = (message: Message) => acks.ack(message);
      const requeue = (message: Message) => acks.requeue(message);
      return this.startConsuming(channel, queue, subscription, `consumer of ${address}`, (message) => {
        if (subscription.stopped) {
          // Sent before the broker saw our cancel: give it straight back.
          acks.requeue(message);
          return;
        }
        const [settle, release] = subscription.handOut(message, ack, requeue);
        const publisher = this.publisherOf(message);
        const delivery: Delivery = {
          bytes: bytesOf(message.content),
          redelivered: message.fields.redelivered,
          ...(publisher === undefined ? {} : { publisher }),
          ack: settle,
          // Back to the queue now (nack with requeue), for this or another consumer, flagged redelivered.
          release,
        };
        try {
          onDelivery(delivery);
        } catch {
          // The core's callback must not throw; if it does, the message stays unacknowledged and is redelivered.
        }
      });
    });
  }

  /**
   * Starts a manual-ack consumer on `queue` for a subscription whose channel is set up, and registers it: a broker
   * cancel (queue deleted) ends the connection, a failed start closes the channel.
   */
  private async startConsuming(
    channel: Channel,
    queue: string,
    subscription: ChannelSubscription,
    what: string,
    onMessage: (message: Message) => void,
  ): Promise<ChannelSubscription> {
    try {
      const { consumerTag } = await channel.consume(
        queue,
        (message) => {
          if (message === null) {
            if (!subscription.stopped) this.lose(new Error(`RabbitMQ cancelled the ${what} (queue deleted?)`));
            return;
          }
          onMessage(message);
        },
        { noAck: false },
      );
      subscription.consumerTag = consumerTag;
    } catch (error) {
      return this.abandonStart(channel, subscription, error);
    }
    return this.register(channel, subscription, what);
  }

  /** A subscription that failed to start: its channel is closed and the error goes to the caller. */
  private async abandonStart(channel: Channel, subscription: ChannelSubscription, error: unknown): Promise<never> {
    subscription.stopped = true;
    await channel.close().catch(noop);
    throw error;
  }

  /** Tracks a started subscription until its channel closes. */
  private register(channel: Channel, subscription: ChannelSubscription, what: string): ChannelSubscription {
    this.subscriptions.add(subscription);
    channel.on('close', () => this.subscriptions.delete(subscription));
    this.guard(channel, what, subscription);
    return subscription;
  }

  // ---- observing ----

  /**
   * Declares an exclusive, auto-delete queue bound to the observe exchange with the pattern (`*` is one word, as in
   * an address pattern) and consumes it without acks: every message published to a matching queue is copied to it.
   * Messages whose queue name was hashed (over 255 bytes) are not reported.
   */
  async observe(pattern: string, onMessage: ObserveHandler): Promise<Subscription> {
    const segments = checkAddressPattern(pattern);
    if (typeof onMessage !== 'function') throw new TypeError('observe: onMessage must be a function');
    const bindingKey = this.names.observeBindingKey(segments);
    if (bindingKey === undefined) {
      throw new RangeError(
        `pattern ${JSON.stringify(pattern.slice(0, 40))}… makes an AMQP binding key over 255 bytes; ` +
          'no address it matches has a plain queue name',
      );
    }
    return this.run(`observe ${pattern}`, async () => {
      const channel = await this.model.createChannel();
      channel.on('error', noop);
      const subscription = new ChannelSubscription(channel);
      try {
        const { queue } = await channel.assertQueue('', {
          exclusive: true,
          autoDelete: true,
          durable: false,
          arguments: { ...OBSERVER_QUEUE_ARGUMENTS },
        });
        await channel.bindQueue(queue, this.names.observeExchange, bindingKey);
        const { consumerTag } = await channel.consume(
          queue,
          (message) => {
            if (message === null) {
              if (!subscription.stopped) this.lose(new Error(`RabbitMQ cancelled the observer of ${pattern}`));
              return;
            }
            if (subscription.stopped) return;
            const address = this.names.addressOfMessageQueue(message.fields.routingKey);
            if (address === undefined) return;
            try {
              onMessage(address, bytesOf(message.content), this.publisherOf(message));
            } catch {
              // an observer must not throw; what it throws is ignored
            }
          },
          { noAck: true, exclusive: true },
        );
        subscription.consumerTag = consumerTag;
      } catch (error) {
        return this.abandonStart(channel, subscription, error);
      }
      return this.register(channel, subscription, `observer of ${pattern}`);
    });
  }

  // ---- retained values ----

  setRetained(key: string, value: Uint8Array | null): Promise<void> {
    checkAddress('key', key);
    if (value !== null) checkBytes('value', value);
    const queue = this.names.retainedQueue(key);
    const headers = value === null ? { ...this.identityHeaders, [DELETED_HEADER]: true } : this.identityHeaders;
    const properties: Options.Publish = {
      ...PERSISTENT_MANDATORY,
      messageId: randomUUID(),
      ...(headers === undefined ? {} : { headers }),
    };
    return this.run(`set retained ${key}`, () =>
      this.publishRouted(
        queue,
        (q) => this.ensureRetainedRoute(key, q),
        value ?? new Uint8Array(0),
        properties,
        `retained key ${key}`,
        () => this.routedNowhere(`the value of retained key ${key}`, queue),
      ),
    );
  }

  getRetained(key: string): Promise<Uint8Array | undefined> {
    checkAddress('key', key);
    return this.run(`get retained ${key}`, async () => (await this.readRetained(key))?.value);
  }

  /** Runs retained reads one at a time on this connection: a read that hits a missing queue closes the probe channel. */
  private serializeProbe<T>(operation: () => Promise<T>): Promise<T> {
    const result = this.probeTail.then(operation, operation);
    this.probeTail = result.catch(noop);
    return result;
  }

  /**
   * Reads a key's last-value queue without consuming it: gets its message (and any that a requeue race left behind),
   * then returns them all to the queue. `undefined` when the key was never set. A module under the operator's
   * topology reads its own view of the key instead (see {@link Topology.viewQueue}).
   */
  private readRetained(key: string): Promise<RetainedRead | undefined> {
    const queue =
      this.identity !== undefined && this.readsViews()
        ? this.names.viewQueue(this.identity, key)
        : this.names.retainedQueue(key);
    return this.serializeProbe(async () => {
      for (let attempt = 0; ; attempt++) {
        const channel = await this.probeSlot.get();
        let latest: GetMessage | undefined;
        try {
          latest = await peekLatest(channel, queue);
        } catch (error) {
          if (replyCodeOf(error) === AmqpReplyCode.notFound) return undefined;
          throw error;
        }
        if (latest !== undefined) return decodeRetained(latest);
        const wait = EMPTY_READ_RETRY_DELAYS_MS[attempt];
        if (wait === undefined) return undefined;
        await delay(wait);
      }
    });
  }

  watchRetained(key: string, onValue: (value: Uint8Array | undefined) => void): Promise<Subscription> {
    checkAddress('key', key);
    if (typeof onValue !== 'function') throw new TypeError('onValue must be a function');
    const updates = this.names.updatesExchange(key);
    return this.run(`watch retained ${key}`, async () => {
      const channel = await this.model.createChannel();
      channel.on('error', noop);
      const subscription = new ChannelSubscription(channel);
      // Changes that arrive while the current value is read wait here, then are reconciled with it.
      let early: Message[] | undefined = [];
      let lastId: string | undefined;
      const emit = (read: RetainedRead) => {
        if (subscription.stopped) return;
        if (read.id !== undefined && read.id === lastId) return;
        lastId = read.id;
        try {
          onValue(read.value);
        } catch {
          // the core's callback must not throw
        }
      };
      try {
        const { queue } = await channel.assertQueue('', { exclusive: true, autoDelete: true, durable: false });
        // Every write of the key passes its updates exchange (under the operator's topology, that exists and this
        // user may read it only for keys its plan lets it read).
        if (this.manages) await channel.assertExchange(updates, 'fanout', { durable: true });
        await channel.bindQueue(queue, updates, '');
        await channel.consume(
          queue,
          (message) => {
            if (message === null) {
              if (!subscription.stopped) this.lose(new Error(`RabbitMQ cancelled the watch of ${key}`));
              return;
            }
            if (early !== undefined) early.push(message);
            else emit(decodeRetained(message));
          },
          { noAck: true, exclusive: true },
        );
        const current = await this.readRetained(key);
        emit(current ?? { id: undefined, value: undefined });
        // A change seen by both the read and the watch queue is delivered once: skip up to the value read.
        const changes: Message[] = early;
        early = undefined;
        const seen = current?.id === undefined ? -1 : changes.findIndex((m) => m.properties.messageId === current.id);
        for (const message of changes.slice(seen + 1)) emit(decodeRetained(message));
      } catch (error) {
        return this.abandonStart(channel, subscription, error);
      }
      return this.register(channel, subscription, `watch of ${key}`);
    });
  }

  // ---- last will ----

  /**
   * Arms the will: the will message sits in this connection's durable will queue, delivered to (and held unacked by)
   * this connection. If the connection dies, RabbitMQ requeues it; it has already expired (`expiration: 0`), so it is
   * dead-lettered at once to the retained exchange under the will key — the broker itself writes the will.
   */
  private async armWill(clientId: string, will: NonNullable<TransportConnectOptions['will']>): Promise<void> {
    const retainedQueue = this.names.retainedQueue(will.key);
    // The dead-lettered will must find the key's last-value queue through this connection's exchange (under the
    // operator's topology that binding is the operator's, and exists only if this identity may write the key).
    if (this.manages) await this.ensureRetainedRoute(will.key, retainedQueue);
    const queue = this.names.willQueue(clientId);
    const args = willQueueArguments(this.names, this.from, will.key);
    let channel = await this.model.createChannel();
    channel.on('error', noop);
    try {
      await channel.assertQueue(queue, { durable: true, arguments: args });
    } catch (error) {
      if (replyCodeOf(error) !== AmqpReplyCode.preconditionFailed) throw error;
      // The same client id had a will for another key or exchange (or of an earlier version): its queue has other
      // arguments. Replace it.
      channel = await this.model.createChannel();
      channel.on('error', noop);
      await channel.deleteQueue(queue);
      await channel.assertQueue(queue, { durable: true, arguments: args });
    }
    // The will is published through this connection's exchange too: the default exchange would need a permission
    // that reaches every queue.
    await channel.bindQueue(queue, this.from, queue);
    const willId = randomUUID();
    let resolveHeld: (message: ConsumeMessage) => void = noop;
    const held = new Promise<ConsumeMessage>((resolve) => {
      resolveHeld = resolve;
    });
    try {
      await channel.consume(
        queue,
        (message) => {
          if (message === null) {
            if (this.will !== undefined) this.lose(new Error(`RabbitMQ cancelled the will holder of ${queue}`));
            return;
          }
          if (message.properties.messageId === willId) resolveHeld(message);
          else channel.ack(message); // a will of an earlier connection that never expired: obsolete now
        },
        { exclusive: true, noAck: false },
      );
    } catch (error) {
      if (replyCodeOf(error) === AmqpReplyCode.accessRefused && /exclusive use/i.test(messageOf(error))) {
        throw new EdgeKitError(
          'connection-failed',
          `client id ${JSON.stringify(clientId)} is in use by another live connection (its will queue ${queue} has an ` +
            'exclusive consumer); if that connection died silently, RabbitMQ notices after about two heartbeats',
          { cause: error, details: { reason: 'client-id-in-use' } },
        );
      }
      throw error;
    }
    await this.publishConfirmed(
      this.from,
      queue,
      will.value,
      {
        ...PERSISTENT_MANDATORY,
        expiration: '0',
        messageId: willId,
        ...(this.identityHeaders === undefined ? {} : { headers: this.identityHeaders }),
      },
      `the will of ${will.key}`,
    );
    const message = await withTimeout(held, WILL_HOLD_TIMEOUT_MS);
    if (message === 'timed out') {
      throw new EdgeKitError('transport-error', `RabbitMQ did not hand the will back to its holder (${queue})`);
    }
    this.will = { channel, queue, message };
    this.guard(channel, 'will');
  }

  /** Graceful close: drop the will (acknowledge it, delete the queue) so it never fires. */
  private async disarmWill(): Promise<void> {
    const will = this.will;
    if (will === undefined) return;
    this.will = undefined;
    will.channel.ack(will.message);
    // Same channel, so the broker handles the ack first; deleting an empty queue loses nothing.
    await will.channel.deleteQueue(will.queue);
  }

  // ---- request / reply ----

  /**
   * The channel requests are published on: it consumes this connection's reply queue and hears unroutable (returned)
   * requests. The reply queue is server-named and exclusive, bound to the replies exchange with {@link replyKey},
   * which starts with this connection's identity: the topic permission on that exchange lets only this identity bind
   * it, and servers can publish replies nowhere else (never into a queue of another module).
   */
  private replyChannel(): Promise<Channel> {
    if (this.requestChannel === undefined) {
      const opening = (async () => {
        const channel = await this.model.createChannel();
        channel.on('error', noop);
        channel.on('return', (message: Message) => {
          const request = this.requests.get(String(message.properties.correlationId));
          if (request === undefined) return;
          const hint = this.manages ? '' : ` (or the access plan does not let ${this.identity ?? 'it'} call it)`;
          request.reject(
            new EdgeKitError('not-found', `nobody serves ${request.address}${hint}`, {
              details: { address: request.address },
            }),
          );
        });
        const { queue } = await channel.assertQueue('', { exclusive: true, autoDelete: true, durable: false });
        const replyKey = this.names.replyKey(this.identity, randomUUID());
        await channel.bindQueue(queue, this.names.repliesExchange, replyKey);
        this.replyKey = replyKey;
        await channel.consume(
          queue,
          (message) => {
            if (message === null) {
              this.lose(new Error('RabbitMQ cancelled the reply consumer'));
              return;
            }
            const request = this.requests.get(String(message.properties.correlationId));
            const failure = message.properties.headers?.[REPLY_ERROR_HEADER];
            if (failure === undefined) request?.resolve(bytesOf(message.content));
            else request?.reject(servedRequestFailed(request.address, String(failure)));
          },
          { noAck: true },
        );
        let lastError: Error | undefined;
        channel.on('error', (error: Error) => {
          lastError = error;
        });
        channel.on('close', () => {
          if (this.requestChannel === opening) this.requestChannel = undefined;
          if (this.requestChannelReady === channel) this.requestChannelReady = undefined;
          const refusal = publishRefusalOf(lastError);
          if (refusal === undefined || this.state !== 'open') {
            this.lose(lastError ?? new Error('the reply channel closed'));
            return;
          }
          // RabbitMQ refused a request: this user may not write the connection's exchange, so it refuses every
          // request alike. Those waiting fail with that; the next request opens a new channel (and reply queue).
          for (const request of [...this.requests.values()]) {
            request.reject(publishRefusedError(refusal, `a request to ${request.address}`, lastError));
          }
        });
        this.requestChannelReady = channel;
        return channel;
      })();
      opening.catch(() => {
        if (this.requestChannel === opening) this.requestChannel = undefined;
      });
      this.requestChannel = opening;
    }
    return this.requestChannel;
  }

  request(address: string, bytes: Uint8Array, options: RequestOptions): Promise<Uint8Array> {
    checkAddress('address', address);
    checkBytes('bytes', bytes);
    const timeoutInMs = checkDuration('timeoutInMs', options?.timeoutInMs);
    const signal = options.abortSignal;
    if (signal?.aborted) return Promise.reject(abortError(signal));
    const queue = this.names.requestQueue(address);
    return this.run(
      `request to ${address}`,
      () =>
        new Promise<Uint8Array>((resolve, reject) => {
          // The budget starts now, also covering the first request's reply-channel set-up.
          const correlationId = `${this.idPrefix}${++this.requestCount}`;
          let settled = false;
          const finish = () => {
            settled = true;
            clearTimeout(timer);
            signal?.removeEventListener('abort', onAbort);
            this.requests.delete(correlationId);
          };
          const timer = setTimeout(() => {
            finish();
            reject(
              new EdgeKitError('timeout', `no reply from ${address} within ${timeoutInMs} ms`, {
                details: { address, timeoutInMs },
              }),
            );
          }, timeoutInMs);
          const onAbort = () => {
            finish();
            reject(abortError(signal as AbortSignal));
          };
          signal?.addEventListener('abort', onAbort, { once: true });
          this.requests.set(correlationId, {
            address,
            resolve: (reply) => {
              finish();
              resolve(reply);
            },
            reject: (error) => {
              finish();
              reject(error);
            },
          });
          const send = (channel: Channel) => {
            try {
              // Through this connection's exchange: the server learns the caller from it.
              channel.publish(this.from, queue, bufferOf(bytes), {
                correlationId,
                replyTo: this.replyKey,
                // The broker drops a request nobody took in time: a late server never runs it.
                expiration: String(Math.ceil(timeoutInMs)),
                mandatory: true,
                persistent: false,
                ...(this.identityHeaders === undefined ? {} : { headers: this.identityHeaders }),
              });
            } catch (error) {
              finish();
              reject(error);
            }
          };
          if (this.requestChannelReady !== undefined && (!this.manages || this.ready.has(queue))) {
            send(this.requestChannelReady);
            return;
          }
          const routed = this.manages ? this.ensureRequestRoute(address, queue) : Promise.resolve();
          Promise.all([this.replyChannel(), routed]).then(
            ([channel]) => {
              if (!settled) send(channel);
            },
            (error: unknown) => {
              if (settled) return;
              finish();
              reject(error);
            },
          );
        }),
    );
  }

  serve(address: string, handler: RequestHandler): Promise<Subscription> {
    checkAddress('address', address);
    if (typeof handler !== 'function') throw new TypeError('handler must be a function');
    const queue = this.names.requestQueue(address);
    return this.run(`serve ${address}`, async () => {
      const channel = await this.model.createChannel();
      channel.on('error', noop);
      const subscription = new ChannelSubscription(channel);
      const ack = (message: Message) => {
        if (this.state !== 'open') return;
        try {
          channel.ack(message);
        } catch {
          // channel gone: nothing to settle
        }
      };
      try {
        await channel.prefetch(this.options.prefetch);
        // Exists only while served: with nobody serving, a request is unroutable and fails fast as `not-found`.
        await channel.assertQueue(queue, { durable: false, autoDelete: true });
        // Requests come from the callers' exchanges through the address's calls exchange (the operator's, under its
        // topology; a fanout, so no key a caller chooses reaches another address).
        const calls = this.names.callsExchange(address);
        if (this.manages) await channel.assertExchange(calls, 'fanout', { durable: true });
        await channel.bindQueue(queue, calls, '');
      } catch (error) {
        return this.abandonStart(channel, subscription, error);
      }
      return this.startConsuming(channel, queue, subscription, `server of ${address}`, (message) => {
        if (subscription.stopped) {
          if (this.state === 'open') channel.nack(message, false, true);
          return;
        }
        const [settle] = subscription.handOut(message, ack);
        const { replyTo, correlationId } = message.properties;
        // At most once: a request whose first server died mid-way is not run again (its caller times out).
        if (message.fields.redelivered || typeof replyTo !== 'string') {
          settle();
          return;
        }
        const publisher = this.publisherOf(message);
        let reply: Promise<Uint8Array>;
        try {
          reply = Promise.resolve(handler(bytesOf(message.content), publisher === undefined ? {} : { publisher }));
        } catch (error) {
          reply = Promise.reject(error);
        }
        // Replies go to the replies exchange, where only reply queues are bound, whatever `reply-to` names; only an
        // earlier version's direct reply-to is answered through the default exchange (if this user may write it).
        // (Under the operator's topology it may not, and trying would close the channel other replies use.)
        const legacy = replyTo.startsWith(DIRECT_REPLY_TO);
        const exchange = legacy ? '' : this.names.repliesExchange;
        const answer = async (bytes: Uint8Array, failure?: string) => {
          if (this.state !== 'open' || (legacy && !this.manages)) return;
          const replies = this.replySlot.ready ?? (await this.replySlot.get());
          replies.publish(exchange, replyTo, bufferOf(bytes), {
            correlationId,
            persistent: false,
            ...(failure === undefined ? {} : { headers: { [REPLY_ERROR_HEADER]: failure } }),
          });
        };
        reply
          // A handler that fails is answered at once with the reason, so the caller need not wait for its timeout.
          .then(
            (bytes) => (bytes instanceof Uint8Array ? answer(bytes) : answer(EMPTY_REPLY, 'the handler gave no bytes')),
            (error: unknown) => answer(EMPTY_REPLY, messageOf(error)),
          )
          .catch(noop) // the channel went away: the caller times out, as with a server that died
          .finally(settle);
      });
    });
  }
}

function translateEnded(error: unknown, ended: EdgeKitError): EdgeKitError {
  // An operation that failed because the connection ended reports why it ended; one that failed on its own merits
  // (a refused declaration that raced the end) keeps its own code.
  if (isEdgeKitError(error) && error.code !== 'transport-error') return error;
  return ended;
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T | 'timed out'> {
  if (ms <= 0) {
    promise.catch(noop);
    return Promise.resolve('timed out');
  }
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<'timed out'>((resolve) => {
    timer = setTimeout(() => resolve('timed out'), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/**
 * Connects to RabbitMQ within the time budget and returns the edgekit connection. An attempt that finishes after
 * the deadline or the abort is closed at once. `limits` is the transport's, shared by all its connections.
 */
export async function connectAmqp(
  lib: AmqplibModule,
  options: ResolvedAmqpOptions,
  connectOptions: TransportConnectOptions,
  limits: BrokerLimits,
): Promise<TransportConnection> {
  if (typeof connectOptions !== 'object' || connectOptions === null)
    throw new TypeError('connect options are required');
  const { clientId, will, abortSignal, identity } = connectOptions;
  if (typeof clientId !== 'string' || clientId.length === 0) throw new TypeError('clientId must be a non-empty string');
  if (identity !== undefined) checkIdentity(identity);
  if (will !== undefined) {
    checkAddress('key', will.key);
    checkBytes('will.value', will.value);
  }
  const timeoutInMs =
    connectOptions.timeoutInMs === undefined
      ? options.connectTimeoutInMs
      : checkDuration('timeoutInMs', connectOptions.timeoutInMs);
  if (abortSignal?.aborted) throw abortError(abortSignal);

  const attempt = (async () => {
    let model: ChannelModel;
    try {
      model = await lib.connect(options.connect, {
        ...options.socket,
        timeout: Math.ceil(timeoutInMs),
        clientProperties: { connection_name: `edgekit ${clientId}` },
      });
    } catch (error) {
      throw translateConnectError(error, options.target, options.secrets);
    }
    model.on('error', noop);
    coalesceSocketWrites(model);
    try {
      return await AmqpConnection.open(model, options, connectOptions, limits);
    } catch (error) {
      throw isEdgeKitError(error) ? error : translateOperationError(error, 'setting up the connection');
    }
  })();

  let timer: NodeJS.Timeout | undefined;
  let onAbort: (() => void) | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () =>
        reject(
          new EdgeKitError('timeout', `could not connect to RabbitMQ at ${options.target} within ${timeoutInMs} ms`, {
            details: { timeoutInMs },
          }),
        ),
      timeoutInMs,
    );
    if (abortSignal !== undefined) {
      onAbort = () => reject(abortError(abortSignal));
      abortSignal.addEventListener('abort', onAbort, { once: true });
    }
  });
  try {
    return await Promise.race([attempt, deadline]);
  } catch (error) {
    // Whatever the attempt still produces is not wanted any more.
    attempt.then((connection) => connection.close(), noop);
    throw error;
  } finally {
    clearTimeout(timer);
    if (onAbort !== undefined) abortSignal?.removeEventListener('abort', onAbort);
  }
}
