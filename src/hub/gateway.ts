/**
 * The protocol gateway between Azure IoT Edge modules and edgekit. An MQTT server library (aedes) speaks MQTT 3.1.1 to
 * the Azure device SDK; this file decides what each packet means. Every authenticated Azure module gets one edgekit
 * module client (untyped: bodies pass through as bytes) on the configured transport, for as long as its MQTT
 * connection lasts, so routes, twins, methods, presence, dead letters and at-least-once delivery are the core's, the
 * same as for an edgekit module:
 *
 * - an output publish is `send` on that client, PUBACKed once the broker has every routed copy;
 * - each input the routes lead to is consumed and handed to the module one message at a time, acknowledged to the
 *   broker only after the module's PUBACK (what edgeHub does), so a module that dies mid-stream gets it again;
 * - twin GET, reported patches and desired patches map onto the client's twin; method calls onto its methods.
 *
 * Aedes never forwards one client's publish to another: every packet a module receives is one this file addressed
 * to it (`authorizeForward` lets only those through), so modules cannot see or forge each other's traffic.
 */
import type { Aedes, AuthenticateError, Client, PublishPacket, Subscription } from 'aedes';
import { deferred } from '../core/async.js';
import { type AnyMethodHandler, ModuleClientImpl, observeRoutes, presenceSdk, serveAnyMethod } from '../core/client.js';
import { untypedModule } from '../core/contract.js';
import type { InboundMessage, MethodAnswer, MethodContext, Registration } from '../core/types.js';
import { EDGEKIT_SDK } from '../core/wire.js';
import { EdgeKitError, isEdgeKitError, messageOf } from '../errors.js';
import { isName } from '../names.js';
import type { RouteTable } from '../routing/index.js';
import type { Transport } from '../transport.js';
import {
  type AzureOutput,
  desiredPatchTopic,
  formatInputTopic,
  isDesiredSubscription,
  isInputSubscription,
  isMethodSubscription,
  methodRequestTopic,
  parseMethodResponseTopic,
  parseOutputTopic,
  parseReportedPatchTopic,
  parseTwinGetTopic,
  subscriptionAllowed,
  twinResponseTopic,
} from './azure-topics.js';
import { verifySasToken } from './sas.js';

/** Marks the packets the gateway addresses to a module: the only ones aedes may forward. */
const FROM_HUB = '\u0000edgekit-hub';

/** MQTT CONNACK return codes (3.1.1). */
const SERVER_UNAVAILABLE = 3;
const BAD_USERNAME_OR_PASSWORD = 4;
const NOT_AUTHORIZED = 5;

/** Errors of `send` that a retry can cure: the module's SDK gets no PUBACK and sends again after reconnecting. */
const TRANSIENT = new Set(['connection-lost', 'connection-failed', 'closed', 'timeout', 'offline-queue-full']);

/** What the gateway needs from the hub. */
export interface GatewayOptions {
  readonly deviceId: string;
  readonly hubHostName: string;
  transportFor(moduleId: string): Transport | Promise<Transport>;
  keyOf(moduleId: string): string | undefined;
  readonly inputAckTimeoutInMs: number;
  /** How long an edgekit session may drain when its Azure module disconnects. */
  readonly drainTimeoutInMs: number;
  onError(error: EdgeKitError): void;
}

/** Counters since the hub started. */
export interface HubStats {
  /** Azure module connections accepted. */
  readonly connections: number;
  /** Connections refused: unknown module, wrong device, bad or expired SAS token. */
  readonly refused: number;
  /** Output messages taken from Azure modules (PUBACKed after the broker had every routed copy). */
  readonly outputs: number;
  /** Output messages dropped because edgekit cannot carry them (reported through `onError`). */
  readonly outputsRefused: number;
  /** Input messages an Azure module acknowledged. */
  readonly inputs: number;
  /** Inputs not acknowledged within `inputAckTimeoutInMs` (the connection was closed; the broker redelivers). */
  readonly inputTimeouts: number;
  /** Publishes to topics edgeHub does not know, dropped (reported through `onError`). */
  readonly unknownTopics: number;
}

type Counters = { -readonly [K in keyof HubStats]: HubStats[K] };

function authError(returnCode: number, message: string): AuthenticateError {
  return Object.assign(new Error(message), { returnCode }) as AuthenticateError;
}

const never = new Promise<never>(() => {});

/** One Azure module's connection and the edgekit client that speaks for it. */
class Session {
  edge: ModuleClientImpl<typeof untypedModule> | undefined;
  ended = false;
  private table: RouteTable | undefined;
  /** Resolves when the module subscribes to its inputs: deliveries wait for it (the SDK drops inputs before). */
  private readonly inputsSubscribed = deferred<void>();
  methodsSubscribed = false;
  /** Registrations of the inputs being consumed, until each is in place. */
  private readonly attaching = new Set<Promise<unknown>>();
  private desiredRegistration: Promise<Registration> | undefined;
  private readonly inputs = new Set<string>();
  /** Inputs go to the module one at a time, as edgeHub sends them. */
  private lane: Promise<unknown> = Promise.resolve();
  private awaitingAck: (() => void) | undefined;
  private ackTimer: ReturnType<typeof setTimeout> | undefined;
  private readonly methodCalls = new Map<string, (answer: MethodAnswer<unknown>) => void>();
  private nextRid = 0;

  constructor(
    readonly client: Client,
    readonly moduleId: string,
    private readonly gateway: Gateway,
  ) {}

  publish(topic: string, payload: Uint8Array | string, qos: 0 | 1): void {
    const packet = {
      cmd: 'publish',
      topic,
      payload:
        typeof payload === 'string'
          ? Buffer.from(payload)
          : Buffer.from(payload.buffer, payload.byteOffset, payload.length),
      qos,
      retain: false,
      dup: false,
      clientId: FROM_HUB,
    } as PublishPacket;
    this.client.publish(packet, (error) => {
      if (error) this.gateway.report('transport-error', `a packet to ${this.moduleId} could not be written`, error);
    });
  }

  onRoutes(table: RouteTable): void {
    this.table = table;
    this.followInputs();
  }

  onSubscribed(subscription: Subscription): void {
    const { deviceId } = this.gateway.options;
    if (isInputSubscription(subscription.topic, deviceId, this.moduleId)) {
      this.inputsSubscribed.resolve();
    } else if (isDesiredSubscription(subscription.topic)) {
      this.followDesired();
    } else if (isMethodSubscription(subscription.topic)) {
      this.methodsSubscribed = true;
    }
  }

  /**
   * Consumes every input of this module that a route leads to, from the start of the session (so on a broker whose
   * queues live in the consumer's session, they exist from the module's first connection); deliveries wait until
   * the module has subscribed to its inputs.
   */
  private followInputs(): void {
    const edge = this.edge;
    if (!edge || !this.table || this.ended) return;
    for (const route of this.table.routes) {
      const sink = route.sink;
      if (sink.kind !== 'module' || sink.module !== this.moduleId || this.inputs.has(sink.input)) continue;
      this.inputs.add(sink.input);
      const registration = edge
        .onInput(sink.input, (message) => this.deliver(message as InboundMessage<Uint8Array>))
        .catch((error: unknown) => {
          this.inputs.delete(sink.input);
          if (!this.ended)
            this.gateway.report(
              'transport-error',
              `input "${sink.input}" of ${this.moduleId} could not be consumed`,
              error,
            );
        })
        .finally(() => this.attaching.delete(registration));
      this.attaching.add(registration);
    }
  }

  /** Resolves once the inputs known so far are consumed. */
  async inputsAttached(): Promise<void> {
    this.followInputs();
    await Promise.all([...this.attaching]);
  }

  private followDesired(): void {
    const edge = this.edge;
    if (!edge || this.desiredRegistration || this.ended) return;
    this.desiredRegistration = edge.onDesired((_desired, patch, version) => {
      if (!this.ended)
        this.publish(desiredPatchTopic(version), JSON.stringify({ ...(patch as object), $version: version }), 0);
    });
    this.desiredRegistration.catch((error: unknown) => {
      this.desiredRegistration = undefined;
      if (!this.ended)
        this.gateway.report('transport-error', `desired properties of ${this.moduleId} could not be followed`, error);
    });
  }

  /** Resolves when the module PUBACKs the message; never settles once the connection is gone (the broker redelivers). */
  private deliver(message: InboundMessage<Uint8Array>): Promise<void> {
    const run = this.lane.then(() => this.inputsSubscribed.promise).then(() => this.deliverNow(message));
    this.lane = run.catch(() => {});
    return run;
  }

  private deliverNow(message: InboundMessage<Uint8Array>): Promise<void> {
    if (this.ended) return never;
    const { deviceId, inputAckTimeoutInMs } = this.gateway.options;
    const topic = formatInputTopic(deviceId, this.moduleId, message.input, {
      properties: message.properties,
      messageId: message.messageId,
      ...(message.correlationId === undefined ? {} : { correlationId: message.correlationId }),
      ...(message.contentType === undefined ? {} : { contentType: message.contentType }),
      ...(message.contentEncoding === undefined ? {} : { contentEncoding: message.contentEncoding }),
      sourceDeviceId: message.source.deviceId,
      sourceModuleId: message.source.moduleId,
    });
    return new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.ackTimer = undefined;
        if (this.ended) return;
        this.awaitingAck = undefined;
        this.gateway.count('inputTimeouts');
        this.gateway.report(
          'timeout',
          `${this.moduleId} did not acknowledge an input within ${inputAckTimeoutInMs} ms; closing its connection (the message is redelivered)`,
        );
        this.client.close();
      }, inputAckTimeoutInMs);
      timer.unref();
      this.ackTimer = timer;
      this.awaitingAck = () => {
        clearTimeout(timer);
        this.ackTimer = undefined;
        this.awaitingAck = undefined;
        this.gateway.count('inputs');
        resolve();
      };
      this.publish(topic, message.body, 1);
    });
  }

  onAck(): void {
    this.awaitingAck?.();
  }

  /** An edgekit caller's method request, for the Azure module. */
  readonly callMethod: AnyMethodHandler = (method, payload, context: MethodContext) => {
    if (this.ended) return Promise.resolve({ status: 503, payload: { message: `${this.moduleId} disconnected` } });
    if (!this.methodsSubscribed) {
      return Promise.resolve({
        status: 501,
        payload: { message: `${this.moduleId} does not serve direct methods (it has not subscribed to them)` },
      });
    }
    if (!isName(method)) {
      return Promise.resolve({ status: 400, payload: { message: 'the method name is not valid' } });
    }
    const rid = (++this.nextRid).toString(16);
    return new Promise<MethodAnswer<unknown>>((resolve, reject) => {
      const onAbort = () => {
        this.methodCalls.delete(rid);
        reject(context.signal.reason);
      };
      context.signal.addEventListener('abort', onAbort, { once: true });
      this.methodCalls.set(rid, (answer) => {
        context.signal.removeEventListener('abort', onAbort);
        this.methodCalls.delete(rid);
        resolve(answer);
      });
      this.publish(methodRequestTopic(method, rid), JSON.stringify(payload ?? null), 0);
    });
  };

  onMethodResponse(status: number, rid: string, payload: Buffer): void {
    const answer = this.methodCalls.get(rid);
    if (!answer) return; // the caller's deadline passed; it has its 504
    try {
      answer({ status, payload: payload.length === 0 ? null : (JSON.parse(payload.toString('utf8')) as unknown) });
    } catch {
      answer({ status: 500, payload: { message: `${this.moduleId} answered with a payload that is not JSON` } });
    }
  }

  async answerTwin(rid: string): Promise<void> {
    const edge = this.edge;
    if (!edge) return;
    try {
      const twin = await edge.getTwin({ timeoutInMs: 10_000 });
      const section = (s: { version: number; properties: unknown }) => ({
        ...(s.properties as object),
        $version: s.version,
      });
      this.publish(
        twinResponseTopic(200, rid),
        JSON.stringify({ desired: section(twin.desired), reported: section(twin.reported) }),
        0,
      );
    } catch (error) {
      // The Azure SDK needs an answer with a body: an empty one crashes it, none leaves getTwin pending for ever.
      this.publish(twinResponseTopic(500, rid), JSON.stringify({ errorCode: 500001, message: messageOf(error) }), 0);
    }
  }

  async answerReported(rid: string, payload: Buffer): Promise<void> {
    const edge = this.edge;
    if (!edge) return;
    let status = 204;
    try {
      const patch = JSON.parse(payload.toString('utf8')) as unknown;
      if (typeof patch !== 'object' || patch === null || Array.isArray(patch)) {
        status = 400;
      } else {
        await edge.report(patch, { timeoutInMs: 10_000 });
      }
    } catch (error) {
      const refused =
        error instanceof SyntaxError ||
        error instanceof TypeError ||
        error instanceof RangeError ||
        (isEdgeKitError(error) && (error.code === 'twin-limit' || error.code === 'validation-failed'));
      status = refused ? 400 : 500;
      this.gateway.report('transport-error', `reported properties of ${this.moduleId} not written`, error);
    }
    this.publish(twinResponseTopic(status, rid), '', 0);
  }

  /** An output of the Azure module: resolves once the broker has every routed copy (then aedes PUBACKs). */
  async output(output: AzureOutput, payload: Buffer): Promise<void> {
    const edge = this.edge;
    if (!edge) throw new EdgeKitError('closed', `${this.moduleId} is not connected`);
    try {
      await edge.send(output.output ?? 'events', new Uint8Array(payload), {
        properties: output.properties,
        ...(output.messageId === undefined ? {} : { messageId: output.messageId }),
        ...(output.correlationId === undefined ? {} : { correlationId: output.correlationId }),
        ...(output.contentType === undefined ? {} : { contentType: output.contentType }),
        ...(output.contentEncoding === undefined ? {} : { contentEncoding: output.contentEncoding }),
      });
      this.gateway.count('outputs');
    } catch (error) {
      if (isEdgeKitError(error) && TRANSIENT.has(error.code)) throw error;
      // Sending it again cannot succeed (too large, an invalid id or property): drop it, loudly.
      this.gateway.count('outputsRefused');
      this.gateway.report(
        isEdgeKitError(error) ? error.code : 'transport-error',
        `an output message of ${this.moduleId} was dropped`,
        error,
      );
    }
  }

  async end(): Promise<void> {
    if (this.ended) return;
    this.ended = true;
    this.awaitingAck = undefined;
    clearTimeout(this.ackTimer);
    for (const answer of [...this.methodCalls.values()]) {
      answer({ status: 503, payload: { message: `${this.moduleId} disconnected before it answered` } });
    }
    await this.edge?.close({ drainTimeoutInMs: this.gateway.options.drainTimeoutInMs });
  }
}

/**
 * What the module's presence names as its software: the SDK the user name's `DeviceClientType` names (its first
 * token, e.g. `azure-iot-device/1.18.4`), through this hub.
 */
function clientSoftware(username: string): string {
  const query = username.indexOf('?');
  let product = '';
  if (query >= 0) {
    try {
      product = (new URLSearchParams(username.slice(query + 1)).get('DeviceClientType') ?? '').split(' ')[0] ?? '';
    } catch {
      product = '';
    }
  }
  product = product.replace(/[^A-Za-z0-9._/-]/g, '').slice(0, 60);
  return `${product || 'azure-iot-sdk'} via ${EDGEKIT_SDK.replace('edgekit/', 'edgekit-hub/')}`;
}

/** Splits an Azure client id `{device}/{module}`. */
function identityOf(clientId: string): { deviceId: string; moduleId: string } | undefined {
  const parts = clientId.split('/');
  if (parts.length !== 2 || !isName(parts[0]) || !isName(parts[1])) return undefined;
  return { deviceId: parts[0], moduleId: parts[1] };
}

/** The edgeHub side of MQTT: aedes hooks and events, and the sessions they lead to. */
export class Gateway {
  private readonly sessions = new Map<string, Session>();
  /** Per module, the opening and closing of sessions in order (a reconnect waits for the old session to end). */
  private readonly lanes = new Map<string, Promise<unknown>>();
  private readonly counters: Counters = {
    connections: 0,
    refused: 0,
    outputs: 0,
    outputsRefused: 0,
    inputs: 0,
    inputTimeouts: 0,
    unknownTopics: 0,
  };
  private closing = false;

  constructor(readonly options: GatewayOptions) {}

  stats(): HubStats {
    return { ...this.counters };
  }

  count(counter: keyof Counters): void {
    this.counters[counter]++;
  }

  report(code: EdgeKitError['code'], message: string, cause?: unknown): void {
    const text = cause === undefined ? message : `${message}: ${messageOf(cause)}`;
    try {
      this.options.onError(new EdgeKitError(code, text, cause === undefined ? {} : { cause }));
    } catch {
      // a throwing onError must not break the gateway
    }
  }

  /** A module's key, or `undefined` when it has none (or reading it failed: reported). */
  keyOf(moduleId: string): string | undefined {
    try {
      const key = this.options.keyOf(moduleId);
      return typeof key === 'string' && key.length > 0 ? key : undefined;
    } catch (error) {
      this.report('invalid-configuration', `the key of ${moduleId} could not be read`, error);
      return undefined;
    }
  }

  /** Module ids with a live session. */
  connected(): string[] {
    return [...this.sessions.keys()].sort();
  }

  sessionOf(moduleId: string): Session | undefined {
    const session = this.sessions.get(moduleId);
    return session && !session.ended ? session : undefined;
  }

  /** Installs the hooks on a new aedes instance. */
  attach(aedes: Aedes): void {
    aedes.preConnect = (_client, packet, done) => {
      // The Azure SDK asks for a persistent session; the edgekit broker keeps what matters (queued inputs, twins),
      // so the MQTT session is clean: nothing aedes could replay would be anything but a duplicate.
      packet.clean = true;
      done(null, true);
    };
    aedes.authenticate = (client, username, password, done) => {
      this.authenticate(client, username, password).then(
        () => done(null, true),
        (error: AuthenticateError) => done(error, false),
      );
    };
    aedes.authorizeSubscribe = (client, subscription, done) => {
      const identity = identityOf(client.id);
      const allowed = identity && subscriptionAllowed(subscription.topic, identity.deviceId, identity.moduleId);
      done(null, allowed ? subscription : null);
    };
    aedes.authorizePublish = (client, packet, done) => {
      if (!client) return done(null);
      this.onPublish(client, packet).then(
        () => done(null),
        (error: unknown) => done(error instanceof Error ? error : new Error(String(error))),
      );
    };
    aedes.authorizeForward = (_client, packet) =>
      (packet as { clientId?: string }).clientId === FROM_HUB ? packet : null;
    aedes.on('subscribe', (subscriptions, client) => {
      const session = this.live(client);
      if (session) for (const s of subscriptions) session.onSubscribed(s);
    });
    aedes.on('ack', (_packet, client) => this.live(client)?.onAck());
    aedes.on('clientDisconnect', (client) => this.disconnected(client));
    aedes.on('clientError', (client) => this.disconnected(client));
  }

  private live(client: Client): Session | undefined {
    const identity = identityOf(client.id);
    const session = identity && this.sessions.get(identity.moduleId);
    return session && session.client === client && !session.ended ? session : undefined;
  }

  private async authenticate(
    client: Client,
    username: string | undefined,
    password: Buffer | undefined,
  ): Promise<void> {
    const { deviceId, hubHostName } = this.options;
    const identity = identityOf(client.id);
    const refuse = (returnCode: number, reason: string): never => {
      this.count('refused');
      this.report('not-authorized', `connection of "${client.id}" refused: ${reason}`);
      throw authError(returnCode, reason);
    };
    if (this.closing) throw authError(SERVER_UNAVAILABLE, 'the hub is closing');
    if (!identity) return refuse(NOT_AUTHORIZED, 'the client id is not <device>/<module>');
    if (identity.deviceId !== deviceId) return refuse(NOT_AUTHORIZED, `this hub serves device ${deviceId}`);
    const expectedUser = `${hubHostName}/${deviceId}/${identity.moduleId}/`;
    if (typeof username !== 'string' || !username.startsWith(expectedUser)) {
      return refuse(BAD_USERNAME_OR_PASSWORD, `the user name must start with ${expectedUser}`);
    }
    const key = this.keyOf(identity.moduleId);
    if (key === undefined) return refuse(NOT_AUTHORIZED, `module ${identity.moduleId} has no key on this hub`);
    const verdict = verifySasToken(password?.toString('utf8'), {
      hubHostName,
      deviceId,
      moduleId: identity.moduleId,
      key,
      now: Date.now(),
    });
    if (!verdict.ok) return refuse(BAD_USERNAME_OR_PASSWORD, verdict.reason);
    try {
      await this.open(client, identity.moduleId, clientSoftware(username));
    } catch (error) {
      this.report('connection-failed', `the edgekit session of ${identity.moduleId} could not start`, error);
      throw authError(SERVER_UNAVAILABLE, 'the hub cannot reach its broker');
    }
    this.count('connections');
  }

  private inLane<T>(moduleId: string, work: () => Promise<T>): Promise<T> {
    const run = (this.lanes.get(moduleId) ?? Promise.resolve()).then(work);
    const tail = run.catch(() => {});
    this.lanes.set(moduleId, tail);
    void tail.then(() => {
      if (this.lanes.get(moduleId) === tail) this.lanes.delete(moduleId);
    });
    return run;
  }

  private open(client: Client, moduleId: string, sdk: string): Promise<void> {
    return this.inLane(moduleId, async () => {
      const previous = this.sessions.get(moduleId);
      if (previous) {
        // A reconnect before the old connection was noticed dead: the old one goes first, also when this one then
        // fails (MQTT-3.1.4-2; aedes itself would close it only once the new one is accepted).
        this.sessions.delete(moduleId);
        previous.client.close();
        await previous.end();
      }
      const session = new Session(client, moduleId, this);
      const edge = new ModuleClientImpl(untypedModule, {
        deviceId: this.options.deviceId,
        moduleId,
        transport: await this.options.transportFor(moduleId),
        onError: (error) => this.options.onError(error),
        [observeRoutes]: (table) => session.onRoutes(table),
        [serveAnyMethod]: session.callMethod,
        [presenceSdk]: sdk,
      });
      session.edge = edge;
      this.sessions.set(moduleId, session);
      try {
        await edge.start(undefined);
        await session.inputsAttached();
      } catch (error) {
        if (this.sessions.get(moduleId) === session) this.sessions.delete(moduleId);
        await session.end();
        throw error;
      }
      if (client.closed || this.closing) {
        if (this.sessions.get(moduleId) === session) this.sessions.delete(moduleId);
        await session.end();
        throw new EdgeKitError('closed', `${moduleId} disconnected while its session started`);
      }
    });
  }

  private disconnected(client: Client): void {
    const session = this.live(client);
    if (!session) return;
    void this.inLane(session.moduleId, async () => {
      if (this.sessions.get(session.moduleId) === session) this.sessions.delete(session.moduleId);
      await session.end();
    }).catch((error: unknown) => this.report('transport-error', `closing the session of ${session.moduleId}`, error));
  }

  private async onPublish(client: Client, packet: PublishPacket): Promise<void> {
    const session = this.live(client);
    if (!session) throw new EdgeKitError('closed', `${client.id} has no session`);
    const { topic } = packet;
    // What is let through goes on into aedes' own bus, where nothing forwards it; it must not be kept either.
    packet.retain = false;
    if (topic.startsWith('$SYS')) {
      // aedes acts on some $SYS topics itself (a "new client" notice closes that client): never from a module.
      this.count('unknownTopics');
      throw new EdgeKitError('not-authorized', `${client.id} published to ${JSON.stringify(topic.slice(0, 200))}`);
    }
    const payload = Buffer.isBuffer(packet.payload) ? packet.payload : Buffer.from(packet.payload);
    const output = parseOutputTopic(topic);
    if (output) {
      if (output.deviceId !== this.options.deviceId || output.moduleId !== session.moduleId) {
        throw new EdgeKitError('not-authorized', `${client.id} may send only as itself`);
      }
      return session.output(output, payload);
    }
    const twinGet = parseTwinGetTopic(topic);
    if (twinGet) return void session.answerTwin(twinGet.rid);
    const reported = parseReportedPatchTopic(topic);
    if (reported) return void session.answerReported(reported.rid, payload);
    const response = parseMethodResponseTopic(topic);
    if (response) return session.onMethodResponse(response.status, response.rid, payload);
    this.count('unknownTopics');
    this.report(
      'not-authorized',
      `${client.id} published to a topic edgeHub does not know, dropped: ${JSON.stringify(topic.slice(0, 200))}`,
    );
  }

  /** Ends every session (each module's edgekit client closes and marks it offline). */
  async close(): Promise<void> {
    this.closing = true;
    await Promise.all([...this.sessions.values()].map((s) => s.end()));
    this.sessions.clear();
    await Promise.all([...this.lanes.values()]);
  }
}
