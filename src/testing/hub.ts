/**
 * The test hub: everything a module author needs in a unit test, on an isolated memory broker — routes from a table
 * or a deployment manifest, modules connected to it, messages injected into inputs, outputs and `$upstream`
 * collected, desired properties set and reported ones observed, methods invoked, modules taken offline and back,
 * and (optionally) time under the test's control.
 */
import type { Clock } from '../clock.js';
import { systemClock } from '../clock.js';
import type { Codec } from '../codecs/codec.js';
import { type InternalConnectOptions, ModuleClientImpl, observeSends } from '../core/client.js';
import type { InputBody, InputName, ModuleContract, OutputBody, OutputName } from '../core/contract.js';
import { type DeadLetterInfo, decodeEnvelope, type EnvelopeHeader } from '../core/envelope.js';
import type { JsonObject } from '../core/twin.js';
import type { ConnectOptions, MethodResult, ModuleClient, TwinSection } from '../core/types.js';
import type { Presence } from '../core/wire.js';
import { EdgeKitError, messageOf } from '../errors.js';
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

  /** Messages whose body is still being decoded (an asynchronous codec), kept in arrival order. */
  private decoding: Promise<void> = Promise.resolve();
  private pendingDecodes = 0;

  constructor(private readonly what: string) {}

  /** Adds a message whose body may still be decoding; messages are collected in the order they were added. */
  add(message: ObservedMessage<T> | Promise<ObservedMessage<T>>): void {
    if (!(message instanceof Promise) && this.pendingDecodes === 0) {
      this.push(message);
      return;
    }
    this.pendingDecodes += 1;
    this.decoding = this.decoding.then(async () => {
      this.push(await message);
      this.pendingDecodes -= 1;
    });
  }

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

/**
 * A message as a test sees it: its body decoded with `codec` when the hub knows the codec of the output it came from
 * (a body that codec cannot read stays bytes), else parsed as JSON when it says it is JSON, else the bytes.
 */
function observed(
  header: EnvelopeHeader,
  body: Uint8Array,
  codec?: Codec<unknown>,
): ObservedMessage | Promise<ObservedMessage> {
  if (codec !== undefined) {
    let decoded: unknown;
    try {
      decoded = codec.decode(body);
    } catch {
      return observed(header, body);
    }
    return decoded instanceof Promise
      ? decoded.then(
          (value) => message(header, body, value),
          () => message(header, body, body),
        )
      : message(header, body, decoded);
  }
  let value: unknown = body;
  if (header.contentType === 'application/json') {
    try {
      value = JSON.parse(textDecoder.decode(body));
    } catch {
      value = body;
    }
  }
  return message(header, body, value);
}

function message(header: EnvelopeHeader, body: Uint8Array, value: unknown): ObservedMessage {
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

/** The modules of a test hub's device, by module id, with their contracts: `{ filter: Filter, sensor: Sensor }`. */
export type HubModules = Readonly<Record<string, ModuleContract>>;

/** A module id of the hub: one of {@link TestHubOptions.modules} when they are given, any string otherwise. */
export type HubModuleId<M extends HubModules> = string extends keyof M ? string : Extract<keyof M, string>;
/** An input of module `N`: one its contract declares when the hub knows it, any string otherwise. */
export type HubInputName<M extends HubModules, N extends string> = string extends keyof M
  ? string
  : N extends keyof M
    ? InputName<M[N]>
    : string;
/** An output of module `N`, likewise. */
export type HubOutputName<M extends HubModules, N extends string> = string extends keyof M
  ? string
  : N extends keyof M
    ? OutputName<M[N]>
    : string;
/** The body of input `I` of module `N` as its contract types it (`unknown` when the hub does not know the module). */
export type HubInputBody<M extends HubModules, N extends string, I extends string> = string extends keyof M
  ? unknown
  : N extends keyof M
    ? InputBody<M[N], I>
    : unknown;
/** The body of output `O` of module `N`, as its contract's codec decodes it. */
export type HubOutputBody<M extends HubModules, N extends string, O extends string> = string extends keyof M
  ? unknown
  : N extends keyof M
    ? OutputBody<M[N], O>
    : unknown;

/** Options for {@link createTestHub}. */
export interface TestHubOptions<M extends HubModules = HubModules> {
  /**
   * The device's modules and their contracts. The hub then types and checks what a test names: `send`, `output`,
   * `setDesired`, `invoke`… take only these module ids and the inputs and outputs their contracts declare (a typo
   * fails at compile time, and at once at run time instead of as a timeout later); `send` encodes bodies with the
   * input's codec, and `output` decodes with the output's. Modules connected with {@link TestHub.connect} are known
   * to the hub the same way from then on.
   */
  readonly modules?: M;
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
export class TestHub<M extends HubModules = HubModules> implements AsyncDisposable {
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
  /** Contracts by module id: those given as `modules`, and those of modules connected through the hub. */
  private readonly contracts = new Map<string, ModuleContract>();
  /** Whether the test declared the modules (`modules`): then only those connect. */
  private readonly registry: boolean;
  /** The module ids the device has, when the test said (`modules`, a manifest); `undefined`: any. */
  private declared: Set<string> | undefined;

  /** @internal use {@link createTestHub} */
  constructor(options: TestHubOptions<M>) {
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
    this.registry = options.modules !== undefined;
    if (options.modules !== undefined) {
      if (typeof options.modules !== 'object' || options.modules === null) {
        throw new TypeError('createTestHub: modules must be an object of module id → contract (defineModule(...))');
      }
      for (const [moduleId, contract] of Object.entries(options.modules)) {
        checkName('module id', moduleId);
        if (typeof contract?.codecOf !== 'function') {
          throw new TypeError(`createTestHub: modules.${moduleId} must be a contract made by defineModule()`);
        }
        this.contracts.set(moduleId, contract);
      }
      this.declared = new Set(this.contracts.keys());
    }
  }

  /** Checks a module id a test names: valid, and one of the device's modules when the hub knows them. */
  private moduleOf(what: string, moduleId: string): string {
    checkName('module id', moduleId);
    if (this.declared !== undefined && !this.declared.has(moduleId) && !this.clients.has(moduleId)) {
      throw new TypeError(
        `${what}: the device has no module ${JSON.stringify(moduleId)} (modules: ${[...this.declared].join(', ') || 'none'})`,
      );
    }
    return moduleId;
  }

  /** The codec a known module's output encodes with, to decode what it sent; `undefined` when unknown. */
  private sentCodec(moduleId: string | undefined, output: string | undefined): Codec<unknown> | undefined {
    if (moduleId === undefined || output === undefined) return undefined;
    const contract = this.contracts.get(moduleId);
    return contract === undefined || contract.open ? undefined : contract.codecOf('output', output);
  }

  /** The codec of a module's input or output when the hub knows its contract; refuses a name the contract lacks. */
  private codecOf(what: string, moduleId: string, kind: 'input' | 'output', name: string) {
    checkName(kind, name);
    const contract = this.contracts.get(moduleId);
    if (contract === undefined || contract.open) return undefined;
    const codec = contract.codecOf(kind, name);
    if (codec === undefined) {
      const names = Object.keys((kind === 'input' ? contract.definition.inputs : contract.definition.outputs) ?? {});
      throw new TypeError(
        `${what}: module ${moduleId} has no ${kind} ${JSON.stringify(name)} (${kind}s: ${names.join(', ') || 'none'})`,
      );
    }
    return codec;
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
      this.declared = new Set([...(this.declared ?? []), ...deployment.modules]);
    }
    if (routes) await this.setRoutes(routes);
    for (const [moduleId, desired] of Object.entries(this.manifestDesired)) {
      if (Object.keys(desired).length > 0) await updateDesired(this.conn, this.deviceId, moduleId, desired);
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
    if (this.registry && !this.contracts.has(moduleId)) {
      throw new TypeError(
        `connect: ${JSON.stringify(moduleId)} is not one of the hub's modules (${[...this.contracts.keys()].join(', ')})`,
      );
    }
    this.contracts.set(moduleId, contract);
    const internal: InternalConnectOptions = {
      reconnect: { initialDelayInMs: 10, maxDelayInMs: 200 },
      retryDelayInMs: 10,
      onError: (e) => this.errors.push(e),
      ...options,
      deviceId: options.deviceId ?? this.deviceId,
      moduleId,
      transport: this.broker.transport(),
      clock: this.clock,
      [observeSends]: (output, header, body) =>
        this.outputCollector(moduleId, output).add(observed(header, body, this.sentCodec(moduleId, output))),
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
   * Injects a message into a module's input, as if routed there. When the hub knows the module's contract (from
   * `modules`, or once the module connected through the hub) the body is encoded with the input's codec, and an
   * input the contract lacks is refused at once; otherwise bodies that are not `Uint8Array` are sent as JSON
   * (`application/json`, `utf-8`). A `Uint8Array` is sent as it is. Resolves to the message id.
   */
  async send<N extends HubModuleId<M>, I extends HubInputName<M, N>>(
    moduleId: N,
    input: I,
    body: HubInputBody<M, N, I> | Uint8Array,
    options: InjectOptions = {},
  ): Promise<string> {
    this.moduleOf('send', moduleId);
    const codec = this.codecOf('send', moduleId, 'input', input);
    const raw = body instanceof Uint8Array;
    let bytes: Uint8Array;
    let format: { contentType?: string; contentEncoding?: string } = {};
    if (raw) bytes = body;
    else if (codec !== undefined) {
      bytes = await codec.encode(body);
      format = {
        ...(codec.contentType === undefined ? {} : { contentType: codec.contentType }),
        ...(codec.contentEncoding === undefined ? {} : { contentEncoding: codec.contentEncoding }),
      };
    } else {
      bytes = new TextEncoder().encode(JSON.stringify(body));
      format = { contentType: 'application/json', contentEncoding: 'utf-8' };
    }
    return injectMessage(this.conn, this.clock, { deviceId: this.deviceId, moduleId, input }, bytes, {
      ...format,
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
  output<N extends HubModuleId<M>, O extends HubOutputName<M, N>>(
    moduleId: N,
    output: O,
  ): MessageCollector<HubOutputBody<M, N, O>>;
  /**
   * The same with the body type given, on a hub that does not know the modules: `hub.output<Reading>('filter',
   * 'output1')`. (A hub created with `modules` types bodies from the contracts.)
   */
  output<T>(moduleId: string extends keyof M ? string : never, output: string): MessageCollector<T>;
  output(moduleId: string, output: string): MessageCollector<unknown> {
    this.moduleOf('output', moduleId);
    this.codecOf('output', moduleId, 'output', output);
    return this.outputCollector(moduleId, output);
  }

  private queueCollector(address: string, what: string): Collector<unknown> {
    let c = this.queues.get(address);
    if (c) return c;
    const collector = new Collector<unknown>(what);
    this.queues.set(address, collector);
    void this.conn.consume(address, { prefetch: 1000 }, (delivery) => {
      try {
        const env = decodeEnvelope(delivery.bytes);
        collector.add(
          observed(env.header, env.body, this.sentCodec(env.header.sourceModuleId, env.header.sourceOutput)),
        );
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
  deadLetters<T = unknown>(moduleId: HubModuleId<M>): MessageCollector<T> {
    this.moduleOf('deadLetters', moduleId);
    return this.queueCollector(
      addresses.deadLetter(this.deviceId, moduleId),
      `dead letters of ${moduleId}`,
    ) as MessageCollector<T>;
  }

  /** Merges a patch into a module's desired properties; resolves to the new version. */
  async setDesired(moduleId: HubModuleId<M>, patch: JsonObject, options: { ifVersion?: number } = {}): Promise<number> {
    this.moduleOf('setDesired', moduleId);
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

  /**
   * Waits until `condition` returns a truthy value (or a promise of one) and resolves to it; a falsy value or a throw
   * — an `expect(…)` that does not hold yet — means "not yet". Tried at once and then every few milliseconds of real
   * time; with a {@link ManualClock}, each try also moves it 10 ms, so retries and timers due meanwhile run. Rejects
   * with `timeout` after `timeoutInMs` (default 5 000), with the condition's last error as the cause.
   *
   * @example
   * ```ts
   * await hub.waitUntil(async () => (await hub.reported('filter')).properties.TemperatureThreshold === 30);
   * await hub.waitUntil(() => hub.errors.length === 1);
   * ```
   */
  async waitUntil<T>(
    condition: () => T | Promise<T>,
    options: WaitOptions = {},
  ): Promise<Exclude<T, false | undefined | null | 0 | ''>> {
    if (typeof condition !== 'function') throw new TypeError('waitUntil(condition): condition must be a function');
    const timeout = options.timeoutInMs ?? 5_000;
    const deadline = Date.now() + timeout;
    let lastError: unknown;
    for (;;) {
      try {
        const value = await condition();
        lastError = undefined;
        if (value) return value as Exclude<T, false | undefined | null | 0 | ''>;
      } catch (error) {
        lastError = error;
      }
      if (Date.now() >= deadline) {
        const why = lastError === undefined ? 'it stayed false' : `last: ${messageOf(lastError)}`;
        throw new EdgeKitError('timeout', `waitUntil: the condition did not hold within ${timeout} ms (${why})`, {
          ...(lastError === undefined ? {} : { cause: lastError }),
        });
      }
      if (this.clock instanceof ManualClock) await this.clock.advance(10);
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
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
export async function createTestHub<M extends HubModules = HubModules>(
  options: TestHubOptions<M> = {},
): Promise<TestHub<M>> {
  if (typeof options !== 'object' || options === null)
    throw new TypeError('createTestHub(options): options must be an object');
  const hub = new TestHub<M>(options);
  await hub.init(options);
  return hub;
}
