/**
 * The transport contract: the few byte-level primitives a broker binding must provide. A transport moves opaque
 * bytes between addresses and keeps retained values; it knows nothing of twins, routes, methods or envelopes — all
 * of that lives in the core, once. Implementations: `memory` (in-process), `edgekit/mqtt`, `edgekit/amqp`; a third
 * party's transport passes `runTransportConformance` from `edgekit/testing`.
 *
 * Addresses and keys are `/`-separated paths whose segments are validated names or fixed words, e.g.
 * `inputs/<device>/<module>/<input>`, `twin/<device>/<module>/desired`. A transport may map them to topics, queues
 * or routing keys as it likes (segments never contain `/ + # * .`, whitespace or control characters), but must map
 * them one-to-one. See docs/architecture.md for every address the core uses.
 */

/** What a transport can do beyond the contract's minimum; the conformance suite reads these. */
export interface TransportCapabilities {
  /** Messages published to a queue that has never had a consumer are kept until one comes (memory, AMQP). */
  readonly keepsMessagesBeforeFirstConsumer: boolean;
  /** Several connections may consume one queue as a group, each message going to one of them. */
  readonly sharedConsumers: boolean;
  /** {@link TransportConnection.listRetained} is implemented (memory, MQTT; not AMQP, which cannot list queues). */
  readonly listsRetained: boolean;
}

/** Options for {@link Transport.connect}. */
export interface TransportConnectOptions {
  /**
   * Stable identity of this connection, unique among live connections. The broker keeps session state (queued
   * messages of its consumers) under it across reconnects. Never contains `+`, `#` or NUL (the core builds it from
   * validated names joined by `/`).
   */
  readonly clientId: string;
  /** Retained value the broker writes when this connection dies without {@link TransportConnection.close}. */
  readonly will?: { readonly key: string; readonly value: Uint8Array };
  /**
   * Who this connection speaks for: `<device>/<module>` for a module (its replicas share it) or `$operator/<name>`
   * for an operator. The transport carries it with every message and request it sends, in a way the broker's
   * authorization can check (a topic level, a routing-key word), so receivers learn who sent what
   * ({@link Delivery.publisher}, {@link RequestContext.publisher}); with the broker permissions edgekit generates
   * (docs/security.md) the broker refuses anything sent under another identity. Absent: nothing is carried and
   * receivers learn nothing.
   */
  readonly identity?: string;
  /**
   * This connection holds queues for consumers to come ({@link TransportConnection.keep}, and the consumers that
   * attach to the same client id): its session must outlive what the transport keeps for other connections (MQTT:
   * `queueSessionExpiryInSeconds`, default never, instead of `sessionExpiryInSeconds`, which an operator's CLI sets
   * to 0). Transports without sessions ignore it.
   */
  readonly durableSession?: boolean;
  /** Give up connecting after this long (the transport rejects with `timeout`). */
  readonly timeoutInMs?: number;
  readonly abortSignal?: AbortSignal;
}

/** Options for {@link TransportConnection.close}. */
export interface TransportCloseOptions {
  /** The longest the graceful close may wait for the broker; default the transport's own (a few seconds). 0: at once. */
  readonly timeoutInMs?: number;
}

/** Options for {@link TransportConnection.publish}. */
export interface PublishOptions {
  /** The broker discards the message if it is not delivered within this time. Absent: no expiry. */
  readonly ttlInMs?: number;
  /** 0 (highest) to 9; a transport that supports priorities delivers lower numbers first. */
  readonly priority?: number;
}

/** Options for {@link TransportConnection.consume}. */
export interface ConsumeOptions {
  /** Most deliveries handed out and not yet acknowledged. At least 1. */
  readonly prefetch: number;
}

/** One message handed to a consumer. */
export interface Delivery {
  readonly bytes: Uint8Array;
  /** True when the broker knows this message was delivered before (a previous connection did not ack it). */
  readonly redelivered: boolean;
  /**
   * The identity the message was published under (see {@link TransportConnectOptions.identity}), read from where the
   * broker's authorization checks it; `undefined` when the publisher gave none or the transport cannot tell.
   */
  readonly publisher?: string;
  /**
   * Tells the broker the message is done with. The core calls it exactly once, after the handler resolved or the
   * message was dead-lettered. An unacknowledged delivery is redelivered after the connection is lost.
   */
  ack(): void;
  /**
   * Optional: gives the message back to the broker now, for redelivery to this or another consumer (AMQP nack with
   * requeue). The core calls it for deliveries it will not handle (a handler closed before they started). Without
   * it, such a message is redelivered after the connection ends.
   */
  release?(): void;
}

/** A registration that can be undone. */
export interface Subscription {
  /**
   * Stops new deliveries; idempotent. Deliveries already handed out stay acknowledgeable on this connection (the
   * core acks in-flight handlers while draining); unacknowledged ones are redelivered — to the next consumer of the
   * address, or after the connection ends.
   */
  close(): Promise<void>;
}

/**
 * Receives copies of observed messages: the address a message was published to and its bytes. Must not throw
 * (a transport ignores what it throws).
 */
export type ObserveHandler = (address: string, bytes: Uint8Array, publisher?: string) => void;

/** Options for {@link TransportConnection.request}. */
export interface RequestOptions {
  /** The request expires after this long: the broker may discard it and the call rejects with `timeout`. */
  readonly timeoutInMs: number;
  readonly abortSignal?: AbortSignal;
}

/** What a server learns about a request besides its bytes. */
export interface RequestContext {
  /** The identity the request was sent under (see {@link TransportConnectOptions.identity}), when known. */
  readonly publisher?: string;
}

/** Serves requests on an address; resolves to the reply bytes. If it rejects, the caller's `request` rejects with `transport-error`. */
export type RequestHandler = (request: Uint8Array, context: RequestContext) => Promise<Uint8Array>;

/** One live connection to a broker. The core reconnects by calling {@link Transport.connect} again. */
export interface TransportConnection {
  /**
   * Resolves once when the connection ends: `undefined` after {@link close}, the cause otherwise. Never rejects.
   * After that, every method rejects with an `EdgeKitError` of code `closed` or `connection-lost`.
   */
  readonly closed: Promise<Error | undefined>;

  /** Appends `bytes` to the durable queue at `address`; resolves once the broker has taken responsibility for it. */
  publish(address: string, bytes: Uint8Array, options?: PublishOptions): Promise<void>;

  /**
   * Consumes the durable queue at `address`, in order, with at most `prefetch` unacknowledged deliveries.
   * Several connections with the same `clientId` family consuming one address share it (when `sharedConsumers`).
   */
  consume(address: string, options: ConsumeOptions, onDelivery: (delivery: Delivery) => void): Promise<Subscription>;

  /**
   * Optional: makes the queue at `address` keep the messages published to it from now on, for this connection's
   * client id, even while no connection consumes it: a later connection with the same `clientId` that consumes
   * `address` receives them (those published since `keep` and not taken by another consumer). Resolves once the
   * broker keeps them; idempotent; takes no messages. Needed where a queue exists only once consumed (MQTT: a
   * subscription in a persistent session, capability `keepsMessagesBeforeFirstConsumer: false`); a transport whose
   * queues keep messages anyway implements it as a no-op after its argument checks, or leaves it out.
   *
   * @example
   * ```ts
   * const keeper = await transport.connect({ clientId: '$queue/upstream/gw-1' });
   * await keeper.keep?.('upstream/gw-1');
   * await keeper.close(); // upstream messages now wait for the next connection '$queue/upstream/gw-1'
   * ```
   */
  keep?(address: string): Promise<void>;

  /**
   * Observes copies of the messages published to every message address matching `pattern`, without consuming them:
   * each message still goes to its queue's consumer. `pattern` is an address whose segments may be `*`, matching any
   * one segment (`upstream/*`, or `inputs/gw-1/*` followed by `/*`). Best effort, for monitoring: only messages published while observing,
   * at most once, no acknowledgement. Resolves once messages published after it are observed.
   */
  observe(pattern: string, onMessage: ObserveHandler): Promise<Subscription>;

  /**
   * Optional (see {@link TransportCapabilities.listsRetained}): every retained value whose key matches `pattern`
   * (segments may be `*`), keyed by key. Used to list the modules with a presence.
   */
  listRetained?(pattern: string): Promise<ReadonlyMap<string, Uint8Array>>;

  /**
   * Sets (or with `null`, deletes) the retained value at `key`; resolves when the broker has it. Survives restarts.
   * Values are never empty (MQTT cannot retain an empty payload; the core always writes JSON).
   */
  setRetained(key: string, value: Uint8Array | null): Promise<void>;

  /** The retained value at `key`, or `undefined` when there is none. */
  getRetained(key: string): Promise<Uint8Array | undefined>;

  /**
   * Calls `onValue` with the current retained value at `key` (`undefined` if none) and then with every change.
   * Resolves after the current value was delivered.
   */
  watchRetained(key: string, onValue: (value: Uint8Array | undefined) => void): Promise<Subscription>;

  /**
   * Sends a request to whoever serves `address` and resolves to the reply. Rejects with `not-found` when the
   * transport knows nobody serves it, `timeout` when no reply came in time.
   */
  request(address: string, bytes: Uint8Array, options: RequestOptions): Promise<Uint8Array>;

  /** Serves requests sent to `address`. The handler may run concurrently for several requests. */
  serve(address: string, handler: RequestHandler): Promise<Subscription>;

  /**
   * Closes gracefully (no last will); idempotent. Unacknowledged deliveries go back to the broker. Resolves within
   * `timeoutInMs` whatever the network does: a broker that does not answer in time gets no goodbye — the connection
   * is dropped (its socket destroyed), and the last will may then fire.
   */
  close(options?: TransportCloseOptions): Promise<void>;
}

/** A broker binding: creates connections. Pass one to `connect(...)` as `transport`. */
export interface Transport {
  /** Short name for logs and errors: `memory`, `mqtt`, `amqp`. */
  readonly name: string;
  readonly capabilities: TransportCapabilities;
  connect(options: TransportConnectOptions): Promise<TransportConnection>;
}
