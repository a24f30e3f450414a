/**
 * The test hub: everything a module author needs in a unit test, on an isolated memory broker — routes from a table
 * or a deployment manifest, modules connected to it, messages injected into inputs, outputs and `$upstream`
 * collected, desired properties set and reported ones observed, methods invoked, modules taken offline and back,
 * and (optionally) time under the test's control.
 */
import type { Clock } from '../clock.js';
import { systemClock } from '../clock.js';
import { type InternalConnectOptions, ModuleClientImpl, observeSends } from '../core/client.js';
import type { ModuleContract } from '../core/contract.js';
import { type DeadLetterInfo, decodeEnvelope, type EnvelopeHeader } from '../core/envelope.js';
import type { JsonObject } from '../core/twin.js';
import type { ConnectOptions, MethodResult, ModuleClient, TwinSection } from '../core/types.js';
import type { Presence } from '../core/wire.js';
import { EdgeKitError } from '../errors.js';
import { addresses, checkName, operatorIdentity } from '../names.js';
import { planAccess } from '../service/access.js';
import { readDeployment } from '../service/deployment.js';
import {
  deployRoutes,
  type InjectOptions,
  injectMessage,
  invokeAsService,
  type RoutesInput,
  readPresence,
  readTwin,
  updateDesired,
} from '../service/operations.js';
import type { Transport, TransportConnection } from '../transport.js';
import { MemoryBroker } from '../transports/memory/broker.js';
import { ManualClock } from './manual-clock.js';

/** A message as the test hub observed it. */
export interface ObservedMessage<T = unknown> {
  /** The body decoded as JSON when its content type is `application/json`, else the raw bytes. */
  readonly body: T;
  readonly bytes: Uint8Array;
  readonly messageId: string;
  readonly correlationId: string | undefined;
  readonly contentType: string | undefined;
  readonly properties: Readonly<Record<string, string>>;
  readonly source: { readonly deviceId: string; readonly moduleId: string; readonly output?: string };
  /** Set on dead letters: why the message was given up. */
  readonly deadLetter: DeadLetterInfo | undefined;
}

/** Options for waiting in the test hub. */
export interface WaitOptions {
  /** Real milliseconds to wait before failing the test (default 5 000). */
  readonly timeoutInMs?: number;
}

/** Messages collected from one place, in arrival order. */
export interface MessageCollector<T = unknown> extends AsyncIterable<ObservedMessage<T>> {
  /** Everything collected so far. */
  readonly messages: readonly ObservedMessage<T>[];
  /** The next message not yet taken by `next()`; rejects with `timeout` if none arrives in time. */
  next(options?: WaitOptions): Promise<ObservedMessage<T>>;
  /** Resolves once `count` messages have been collected (in total), with all of them. */
  waitFor(count: number, options?: WaitOptions): Promise<readonly ObservedMessage<T>[]>;
}

class Collector<T> implements MessageCollector<T> {
  readonly messages: ObservedMessage<T>[] = [];
  private taken = 0;
  private waiters: Array<() => void> = [];

  constructor(private readonly what: string) {}

  push(message: ObservedMessage<T>): void {
    this.messages.push(message);
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }

  private wait(done: () => boolean, options: WaitOptions, describe: () => string): Promise<void> {
    if (done()) return Promise.resolve();
    const timeout = options.timeoutInMs ?? 5_000;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== check);
        reject(new EdgeKitError('timeout', `${describe()} within ${timeout} ms`));
      }, timeout);
      const check = () => {
        if (done()) {
          clearTimeout(timer);
          resolve();
        } else this.waiters.push(check);
      };
      this.waiters.push(check);
    });
  }

  async next(options: WaitOptions = {}): Promise<ObservedMessage<T>> {
    await this.wait(
      () => this.messages.length > this.taken,
      options,
      () => `no message on ${this.what}`,
    );
    return this.messages[this.taken++] as ObservedMessage<T>;
  }

  async waitFor(count: number, options: WaitOptions = {}): Promise<readonly ObservedMessage<T>[]> {
    await this.wait(
      () => this.messages.length >= count,
      options,
      () => `only ${this.messages.length} of ${count} messages on ${this.what}`,
    );
    return this.messages;
  }

  async *[Symbol.asyncIterator](): AsyncIterator<ObservedMessage<T>> {
    for (;;) yield await this.next({ timeoutInMs: 2 ** 31 - 1 });
  }
}

const textDecoder = new TextDecoder();

function observed(header: EnvelopeHeader, body: Uint8Array): ObservedMessage {
  let value: unknown = body;
  if (header.contentType === 'application/json') {
    try {
      value = JSON.parse(textDecoder.decode(body));
    } catch {
      value = body;
    }
  }
  return {
    body: value,
    bytes: body,
    messageId: header.messageId,
    correlationId: header.correlationId,
    contentType: header.contentType,
    properties: header.properties,
    source: {
      deviceId: header.sourceDeviceId,
      moduleId: header.sourceModuleId,
      ...(header.sourceOutput === undefined ? {} : { output: header.sourceOutput }),
    },
    deadLetter: header.deadLetter,
  };
}

/** Options for {@link createTestHub}. */
export interface TestHubOptions {
  /** Default `test-device`. */
  readonly deviceId?: string;
  /** The route table (name → route), as in a deployment manifest. */
  readonly routes?: RoutesInput;
  /** An IoT Edge deployment manifest: its `$edgeHub` routes and each module's desired properties are applied. */
  readonly manifest?: unknown;
  /** `new ManualClock()` puts TTLs, timeouts, retries and reconnects under the test's control. Default: real time. */
  readonly clock?: Clock;
  /**
   * With a `manifest`: the hub's broker enforces the deployment's access plan (`planAccess`), so a module that does
   * more than its deployment allows — consumes another's input, publishes where no route leads, writes another's
   * twin — fails with `not-authorized` as it would on a broker configured by `edgekit identities`. Default false.
   */
  readonly enforceAccess?: boolean;
}

/** Options for {@link TestHub.connect}. */
export type HubConnectOptions = Partial<Omit<ConnectOptions, 'transport' | 'clock'>> & { readonly moduleId: string };

/**
 * An isolated memory broker plus helpers to drive and observe modules in a unit test.
 *
 * @example
 * ```ts
 * const hub = await createTestHub({ routes: { alerts: 'FROM /messages/modules/filter/outputs/alerts INTO $upstream' } });
 * const filter = await hub.connect(Filter, { moduleId: 'filter' });
 * await startFilter(filter);
 * await hub.send('filter', 'telemetry', { temperature: 40 });
 * expect((await hub.upstream().next()).body).toMatchObject({ temperature: 40 });
 * await hub.close();
 * ```
 */
export class TestHub implements AsyncDisposable {
  readonly broker: MemoryBroker;
  readonly clock: Clock;
  readonly deviceId: string;
  /** Errors the connected modules reported through `onError` (dead letters, rejected desired patches…). */
  readonly errors: EdgeKitError[] = [];
  private readonly clients = new Map<string, ModuleClient<ModuleContract>>();
  private readonly outputs = new Map<string, Collector<unknown>>();
  private readonly queues = new Map<string, Collector<unknown>>();
  private conn!: TransportConnection;
  private manifestDesired: Record<string, JsonObject> = {};

  /** @internal use {@link createTestHub} */
  constructor(options: TestHubOptions) {
    this.clock = options.clock ?? systemClock;
    this.deviceId = checkName('device id', options.deviceId ?? 'test-device');
    if (options.enforceAccess === true && options.manifest === undefined) {
      throw new TypeError('createTestHub: enforceAccess needs the manifest whose access plan to enforce');
    }
    const access =
      options.enforceAccess === true
        ? planAccess(readDeployment(options.manifest), this.deviceId).principals
        : undefined;
    this.broker = new MemoryBroker({ clock: this.clock, ...(access === undefined ? {} : { access }) });
  }

  /** @internal */
  async init(options: TestHubOptions): Promise<void> {
    // The operator of the access plan, when the broker enforces one.
    this.conn = await this.broker.transport().connect({ clientId: '$testhub', identity: operatorIdentity('operator') });
    let routes = options.routes;
    if (options.manifest !== undefined) {
      const deployment = readDeployment(options.manifest);
      routes = { ...deployment.routes, ...routes };
      this.manifestDesired = { ...deployment.desired };
    }
    if (routes) await this.setRoutes(routes);
    for (const [moduleId, desired] of Object.entries(this.manifestDesired)) {
      if (Object.keys(desired).length > 0) await this.setDesired(moduleId, desired);
    }
  }

  /** A transport onto this hub's broker, for modules connected by other means. */
  transport(): Transport {
    return this.broker.transport();
  }

  /** Moves a {@link ManualClock} forward; fails when the hub runs on real time. */
  advance(ms: number): Promise<void> {
    if (!(this.clock instanceof ManualClock))
      throw new TypeError('advance(): create the hub with { clock: new ManualClock() }');
    return this.clock.advance(ms);
  }

  /**
   * Connects a module to the hub. Reconnects are fast (10 ms initial backoff) and errors are collected in
   * {@link errors} unless you pass `onError`.
   */
  async connect<C extends ModuleContract>(contract: C, options: HubConnectOptions): Promise<ModuleClient<C>> {
    const moduleId = checkName('module id', options.moduleId);
    const internal: InternalConnectOptions = {
      reconnect: { initialDelayInMs: 10, maxDelayInMs: 200 },
      retryDelayInMs: 10,
      onError: (e) => this.errors.push(e),
      ...options,
      deviceId: options.deviceId ?? this.deviceId,
      moduleId,
      transport: this.broker.transport(),
      clock: this.clock,
      [observeSends]: (output, header, body) => this.outputCollector(moduleId, output).push(observed(header, body)),
    };
    const client = new ModuleClientImpl(contract, internal);
    await client.start(options.abortSignal);
    const typedClient = client as unknown as ModuleClient<C>;
    this.clients.set(moduleId, typedClient as unknown as ModuleClient<ModuleContract>);
    return typedClient;
  }

  /** Replaces the route table; modules pick it up live. A table with an invalid route is rejected whole. */
  setRoutes(routes: RoutesInput, options: { defaultTimeToLiveSecs?: number } = {}): Promise<void> {
    return deployRoutes(this.conn, this.deviceId, routes, options);
  }

  /**
   * Injects a message into a module's input, as if routed there. Bodies that are not `Uint8Array` are sent as JSON
   * (`application/json`, `utf-8`).
   */
  send(moduleId: string, input: string, body: unknown, options: InjectOptions = {}): Promise<string> {
    const raw = body instanceof Uint8Array;
    const bytes = raw ? body : new TextEncoder().encode(JSON.stringify(body));
    return injectMessage(this.conn, this.clock, { deviceId: this.deviceId, moduleId, input }, bytes, {
      ...(raw ? {} : { contentType: 'application/json', contentEncoding: 'utf-8' }),
      ...options,
    });
  }

  /** Publishes raw bytes (not an envelope) on a module's input: what garbage from the wire looks like. */
  async sendRaw(moduleId: string, input: string, bytes: Uint8Array): Promise<void> {
    await this.conn.publish(
      addresses.input(this.deviceId, checkName('module id', moduleId), checkName('input', input)),
      bytes,
    );
  }

  private outputCollector(moduleId: string, output: string): Collector<unknown> {
    const key = `${moduleId}/${output}`;
    let c = this.outputs.get(key);
    if (!c) {
      c = new Collector(`output ${key}`);
      this.outputs.set(key, c);
    }
    return c;
  }

  /** Every message a hub-connected module sent on `output`, whether or not a route took it anywhere. */
  output<T = unknown>(moduleId: string, output: string): MessageCollector<T> {
    return this.outputCollector(checkName('module id', moduleId), checkName('output', output)) as MessageCollector<T>;
  }

  private queueCollector(address: string, what: string): Collector<unknown> {
    let c = this.queues.get(address);
    if (c) return c;
    const collector = new Collector<unknown>(what);
    this.queues.set(address, collector);
    void this.conn.consume(address, { prefetch: 1000 }, (delivery) => {
      try {
        const env = decodeEnvelope(delivery.bytes);
        collector.push(observed(env.header, env.body));
      } catch (error) {
        this.errors.push(error as EdgeKitError);
      }
      delivery.ack();
    });
    c = collector;
    return c;
  }

  /** Messages routed to `$upstream` (the cloud). */
  upstream<T = unknown>(): MessageCollector<T> {
    return this.queueCollector(addresses.upstream(this.deviceId), '$upstream') as MessageCollector<T>;
  }

  /** Messages a module gave up on (handler kept failing, undecodable bytes, schema failures). */
  deadLetters<T = unknown>(moduleId: string): MessageCollector<T> {
    checkName('module id', moduleId);
    return this.queueCollector(
      addresses.deadLetter(this.deviceId, moduleId),
      `dead letters of ${moduleId}`,
    ) as MessageCollector<T>;
  }

  /** Merges a patch into a module's desired properties; resolves to the new version. */
  async setDesired(moduleId: string, patch: JsonObject, options: { ifVersion?: number } = {}): Promise<number> {
    return (await updateDesired(this.conn, this.deviceId, moduleId, patch, options)).version;
  }

  /** A module's reported properties as the broker has them. */
  async reported<T = JsonObject>(moduleId: string): Promise<TwinSection<T>> {
    return (await readTwin(this.conn, this.deviceId, checkName('module id', moduleId))).reported as TwinSection<T>;
  }

  /** Waits until a module's reported properties satisfy `predicate`; resolves to them. */
  async waitForReported<T = JsonObject>(
    moduleId: string,
    predicate: (reported: T, version: number) => boolean,
    options: WaitOptions = {},
  ): Promise<TwinSection<T>> {
    const key = addresses.reported(this.deviceId, checkName('module id', moduleId));
    const timeout = options.timeoutInMs ?? 5_000;
    let last: TwinSection<T> | undefined;
    return new Promise((resolve, reject) => {
      let stop: (() => Promise<void>) | undefined;
      const timer = setTimeout(() => {
        void stop?.();
        reject(
          new EdgeKitError(
            'timeout',
            `reported properties of ${moduleId} did not match within ${timeout} ms (last: ${JSON.stringify(last)})`,
          ),
        );
      }, timeout);
      void this.conn
        .watchRetained(key, () => {
          void this.reported<T>(moduleId).then((section) => {
            last = section;
            if (predicate(section.properties, section.version)) {
              clearTimeout(timer);
              void stop?.();
              resolve(section);
            }
          });
        })
        .then((sub) => {
          stop = () => sub.close();
        });
    });
  }

  /** Invokes a module's method as an operator; resolves to `{ ok, status, payload }`. Default timeout 30 s. */
  invoke(
    moduleId: string,
    method: string,
    payload?: unknown,
    options: { timeoutInMs?: number } = {},
  ): Promise<MethodResult<unknown>> {
    return invokeAsService(
      this.conn,
      this.clock,
      { deviceId: this.deviceId, moduleId },
      method,
      payload ?? null,
      options,
    );
  }

  /** A module's presence record. */
  presence(moduleId: string): Promise<Presence | undefined> {
    return readPresence(this.conn, this.deviceId, checkName('module id', moduleId));
  }

  /** Cuts a module's connection abruptly (its last will fires) and refuses reconnects until {@link bringOnline}. */
  async takeOffline(moduleId: string): Promise<void> {
    this.broker.disconnect(`${this.deviceId}/${checkName('module id', moduleId)}`, { refuse: true });
    await new Promise<void>((resolve) => setImmediate(resolve));
  }

  /**
   * Makes a module's link go silent, as a black-holing network does: nothing reaches it or the broker, its operations
   * stay pending, nothing is closed — until {@link takeOffline} cuts it. For testing what a module does in a partition
   * (its timeouts, a bounded `close()`).
   */
  async partition(moduleId: string): Promise<void> {
    this.broker.stall(`${this.deviceId}/${checkName('module id', moduleId)}`);
    await new Promise<void>((resolve) => setImmediate(resolve));
  }

  /** Lets a module reconnect and waits until it is connected again (advancing a manual clock as needed). */
  async bringOnline(moduleId: string, options: WaitOptions = {}): Promise<void> {
    const clientId = `${this.deviceId}/${checkName('module id', moduleId)}`;
    this.broker.restore(clientId);
    const client = this.clients.get(moduleId);
    if (!client) return;
    const deadline = Date.now() + (options.timeoutInMs ?? 5_000);
    while (client.state.state !== 'connected') {
      if (Date.now() > deadline)
        throw new EdgeKitError('timeout', `${moduleId} did not reconnect in time (state ${client.state.state})`);
      if (this.clock instanceof ManualClock) await this.clock.advance(50);
      else await new Promise((resolve) => setTimeout(resolve, 5));
    }
  }

  /** Closes every module connected through the hub, then the hub. */
  async close(): Promise<void> {
    await Promise.all([...this.clients.values()].map((c) => c.close()));
    this.clients.clear();
    await this.conn.close();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/**
 * Starts a test hub: an isolated memory broker with the given routes (or deployment manifest) applied.
 */
export async function createTestHub(options: TestHubOptions = {}): Promise<TestHub> {
  if (typeof options !== 'object' || options === null)
    throw new TypeError('createTestHub(options): options must be an object');
  const hub = new TestHub(options);
  await hub.init(options);
  return hub;
}
