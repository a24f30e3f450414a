/**
 * The transport conformance suite: DESIGN's observable semantics — routing, delivery, twins, methods, presence,
 * lifecycle — stated as tests that every transport must pass unchanged (memory, mqtt, amqp, or a third party's).
 * It runs inside vitest: `await runTransportConformance(target)` at the top level of a test file. vitest is loaded
 * only then, so `edgekit/testing` itself works under any test runner.
 */
import type { Clock } from '../clock.js';
import { bytes, json } from '../codecs/codec.js';
import { type Schema, typed } from '../codecs/schema.js';
import { connect } from '../connect.js';
import type { ModuleContract } from '../core/contract.js';
import { defineModule, method, untypedModule } from '../core/contract.js';
import { decodeEnvelope, encodeEnvelope, MAX_MESSAGE_BYTES } from '../core/envelope.js';
import type { ConnectionStatus, ConnectOptions, InboundMessage, ModuleClient } from '../core/types.js';
import { EdgeKitError, isEdgeKitError, MethodError } from '../errors.js';
import { addresses } from '../names.js';
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
import type { Delivery, Transport, TransportConnection } from '../transport.js';

/** One isolated run of the suite against a transport. */
export interface ConformanceEnvironment {
  /** A transport for one participant (a module id, or `$operator`); faults are injected per participant. */
  transport(participant: string): Transport;
  /** Cuts the participant's connections abruptly (no goodbye, so last wills fire); with `refuse`, reconnects fail until {@link restore}. */
  cut(participant: string, options?: { refuse?: boolean }): Promise<void>;
  /** Lets a participant connect again after `cut(…, { refuse: true })`. */
  restore(participant: string): Promise<void>;
  /**
   * Optional: makes the participant's link go silent, as a black-holing network does — nothing reaches either side,
   * nothing is closed — until it is {@link cut}. The cases that need it are skipped (with the reason) without it.
   */
  stall?(participant: string): Promise<void>;
  /** The clock modules must use (a manual one for in-process transports, the system clock for real brokers). */
  readonly clock: Clock;
  /** Lets `ms` of broker time pass: advances a manual clock or waits in real time. */
  advance(ms: number): Promise<void>;
  /** Ends what the environment started (not a shared broker). */
  close(): Promise<void>;
}

/** What `runTransportConformance` needs. */
export interface ConformanceTarget {
  readonly name: string;
  /** Creates an environment for one test. Tests use unique device ids, so a broker may be shared. */
  environment(): Promise<ConformanceEnvironment>;
  /** Cases this transport cannot meet, each with the reason (shown in the report). */
  readonly skip?: ReadonlyArray<{ readonly test: string; readonly reason: string }>;
}

const WAIT = 8_000;

/** Messages received by a handler, awaited with timeouts. */
class Inbox<T> {
  readonly items: InboundMessage<T>[] = [];
  private waiters: Array<() => void> = [];
  push = (m: InboundMessage<T>): void => {
    this.items.push(m);
    for (const w of this.waiters.splice(0)) w();
  };
  async waitFor(count: number, timeoutInMs = WAIT): Promise<InboundMessage<T>[]> {
    await waitUntil(
      () => this.items.length >= count,
      `${count} messages (got ${this.items.length})`,
      timeoutInMs,
      (w) => this.waiters.push(w),
    );
    return this.items;
  }
}

function waitUntil(
  done: () => boolean,
  what: string,
  timeoutInMs: number,
  subscribe?: (wake: () => void) => void,
): Promise<void> {
  if (done()) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const poll = setInterval(check, 5);
    const timer = setTimeout(() => {
      clearInterval(poll);
      reject(new Error(`timed out after ${timeoutInMs} ms waiting for ${what}`));
    }, timeoutInMs);
    function check() {
      if (!done()) {
        subscribe?.(check);
        return;
      }
      clearInterval(poll);
      clearTimeout(timer);
      resolve();
    }
    subscribe?.(check);
  });
}

/** Like {@link waitUntil}, for a condition that must ask the broker. */
async function waitUntilAsync(done: () => Promise<boolean>, what: string, timeoutInMs: number): Promise<void> {
  const deadline = Date.now() + timeoutInMs;
  while (!(await done())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutInMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** A promise resolved from outside, for handlers that wait on the test. */
function gate(): { promise: Promise<void>; open(): void } {
  let open!: () => void;
  const promise = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { promise, open };
}

async function nextStatus(
  iterator: AsyncIterator<ConnectionStatus>,
  state: ConnectionStatus['state'],
  timeoutInMs = WAIT,
): Promise<ConnectionStatus> {
  const deadline = Date.now() + timeoutInMs;
  for (;;) {
    const remaining = deadline - Date.now();
    if (remaining <= 0) throw new Error(`status never became ${state}`);
    const result = await Promise.race([
      iterator.next(),
      new Promise<'timeout'>((resolve) => setTimeout(() => resolve('timeout'), remaining)),
    ]);
    if (result === 'timeout') throw new Error(`status never became ${state}`);
    if (result.done) throw new Error(`status ended before ${state}`);
    if (result.value.state === state) return result.value;
  }
}

/** A Standard Schema from a check that returns an error message or undefined. */
function checked<T>(problem: (value: unknown) => string | undefined): Schema<T> {
  return {
    '~standard': {
      version: 1,
      vendor: 'conformance',
      validate: (value: unknown) => {
        const message = problem(value);
        return message === undefined ? { value: value as T } : { issues: [{ message }] };
      },
    },
  };
}

const Telemetry = defineModule({
  inputs: { in: json<{ n: number; temperature?: number }>() },
  outputs: {
    out: json<{ n: number; temperature?: number }>(),
    other: json<{ n: number }>(),
    out0: json<{ n: number }>(),
  },
});
const Sink = defineModule({
  inputs: {
    in: json<{ n: number; temperature?: number }>(),
    in2: json<{ n: number }>(),
    checked: json(
      checked<{ n: number }>((v) =>
        typeof (v as { n?: unknown } | null)?.n === 'number' ? undefined : 'n must be a number',
      ),
    ),
  },
});
const Twinned = defineModule({
  desired: checked<{ limit?: number; nested?: { a?: number; b?: number }; extra?: string }>((v) => {
    const limit = (v as { limit?: unknown }).limit;
    return limit === undefined || typeof limit === 'number' ? undefined : 'limit must be a number';
  }),
  reported: typed<{ limit?: number; nested?: { a?: number; b?: number }; note?: string; desiredStatus?: unknown }>(),
});
const Methods = defineModule({
  methods: {
    echo: method(typed<{ text: string }>(), typed<{ text: string }>()),
    fail: method(typed<{ status?: number }>(), typed<unknown>()),
    slow: method(typed<{ ms?: number }>(), typed<{ aborted: boolean }>()),
    checked: method(
      checked<{ x: number }>((v) =>
        typeof (v as { x?: unknown } | null)?.x === 'number' ? undefined : 'x must be a number',
      ),
      typed<{ x: number }>(),
    ),
    unhandled: method(),
  },
});

/**
 * Registers the conformance suite for `target` in the current vitest file.
 *
 * @example
 * ```ts
 * // memory.conformance.test.ts
 * import { runTransportConformance, memoryConformanceTarget } from 'edgekit/testing';
 * await runTransportConformance(memoryConformanceTarget());
 * ```
 */
export async function runTransportConformance(target: ConformanceTarget): Promise<void> {
  let vitest: typeof import('vitest');
  try {
    vitest = await import('vitest');
  } catch (error) {
    throw new EdgeKitError('missing-dependency', 'runTransportConformance runs under vitest: npm install -D vitest', {
      cause: error,
    });
  }
  const { afterEach, beforeEach, describe, expect, it } = vitest;
  const skipped = new Map((target.skip ?? []).map((s) => [s.test, s.reason]));

  describe(`transport conformance: ${target.name}`, () => {
    let env: ConformanceEnvironment;
    let op: TransportConnection;
    let deviceId: string;
    let clients: Array<ModuleClient<ModuleContract>>;
    let errors: EdgeKitError[];
    let capabilities: Transport['capabilities'];

    beforeEach(async () => {
      env = await target.environment();
      deviceId = `dev-${Math.random().toString(36).slice(2, 10)}`;
      op = await env.transport('$operator').connect({ clientId: `$operator-${deviceId}` });
      capabilities = env.transport('$operator').capabilities;
      clients = [];
      errors = [];
    });

    afterEach(async () => {
      await Promise.all(clients.map((c) => c.close({ drainTimeoutInMs: 2000 }).catch(() => undefined)));
      await op.close().catch(() => undefined);
      await env.close();
    });

    /** A case; `skip(reason)` inside it skips it when the environment lacks something it needs. */
    const test = (name: string, fn: (context: { skip(reason: string): void }) => Promise<void>, timeout = 30_000) => {
      const reason = skipped.get(name);
      if (reason !== undefined) it.skip(`${name} — skipped: ${reason}`, () => undefined);
      else it(name, (context) => fn({ skip: (why) => context.skip(why) }), timeout);
    };

    async function mod<C extends ModuleContract>(
      contract: C,
      moduleId: string,
      extra: Partial<ConnectOptions> = {},
    ): Promise<ModuleClient<C>> {
      const client = await connect(contract, {
        deviceId,
        moduleId,
        transport: env.transport(moduleId),
        clock: env.clock,
        reconnect: { initialDelayInMs: 20, maxDelayInMs: 500 },
        retryDelayInMs: 10,
        onError: (e) => errors.push(e),
        ...extra,
      });
      clients.push(client as unknown as ModuleClient<ModuleContract>);
      return client;
    }
    const routes = (table: RoutesInput, options?: { defaultTimeToLiveSecs?: number }) =>
      deployRoutes(op, deviceId, table, options);
    const waitRoutes = async (
      client: ModuleClient<ModuleContract>,
      output: string,
      expected: number,
      body: unknown,
    ) => {
      // Routes are retained state: a module sees a new table shortly after it is written. Probe until it does.
      const deadline = Date.now() + WAIT;
      for (;;) {
        const r = await client.send(output as never, body as never);
        if (r.destinations === expected) return r;
        if (Date.now() > deadline)
          throw new Error(`routes were not applied (destinations ${r.destinations}, want ${expected})`);
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    };
    const inject = (moduleId: string, input: string, body: unknown, options: InjectOptions = {}) =>
      injectMessage(op, env.clock, { deviceId, moduleId, input }, new TextEncoder().encode(JSON.stringify(body)), {
        contentType: 'application/json',
        contentEncoding: 'utf-8',
        ...options,
      });
    async function queueInbox(address: string): Promise<Inbox<unknown> & { bodies(): unknown[] }> {
      const inbox = new Inbox<unknown>();
      await op.consume(address, { prefetch: 100 }, (d) => {
        const env2 = decodeEnvelope(d.bytes);
        let body: unknown = env2.body;
        try {
          body = JSON.parse(new TextDecoder().decode(env2.body));
        } catch {
          // not JSON: keep the bytes
        }
        inbox.push({
          body,
          messageId: env2.header.messageId,
          properties: env2.header.properties,
          deadLetter: env2.header.deadLetter,
          source: env2.header.sourceModuleId,
        } as unknown as InboundMessage<unknown>);
        d.ack();
      });
      return Object.assign(inbox, { bodies: () => inbox.items.map((m) => m.body) });
    }
    const sinkInbox = async (
      moduleId: string,
      input: 'in' | 'in2' | 'checked' = 'in',
      extra: Partial<ConnectOptions> = {},
    ) => {
      const sink = await mod(Sink, moduleId, extra);
      const inbox = new Inbox<{ n: number }>();
      await sink.onInput(input, inbox.push as never);
      return { sink, inbox };
    };

    // ------------------------------------------------------------------ routing

    describe('routing', () => {
      test('a routed message arrives with body, properties, ids, content type and source', async () => {
        await routes({
          r: 'FROM /messages/modules/sensor/outputs/out INTO BrokeredEndpoint("/modules/sink/inputs/in")',
        });
        const { inbox } = await sinkInbox('sink');
        const sensor = await mod(Telemetry, 'sensor');
        await waitRoutes(sensor as never, 'out', 1, { n: 0 });
        const sent = await sensor.send('out', { n: 1 }, { properties: { kind: 'reading' }, correlationId: 'c-1' });
        expect(sent.destinations).toBe(1);
        const messages = await inbox.waitFor(2);
        const m = messages.find((x) => x.messageId === sent.messageId);
        expect(m?.body).toEqual({ n: 1 });
        expect(m?.properties).toEqual({ kind: 'reading' });
        expect(m?.correlationId).toBe('c-1');
        expect(m?.contentType).toBe('application/json');
        expect(m?.contentEncoding).toBe('utf-8');
        expect(m?.source).toEqual({ deviceId, moduleId: 'sensor', output: 'out' });
        expect(m?.publisher).toBe(`${deviceId}/sensor`);
        expect(m?.input).toBe('in');
        expect(m?.createdAt).toBeInstanceOf(Date);
      });

      test('fan-out: one output routed to two modules reaches both', async () => {
        await routes({
          a: 'FROM /messages/modules/sensor/outputs/out INTO BrokeredEndpoint("/modules/sinka/inputs/in")',
          b: 'FROM /messages/modules/sensor/outputs/out INTO BrokeredEndpoint("/modules/sinkb/inputs/in")',
        });
        const a = await sinkInbox('sinka');
        const b = await sinkInbox('sinkb');
        const sensor = await mod(Telemetry, 'sensor');
        await waitRoutes(sensor as never, 'out', 2, { n: 7 });
        expect((await a.inbox.waitFor(1))[0]?.body).toEqual({ n: 7 });
        expect((await b.inbox.waitFor(1))[0]?.body).toEqual({ n: 7 });
      });

      test('dedupe: several routes to one input deliver a message once', async () => {
        await routes({
          a: 'FROM /messages/modules/sensor/outputs/out INTO BrokeredEndpoint("/modules/sink/inputs/in")',
          b: 'FROM /messages/modules/sensor/* INTO BrokeredEndpoint("/modules/sink/inputs/in")',
          c: 'FROM /* INTO BrokeredEndpoint("/modules/sink/inputs/in")',
        });
        const { inbox } = await sinkInbox('sink');
        const sensor = await mod(Telemetry, 'sensor');
        await waitRoutes(sensor as never, 'out', 1, { n: 1 });
        await sensor.send('out', { n: 2 });
        await sensor.send('other', { n: 3 });
        await inbox.waitFor(3);
        await env.advance(50);
        expect(inbox.items.map((m) => m.body.n)).toEqual([1, 2, 3]);
      });

      test('a message that matches no route goes nowhere and send reports 0 destinations', async () => {
        await routes({
          r: 'FROM /messages/modules/sensor/outputs/other INTO BrokeredEndpoint("/modules/sink/inputs/in")',
        });
        const { inbox } = await sinkInbox('sink');
        const sensor = await mod(Telemetry, 'sensor');
        await waitRoutes(sensor as never, 'other', 1, { n: 100 });
        const r = await sensor.send('out', { n: 1 });
        expect(r.destinations).toBe(0);
        await sensor.send('other', { n: 2 });
        await inbox.waitFor(2);
        expect(inbox.items.map((m) => m.body.n)).toEqual([100, 2]);
        expect(sensor.stats().unrouted).toBe(1);
      });

      test('$upstream receives routed messages', async () => {
        await routes({ up: 'FROM /messages/modules/sensor/outputs/out INTO $upstream' });
        const upstream = await queueInbox(addresses.upstream(deviceId));
        const sensor = await mod(Telemetry, 'sensor');
        await waitRoutes(sensor as never, 'out', 1, { n: 5 });
        expect((await upstream.waitFor(1))[0]?.body).toEqual({ n: 5 });
      });

      test('an output route does not match a longer output name (out vs out0)', async () => {
        await routes({
          r: 'FROM /messages/modules/sensor/outputs/out INTO BrokeredEndpoint("/modules/sink/inputs/in")',
        });
        const { inbox } = await sinkInbox('sink');
        const sensor = await mod(Telemetry, 'sensor');
        await waitRoutes(sensor as never, 'out', 1, { n: 1 });
        expect((await sensor.send('out0', { n: 2 })).destinations).toBe(0);
        await sensor.send('out', { n: 3 });
        await inbox.waitFor(2);
        expect(inbox.items.map((m) => m.body.n)).toEqual([1, 3]);
      });

      test('route updates apply live, without restarting modules', async () => {
        await routes({
          r: 'FROM /messages/modules/sensor/outputs/out INTO BrokeredEndpoint("/modules/sink/inputs/in")',
        });
        const { inbox } = await sinkInbox('sink');
        const other = new Inbox<{ n: number }>();
        const sink = clients[clients.length - 1] as unknown as ModuleClient<typeof Sink>;
        await sink.onInput('in2', other.push as never);
        const sensor = await mod(Telemetry, 'sensor');
        await waitRoutes(sensor as never, 'out', 1, { n: 1 });
        await routes({
          r: 'FROM /messages/modules/sensor/outputs/out INTO BrokeredEndpoint("/modules/sink/inputs/in2")',
        });
        const deadline = Date.now() + WAIT;
        let n = 2;
        while (other.items.length === 0) {
          if (Date.now() > deadline) throw new Error('new route never applied');
          await sensor.send('out', { n: n++ });
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
        expect(other.items[0]?.body.n).toBeGreaterThan(1);
        const before = inbox.items.length;
        await sensor.send('out', { n: 999 });
        await waitUntil(() => other.items.some((m) => m.body.n === 999), 'message after the switch', WAIT);
        expect(inbox.items.length).toBe(before);
      });

      test('WHERE conditions route only matching messages', async () => {
        await routes({
          hot: 'FROM /messages/modules/sensor/outputs/out WHERE $body.temperature > 30 AND kind = \'reading\' INTO BrokeredEndpoint("/modules/sink/inputs/in")',
        });
        const { inbox } = await sinkInbox('sink');
        const sensor = await mod(Telemetry, 'sensor');
        const deadline = Date.now() + WAIT;
        while (
          (await sensor.send('out', { n: 0, temperature: 40 }, { properties: { kind: 'reading' } })).destinations !== 1
        ) {
          if (Date.now() > deadline) throw new Error('routes not applied');
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
        expect(
          (await sensor.send('out', { n: 1, temperature: 20 }, { properties: { kind: 'reading' } })).destinations,
        ).toBe(0);
        expect(
          (await sensor.send('out', { n: 2, temperature: 50 }, { properties: { kind: 'other' } })).destinations,
        ).toBe(0);
        await sensor.send('out', { n: 3, temperature: 31 }, { properties: { kind: 'reading' } });
        await inbox.waitFor(2);
        expect(inbox.items.map((m) => m.body.n).slice(-1)).toEqual([3]);
      });

      test('a route table with an invalid route is rejected whole at deploy time', async () => {
        await routes({ ok: 'FROM /messages/* INTO $upstream' });
        await expect(
          routes({ ok: 'FROM /messages/* INTO $upstream', bad: 'FROM /messages/* WHERE INTO $upstream' }),
        ).rejects.toSatisfy((e: unknown) => isEdgeKitError(e, 'invalid-route'));
        const doc = JSON.parse(new TextDecoder().decode(await op.getRetained(addresses.routes(deviceId))));
        expect(Object.keys(doc.routes)).toEqual(['ok']);
      });

      test('TTL: a message not delivered within its route timeToLiveSecs expires', async () => {
        await routes({
          r: {
            route: 'FROM /messages/modules/sensor/outputs/out INTO BrokeredEndpoint("/modules/sink/inputs/in")',
            timeToLiveSecs: 1,
          },
        });
        const first = await sinkInbox('sink');
        await first.sink.close();
        const sensor = await mod(Telemetry, 'sensor');
        await waitRoutes(sensor as never, 'out', 1, { n: 1 });
        await env.advance(1_500);
        await sensor.send('out', { n: 2 });
        const { inbox } = await sinkInbox('sink');
        await inbox.waitFor(1);
        await env.advance(50);
        expect(inbox.items.map((m) => m.body.n)).toEqual([2]);
      });

      test('priority: of several routes to one sink, the lowest priority number wins and its TTL applies', async () => {
        await routes({
          long: {
            route: 'FROM /messages/modules/sensor/* INTO BrokeredEndpoint("/modules/sink/inputs/in")',
            priority: 5,
            timeToLiveSecs: 3600,
          },
          short: {
            route: 'FROM /messages/modules/sensor/outputs/out INTO BrokeredEndpoint("/modules/sink/inputs/in")',
            priority: 0,
            timeToLiveSecs: 1,
          },
        });
        const first = await sinkInbox('sink');
        await first.sink.close();
        const sensor = await mod(Telemetry, 'sensor');
        await waitRoutes(sensor as never, 'out', 1, { n: 1 });
        await sensor.send('other', { n: 2 });
        await env.advance(1_500);
        const { inbox } = await sinkInbox('sink');
        await inbox.waitFor(1);
        await env.advance(50);
        expect(inbox.items.map((m) => m.body.n)).toEqual([2]);
      });
    });

    // ------------------------------------------------------------------ delivery

    describe('delivery', () => {
      test('an offline module gets the messages queued for it when it returns', async () => {
        const first = await sinkInbox('sink');
        await first.sink.close();
        for (let n = 1; n <= 5; n++) await inject('sink', 'in', { n });
        const { inbox } = await sinkInbox('sink');
        expect((await inbox.waitFor(5)).map((m) => m.body.n)).toEqual([1, 2, 3, 4, 5]);
      });

      test('a module that never connected gets messages routed to it meanwhile (where the broker keeps them)', async () => {
        if (!capabilities.keepsMessagesBeforeFirstConsumer) return; // a documented capability flag
        for (let n = 1; n <= 3; n++) await inject('fresh', 'in', { n });
        const { inbox } = await sinkInbox('fresh');
        expect((await inbox.waitFor(3)).map((m) => m.body.n)).toEqual([1, 2, 3]);
      });

      test('order per input is kept at concurrency 1', async () => {
        const sink = await mod(Sink, 'sink');
        const seen: number[] = [];
        let active = 0;
        let maxActive = 0;
        await sink.onInput('in', async (m) => {
          active++;
          maxActive = Math.max(maxActive, active);
          await new Promise((resolve) => setImmediate(resolve));
          seen.push(m.body.n);
          active--;
        });
        for (let n = 0; n < 50; n++) await inject('sink', 'in', { n });
        await waitUntil(() => seen.length === 50, '50 messages', WAIT);
        expect(seen).toEqual([...Array(50).keys()]);
        expect(maxActive).toBe(1);
      });

      test('concurrency N runs up to N handlers at once and never more', async () => {
        const sink = await mod(Sink, 'sink');
        let active = 0;
        let maxActive = 0;
        const release = gate();
        let done = 0;
        await sink.onInput(
          'in',
          async () => {
            active++;
            maxActive = Math.max(maxActive, active);
            await release.promise;
            active--;
            done++;
          },
          { concurrency: 3 },
        );
        for (let n = 0; n < 8; n++) await inject('sink', 'in', { n });
        await waitUntil(() => active === 3, '3 handlers running', WAIT);
        release.open();
        await waitUntil(() => done === 8, 'all handled', WAIT);
        expect(maxActive).toBe(3);
      });

      test('a handler that throws gets the message again, and succeeds', async () => {
        const sink = await mod(Sink, 'sink');
        const attempts: number[] = [];
        await sink.onInput('in', async (m) => {
          attempts.push(m.attempt);
          if (m.attempt < 2) throw new Error('transient');
        });
        await inject('sink', 'in', { n: 1 });
        await waitUntil(() => attempts.length === 2, 'second attempt', WAIT);
        expect(attempts).toEqual([1, 2]);
        expect(sink.stats().processed).toBe(1);
        expect(sink.stats().deadLettered).toBe(0);
      });

      test('a handler that keeps throwing: retried up to maxAttempts, then dead-lettered with the reason', async () => {
        const dead = await queueInbox(addresses.deadLetter(deviceId, 'sink'));
        const sink = await mod(Sink, 'sink', { maxAttempts: 3 });
        let calls = 0;
        await sink.onInput('in', async () => {
          calls++;
          throw new Error('always broken');
        });
        await inject('sink', 'in', { n: 9 });
        const [letter] = await dead.waitFor(1);
        await waitUntil(() => sink.stats().deadLettered === 1, 'the dead letter to be confirmed', WAIT);
        expect(calls).toBe(3);
        expect(letter?.body).toEqual({ n: 9 });
        const info = (
          letter as unknown as { deadLetter: { reason: string; error: string; attempts: number; input: string } }
        ).deadLetter;
        expect(info).toMatchObject({ reason: 'handler-failed', error: 'always broken', attempts: 3, input: 'in' });
        expect(sink.stats().deadLettered).toBe(1);
        expect(errors.map((e) => e.code)).toEqual(['handler-failed']);
      });

      test('the next message is processed after one was dead-lettered (the input does not stall)', async () => {
        const sink = await mod(Sink, 'sink', { maxAttempts: 2 });
        const ok: number[] = [];
        await sink.onInput('in', async (m) => {
          if (m.body.n === 1) throw new Error('poison');
          ok.push(m.body.n);
        });
        await inject('sink', 'in', { n: 1 });
        await inject('sink', 'in', { n: 2 });
        await waitUntil(() => ok.length === 1, 'message 2', WAIT);
        expect(ok).toEqual([2]);
      });

      test('malformed bytes on an input: dead-letter with decode-failed, counted, and the module keeps running', async () => {
        const reasons: string[] = [];
        await op.consume(addresses.deadLetter(deviceId, 'sink'), { prefetch: 10 }, (d) => {
          reasons.push(decodeEnvelope(d.bytes).header.deadLetter?.reason ?? '?');
          d.ack();
        });
        const { sink, inbox } = await sinkInbox('sink');
        await op.publish(addresses.input(deviceId, 'sink', 'in'), new Uint8Array([1, 2, 3, 0xff]));
        await op.publish(addresses.input(deviceId, 'sink', 'in'), new TextEncoder().encode('{"not":"an envelope"}'));
        await inject('sink', 'in', { n: 1 });
        await inbox.waitFor(1);
        await waitUntil(() => reasons.length === 2, 'two dead letters', WAIT);
        expect(reasons).toEqual(['decode-failed', 'decode-failed']);
        expect(sink.stats().decodeErrors).toBe(2);
        expect(inbox.items.map((m) => m.body)).toEqual([{ n: 1 }]);
        expect(errors.some((e) => e.code === 'decode-failed')).toBe(true);
      });

      test('an input over 256 KiB (a sender that is not edgekit) is dead-lettered as too-large, unread, with its header', async () => {
        const deadLetters: Array<{ reason?: string; messageId: string; bodyBytes: number }> = [];
        await op.consume(addresses.deadLetter(deviceId, 'sink'), { prefetch: 10 }, (d) => {
          const dead = decodeEnvelope(d.bytes);
          deadLetters.push({
            ...(dead.header.deadLetter ? { reason: dead.header.deadLetter.reason } : {}),
            messageId: dead.header.messageId,
            bodyBytes: dead.body.length,
          });
          d.ack();
        });
        const { sink, inbox } = await sinkInbox('sink');
        const header = {
          messageId: 'huge-1',
          createdAt: env.clock.now(),
          sourceDeviceId: deviceId,
          sourceModuleId: 'rogue',
          properties: {},
        };
        const body = new TextEncoder().encode(JSON.stringify({ n: 0, pad: 'x'.repeat(MAX_MESSAGE_BYTES) }));
        await op.publish(addresses.input(deviceId, 'sink', 'in'), encodeEnvelope(header, body));
        await inject('sink', 'in', { n: 1 });
        await inbox.waitFor(1);
        await waitUntil(() => deadLetters.length === 1, 'the dead letter', WAIT);
        expect(deadLetters).toEqual([{ reason: 'too-large', messageId: 'huge-1', bodyBytes: 0 }]);
        expect(inbox.items.map((m) => m.body)).toEqual([{ n: 1 }]);
        expect(sink.stats().tooLarge).toBe(1);
        expect(errors.some((e) => e.code === 'message-too-large')).toBe(true);
      });

      test('an undecodable body (bad JSON) is dead-lettered as decode-failed; a schema failure as validation-failed', async () => {
        const deadLetters: string[] = [];
        await op.consume(addresses.deadLetter(deviceId, 'sink'), { prefetch: 10 }, (d) => {
          deadLetters.push(decodeEnvelope(d.bytes).header.deadLetter?.reason ?? '?');
          d.ack();
        });
        const { inbox } = await sinkInbox('sink', 'checked');
        await injectMessage(
          op,
          env.clock,
          { deviceId, moduleId: 'sink', input: 'checked' },
          new TextEncoder().encode('{oops'),
          {
            contentType: 'application/json',
          },
        );
        await inject('sink', 'checked', { n: 'not a number' });
        await inject('sink', 'checked', { n: 3 });
        await inbox.waitFor(1);
        await waitUntil(() => deadLetters.length === 2, 'two dead letters', WAIT);
        expect(deadLetters.sort()).toEqual(['decode-failed', 'validation-failed']);
        expect(inbox.items.map((m) => m.body)).toEqual([{ n: 3 }]);
      });

      test('a message cut off mid-handler (connection lost) is redelivered and then processed', async () => {
        const sink = await mod(Sink, 'sink');
        const started = gate();
        const attempts: Array<{ n: number; redelivered: boolean }> = [];
        let first = true;
        const hold = gate();
        await sink.onInput('in', async (m) => {
          attempts.push({ n: m.body.n, redelivered: m.redelivered });
          if (first) {
            first = false;
            started.open();
            await hold.promise;
          }
        });
        await inject('sink', 'in', { n: 1 });
        await started.promise;
        await env.cut('sink');
        hold.open();
        await waitUntil(() => attempts.length >= 2, 'redelivery', 15_000);
        expect(attempts[1]).toEqual({ n: 1, redelivered: true });
      });

      test('a message whose source names another module than its publisher is dead-lettered as forged-source', async () => {
        const deadLetters: string[] = [];
        await op.consume(addresses.deadLetter(deviceId, 'sink'), { prefetch: 10 }, (d) => {
          deadLetters.push(decodeEnvelope(d.bytes).header.deadLetter?.reason ?? '?');
          d.ack();
        });
        const { sink, inbox } = await sinkInbox('sink');
        // A module connection that claims, in the envelope, to be another module.
        const rogue = await env
          .transport('rogue')
          .connect({ clientId: `${deviceId}/rogue`, identity: `${deviceId}/rogue` });
        try {
          const claim = { messageId: 'forged-1', createdAt: env.clock.now(), properties: {} };
          const body = new TextEncoder().encode('{"n":0}');
          await rogue.publish(
            addresses.input(deviceId, 'sink', 'in'),
            encodeEnvelope({ ...claim, sourceDeviceId: deviceId, sourceModuleId: 'sensor' }, body),
          );
          // The same under its own name is fine.
          await rogue.publish(
            addresses.input(deviceId, 'sink', 'in'),
            encodeEnvelope(
              { ...claim, messageId: 'honest-1', sourceDeviceId: deviceId, sourceModuleId: 'rogue' },
              new TextEncoder().encode('{"n":1}'),
            ),
          );
        } finally {
          await rogue.close();
        }
        const [honest] = await inbox.waitFor(1);
        expect(honest?.body).toEqual({ n: 1 });
        expect(honest?.publisher).toBe(`${deviceId}/rogue`);
        await waitUntil(() => deadLetters.length === 1, 'the dead letter', WAIT);
        expect(deadLetters).toEqual(['forged-source']);
        expect(sink.stats().forged).toBe(1);
        expect(errors.some((e) => e.code === 'not-authorized')).toBe(true);
      });

      test('messages carry unique ids; a given messageId is kept', async () => {
        await routes({ r: 'FROM /messages/modules/sensor/* INTO BrokeredEndpoint("/modules/sink/inputs/in")' });
        const { inbox } = await sinkInbox('sink');
        const sensor = await mod(Telemetry, 'sensor');
        await waitRoutes(sensor as never, 'out', 1, { n: 0 });
        const a = await sensor.send('out', { n: 1 });
        const b = await sensor.send('out', { n: 2 }, { messageId: 'my-id-42' });
        expect(a.messageId).not.toBe(b.messageId);
        await inbox.waitFor(3);
        expect(inbox.items[2]?.messageId).toBe('my-id-42');
        expect(new Set(inbox.items.map((m) => m.messageId)).size).toBe(3);
      });

      test('a message over 256 KiB is rejected at send with message-too-large', async () => {
        await routes({ r: 'FROM /* INTO $upstream' });
        const sensor = await mod(defineModule({ outputs: { big: bytes() } }), 'sensor');
        await expect(sensor.send('big', new Uint8Array(256 * 1024))).rejects.toSatisfy((e: unknown) =>
          isEdgeKitError(e, 'message-too-large'),
        );
        await expect(sensor.send('big', new Uint8Array(200 * 1024))).resolves.toBeDefined();
      });

      test('sends while disconnected wait in the offline queue and are delivered after reconnecting', async () => {
        await routes({ r: 'FROM /messages/modules/sensor/* INTO BrokeredEndpoint("/modules/sink/inputs/in")' });
        const { inbox } = await sinkInbox('sink');
        const sensor = await mod(Telemetry, 'sensor');
        await waitRoutes(sensor as never, 'out', 1, { n: 0 });
        const status = sensor.status();
        await env.cut('sensor', { refuse: true });
        await nextStatus(status, 'disconnected');
        const pending = [1, 2, 3].map((n) => sensor.send('out', { n }));
        await env.advance(20);
        expect(sensor.stats().offlineQueued).toBe(3);
        await env.restore('sensor');
        await env.advance(600);
        await Promise.all(pending);
        await inbox.waitFor(4);
        expect(inbox.items.map((m) => m.body.n)).toEqual([0, 1, 2, 3]);
      });

      test('a full offline queue rejects new sends under reject-new, evicts the oldest under drop-oldest', async () => {
        await routes({ r: 'FROM /messages/modules/* INTO $upstream' });
        const upstream = await queueInbox(addresses.upstream(deviceId));
        const a = await mod(Telemetry, 'senda', { offlineQueue: { maxMessages: 2, policy: 'reject-new' } });
        const b = await mod(Telemetry, 'sendb', { offlineQueue: { maxMessages: 2, policy: 'drop-oldest' } });
        await waitRoutes(a as never, 'out', 1, { n: 0 });
        await waitRoutes(b as never, 'out', 1, { n: 0 });
        const sa = a.status();
        const sb = b.status();
        await env.cut('senda', { refuse: true });
        await env.cut('sendb', { refuse: true });
        await nextStatus(sa, 'disconnected');
        await nextStatus(sb, 'disconnected');
        const a1 = a.send('out', { n: 1 });
        const a2 = a.send('out', { n: 2 });
        await expect(a.send('out', { n: 3 })).rejects.toSatisfy((e: unknown) =>
          isEdgeKitError(e, 'offline-queue-full'),
        );
        const b1 = b.send('out', { n: 1 });
        const b2 = b.send('out', { n: 2 });
        const b3 = b.send('out', { n: 3 });
        await expect(b1).rejects.toSatisfy((e: unknown) => isEdgeKitError(e, 'offline-queue-full'));
        expect(a.stats().offlineDropped).toBe(1);
        expect(b.stats().offlineDropped).toBe(1);
        await env.restore('senda');
        await env.restore('sendb');
        await env.advance(600);
        await Promise.all([a1, a2, b2, b3]);
        await upstream.waitFor(6);
        await env.advance(50);
        const arrived = (sender: string) =>
          upstream.items
            .filter((m) => (m as unknown as { source: string }).source === sender)
            .map((m) => (m.body as { n: number }).n);
        expect(arrived('senda')).toEqual([0, 1, 2]);
        expect(arrived('sendb')).toEqual([0, 2, 3]);
      });
    });

    // ------------------------------------------------------------------ twin

    describe('twin', () => {
      test('onDesired gets the current document and version at once, then each patch with the full document', async () => {
        await updateDesired(op, deviceId, 'twin', { limit: 10 });
        const client = await mod(Twinned, 'twin');
        const calls: Array<{ desired: unknown; patch: unknown; version: number }> = [];
        await client.onDesired((desired, patch, version) => {
          calls.push({ desired, patch, version });
        });
        expect(calls).toEqual([{ desired: { limit: 10 }, patch: { limit: 10 }, version: 1 }]);
        await updateDesired(op, deviceId, 'twin', { extra: 'x' });
        await waitUntil(() => calls.length === 2, 'patch', WAIT);
        expect(calls[1]).toEqual({ desired: { limit: 10, extra: 'x' }, patch: { extra: 'x' }, version: 2 });
        expect(client.desired()).toEqual({ version: 2, properties: { limit: 10, extra: 'x' } });
      });

      test('desired patches merge nested objects and null deletes', async () => {
        const client = await mod(Twinned, 'twin');
        const calls: Array<{ desired: unknown; patch: unknown; version: number }> = [];
        await client.onDesired((desired, patch, version) => {
          calls.push({ desired, patch, version });
        });
        await updateDesired(op, deviceId, 'twin', { nested: { a: 1, b: 2 }, limit: 3 });
        await updateDesired(op, deviceId, 'twin', { nested: { a: null }, limit: null });
        await waitUntil(() => calls.length === 2, 'two patches', WAIT);
        expect(calls[1]).toEqual({
          desired: { nested: { b: 2 } },
          patch: { nested: { a: null }, limit: null },
          version: 2,
        });
        const twin = await readTwin(op, deviceId, 'twin');
        expect(twin.desired).toEqual({ version: 2, properties: { nested: { b: 2 } } });
      });

      test('catch-up: a desired change made while the module was offline is delivered on reconnect', async () => {
        const client = await mod(Twinned, 'twin');
        const calls: Array<{ desired: unknown; patch: unknown; version: number }> = [];
        await client.onDesired((desired, patch, version) => {
          calls.push({ desired, patch, version });
        });
        await updateDesired(op, deviceId, 'twin', { limit: 1, extra: 'keep' });
        await waitUntil(() => calls.length === 1, 'first patch', WAIT);
        const status = client.status();
        await env.cut('twin', { refuse: true });
        await nextStatus(status, 'disconnected');
        await updateDesired(op, deviceId, 'twin', { limit: 2 });
        await updateDesired(op, deviceId, 'twin', { extra: null });
        await env.restore('twin');
        await env.advance(600);
        await nextStatus(status, 'connected');
        await waitUntil(() => calls.length === 2, 'catch-up patch', WAIT);
        expect(calls[1]).toEqual({ desired: { limit: 2 }, patch: { limit: 2, extra: null }, version: 3 });
      });

      test('a desired document that fails its schema is rejected and the rejection is reported', async () => {
        const client = await mod(Twinned, 'twin');
        const calls: unknown[] = [];
        await client.onDesired((desired) => {
          calls.push(desired);
        });
        await updateDesired(op, deviceId, 'twin', { limit: 'high' as unknown as number });
        await waitUntil(() => errors.some((e) => e.code === 'validation-failed'), 'validation error', WAIT);
        expect(calls).toEqual([]);
        const deadline = Date.now() + WAIT;
        let reported = (await readTwin(op, deviceId, 'twin')).reported;
        while (!reported.properties.desiredStatus && Date.now() < deadline) {
          await new Promise((resolve) => setTimeout(resolve, 10));
          reported = (await readTwin(op, deviceId, 'twin')).reported;
        }
        expect(reported.properties.desiredStatus).toMatchObject({ version: 1, status: 'rejected' });
        await updateDesired(op, deviceId, 'twin', { limit: 5 });
        await waitUntil(() => calls.length === 1, 'valid patch applied', WAIT);
        expect(calls[0]).toEqual({ limit: 5 });
        const cleared = Date.now() + WAIT;
        while ((await readTwin(op, deviceId, 'twin')).reported.properties.desiredStatus !== undefined) {
          if (Date.now() > cleared) throw new Error('desiredStatus was not removed after an accepted version');
          await new Promise((resolve) => setTimeout(resolve, 10));
        }
      });

      test('a rejection reported by an earlier run is cleared when a later run accepts a new version', async () => {
        const first = await mod(Twinned, 'twin');
        await first.onDesired(() => {
          throw new Error('not now');
        });
        await updateDesired(op, deviceId, 'twin', { limit: 1 });
        const deadline = Date.now() + WAIT;
        while (!(await readTwin(op, deviceId, 'twin')).reported.properties.desiredStatus) {
          if (Date.now() > deadline) throw new Error('rejection not reported');
          await new Promise((resolve) => setTimeout(resolve, 10));
        }
        await first.close();
        const second = await mod(Twinned, 'twin');
        await second.onDesired(() => undefined);
        await updateDesired(op, deviceId, 'twin', { limit: 2 });
        const cleared = Date.now() + WAIT;
        while ((await readTwin(op, deviceId, 'twin')).reported.properties.desiredStatus !== undefined) {
          if (Date.now() > cleared) throw new Error('the earlier run’s rejection was never cleared');
          await new Promise((resolve) => setTimeout(resolve, 10));
        }
      });

      test('a desired handler that throws rejects the patch and the rejection is reported', async () => {
        const client = await mod(Twinned, 'twin');
        await client.onDesired((desired) => {
          if ((desired.limit ?? 0) > 100) throw new Error('limit too high for this sensor');
        });
        await updateDesired(op, deviceId, 'twin', { limit: 1000 });
        const deadline = Date.now() + WAIT;
        let reported = (await readTwin(op, deviceId, 'twin')).reported;
        while (!reported.properties.desiredStatus && Date.now() < deadline) {
          await new Promise((resolve) => setTimeout(resolve, 10));
          reported = (await readTwin(op, deviceId, 'twin')).reported;
        }
        expect(reported.properties.desiredStatus).toMatchObject({
          version: 1,
          status: 'rejected',
          reason: 'limit too high for this sensor',
        });
      });

      test('report merges patches, bumps the version, and the operator reads it back', async () => {
        const client = await mod(Twinned, 'twin');
        expect(await client.report({ limit: 1, nested: { a: 1 } })).toBe(1);
        expect(await client.report({ nested: { b: 2 }, limit: null })).toBe(2);
        const twin = await readTwin(op, deviceId, 'twin');
        expect(twin.reported).toEqual({ version: 2, properties: { nested: { a: 1, b: 2 } } });
        expect((await client.getTwin()).reported).toEqual(twin.reported);
      });

      test('both twin documents survive a module restart; versions continue', async () => {
        const first = await mod(Twinned, 'twin');
        await first.report({ note: 'one' });
        await updateDesired(op, deviceId, 'twin', { limit: 4 });
        await first.close();
        const second = await mod(Twinned, 'twin');
        expect(second.desired()).toEqual({ version: 1, properties: { limit: 4 } });
        expect(await second.report({ limit: 4 })).toBe(2);
        expect((await readTwin(op, deviceId, 'twin')).reported.properties).toEqual({ note: 'one', limit: 4 });
      });

      test('an invalid stored reported document does not keep a module from connecting; its next report replaces it', async () => {
        // Written by anyone with access to the key: a version past the bound, a document that is no twin at all.
        for (const stored of ['{"version":9007199254740992,"properties":{}}', 'not json']) {
          await op.setRetained(addresses.reported(deviceId, 'twin'), new TextEncoder().encode(stored));
          errors.length = 0;
          const client = await mod(Twinned, 'twin');
          expect(errors.map((e) => e.message).join()).toMatch(/reported properties/);
          expect(await client.report({ note: 'fresh' })).toBe(1);
          expect((await readTwin(op, deviceId, 'twin')).reported).toEqual({
            version: 1,
            properties: { note: 'fresh' },
          });
          await client.close();
        }
      });

      test("IoT Hub's twin rules are checked before sending: names, depth, size", async () => {
        const client = await mod(Twinned, 'twin');
        await expect(client.report({ 'bad.name': 1 } as never)).rejects.toSatisfy((e: unknown) =>
          isEdgeKitError(e, 'twin-limit'),
        );
        let deep: Record<string, unknown> = { leaf: 1 };
        for (let i = 0; i < 11; i++) deep = { d: deep };
        await expect(client.report(deep as never)).rejects.toSatisfy((e: unknown) => isEdgeKitError(e, 'twin-limit'));
        await expect(client.report({ note: 'x'.repeat(33 * 1024) })).rejects.toSatisfy((e: unknown) =>
          isEdgeKitError(e, 'twin-limit'),
        );
        await expect(client.report([] as never)).rejects.toThrow(TypeError);
        expect(await client.report({ note: 'ok' })).toBe(1);
      });

      test('updateDesired with an expected version fails on a conflict', async () => {
        await updateDesired(op, deviceId, 'twin', { limit: 1 });
        await expect(updateDesired(op, deviceId, 'twin', { limit: 2 }, { ifVersion: 0 })).rejects.toSatisfy(
          (e: unknown) => isEdgeKitError(e, 'version-conflict'),
        );
        expect((await updateDesired(op, deviceId, 'twin', { limit: 2 }, { ifVersion: 1 })).version).toBe(2);
      });
    });

    // ------------------------------------------------------------------ methods

    describe('direct methods', () => {
      async function server(extra: Partial<ConnectOptions> = {}) {
        const s = await mod(Methods, 'server', extra);
        await s.handle('echo', (req) => ({ text: req.text }));
        await s.handle('fail', (req) => {
          if (req.status) throw new MethodError(req.status, `failed with ${req.status}`);
          throw new Error('boom');
        });
        return s;
      }

      test("a handler learns its caller from the broker: the calling module's identity, authenticated", async () => {
        const s = await mod(Methods, 'server');
        const callers: unknown[] = [];
        await s.handle('echo', (req, context) => {
          callers.push(context.caller);
          return { text: req.text };
        });
        const caller = await mod(untypedModule, 'caller');
        await caller.invoke(Methods, 'server', 'echo', { text: 'hi' });
        expect(callers).toEqual([{ deviceId, moduleId: 'caller', authenticated: true }]);
      });

      test('a handler result is answered 200 with its payload, typed for the caller', async () => {
        await server();
        const caller = await mod(untypedModule, 'caller');
        const res = await caller.invoke(Methods, 'server', 'echo', { text: 'hi' });
        expect(res).toEqual({ ok: true, status: 200, payload: { text: 'hi' } });
      });

      test('a custom status: MethodError(status) or an explicit { status, payload }', async () => {
        const s = await server();
        await s.handle('checked', (req) => ({ status: 201, payload: { x: req.x } }));
        const caller = await mod(untypedModule, 'caller');
        expect(await caller.invoke(Methods, 'server', 'fail', { status: 409 })).toMatchObject({
          ok: false,
          status: 409,
          message: 'failed with 409',
        });
        expect(await caller.invoke(Methods, 'server', 'checked', { x: 2 })).toEqual({
          ok: true,
          status: 201,
          payload: { x: 2 },
        });
      });

      test('any other throw answers 500 with the message', async () => {
        await server();
        const caller = await mod(untypedModule, 'caller');
        expect(await caller.invoke(Methods, 'server', 'fail', {})).toMatchObject({
          ok: false,
          status: 500,
          message: 'boom',
        });
      });

      test('an unregistered method answers 501 at once', async () => {
        await server();
        const res = await invokeAsService(op, env.clock, { deviceId, moduleId: 'server' }, 'unhandled', null, {
          timeoutInMs: 60_000,
        });
        expect(res.status).toBe(501);
      });

      test('a request payload that fails its schema answers 400', async () => {
        const s = await server();
        await s.handle('checked', (req) => req);
        const res = await invokeAsService(op, env.clock, { deviceId, moduleId: 'server' }, 'checked', { x: 'no' });
        expect(res).toMatchObject({ ok: false, status: 400 });
      });

      test('an offline or unknown target answers 404 at once, not after a timeout', async () => {
        const s = await server();
        const caller = await mod(untypedModule, 'caller');
        expect((await caller.invoke(Methods, 'server', 'echo', { text: 'x' })).status).toBe(200);
        await s.close();
        // The caller keeps watching the target's presence after its first call: it learns of the close quickly.
        const learned = Date.now() + WAIT;
        while ((await caller.invoke(Methods, 'server', 'echo', { text: 'x' }, { timeoutInMs: 5_000 })).status !== 404) {
          if (Date.now() > learned) throw new Error('the caller never saw the target go offline');
          await new Promise((resolve) => setTimeout(resolve, 10));
        }
        const started = Date.now();
        expect((await caller.invoke(Methods, 'server', 'echo', { text: 'x' }, { timeoutInMs: 60_000 })).status).toBe(
          404,
        );
        expect((await caller.invoke(Methods, 'nobody', 'echo', { text: 'x' }, { timeoutInMs: 60_000 })).status).toBe(
          404,
        );
        expect(Date.now() - started).toBeLessThan(5_000);
      });

      test('no answer within the timeout gives 504, and the deadline reaches the handler as an AbortSignal', async () => {
        const s = await mod(Methods, 'server');
        const aborted = gate();
        let sawAbort = false;
        await s.handle('slow', async (_req, { signal }) => {
          await new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
          sawAbort = signal.aborted;
          aborted.open();
          return { aborted: true };
        });
        const call = invokeAsService(
          op,
          env.clock,
          { deviceId, moduleId: 'server' },
          'slow',
          {},
          { timeoutInMs: 1_000 },
        );
        await env.advance(1_100);
        expect((await call).status).toBe(504);
        await aborted.promise;
        expect(sawAbort).toBe(true);
      });

      test('a request whose deadline passed while it waited is not executed', async () => {
        const s = await mod(Methods, 'server', { methodConcurrency: 1 });
        const release = gate();
        const ran: string[] = [];
        await s.handle('slow', async () => {
          ran.push('slow');
          await release.promise;
          return { aborted: false };
        });
        await s.handle('echo', (req) => {
          ran.push(req.text);
          return req;
        });
        const first = invokeAsService(
          op,
          env.clock,
          { deviceId, moduleId: 'server' },
          'slow',
          {},
          { timeoutInMs: 60_000 },
        );
        await waitUntil(() => ran.length === 1, 'slow running', WAIT);
        const second = invokeAsService(
          op,
          env.clock,
          { deviceId, moduleId: 'server' },
          'echo',
          { text: 'late' },
          { timeoutInMs: 1_000 },
        );
        await env.advance(1_200);
        expect((await second).status).toBe(504);
        release.open();
        expect((await first).status).toBe(200);
        await env.advance(50);
        expect(ran).toEqual(['slow']);
      });

      test('a method request over 128 KB (a caller that is not edgekit) is answered 413 without running the handler', async () => {
        const s = await mod(Methods, 'server');
        let ran = 0;
        await s.handle('echo', (req) => {
          ran++;
          return { text: req.text };
        });
        const request = new TextEncoder().encode(
          JSON.stringify({ method: 'echo', payload: { text: 'x'.repeat(130 * 1024) }, timeoutInMs: 10_000 }),
        );
        const reply = await op.request(addresses.methods(deviceId, 'server'), request, { timeoutInMs: WAIT });
        const answer = JSON.parse(new TextDecoder().decode(reply)) as { status: number; payload: { message: string } };
        expect(answer.status).toBe(413);
        expect(answer.payload.message).toMatch(/limit/);
        expect(ran).toBe(0);
        const ok = await op.request(
          addresses.methods(deviceId, 'server'),
          new TextEncoder().encode(JSON.stringify({ method: 'echo', payload: { text: 'hi' }, timeoutInMs: 10_000 })),
          { timeoutInMs: WAIT },
        );
        expect(JSON.parse(new TextDecoder().decode(ok))).toEqual({ status: 200, payload: { text: 'hi' } });
      });

      test('invoke validates its arguments: timeout range, payload size, method names', async () => {
        const caller = await mod(untypedModule, 'caller');
        await expect(caller.invoke(Methods, 'server', 'echo', { text: 'x' }, { timeoutInMs: 1_000 })).rejects.toThrow(
          RangeError,
        );
        await expect(caller.invoke(Methods, 'server', 'nope' as never, {} as never)).rejects.toThrow(RangeError);
        await expect(caller.invoke(Methods, 'bad/name', 'echo', { text: 'x' })).rejects.toThrow(RangeError);
        await expect(caller.invoke(Methods, 'server', 'echo', { text: 'x'.repeat(130 * 1024) })).rejects.toSatisfy(
          (e: unknown) => isEdgeKitError(e, 'message-too-large'),
        );
      });
    });

    // ------------------------------------------------------------------ presence and lifecycle

    describe('presence and lifecycle', () => {
      test('a connected module is online; after close() it is offline (closed)', async () => {
        const client = await mod(Sink, 'sink');
        expect(await readPresence(op, deviceId, 'sink')).toMatchObject({ state: 'online' });
        await client.close();
        expect(await readPresence(op, deviceId, 'sink')).toMatchObject({ state: 'offline', reason: 'closed' });
      });

      test('an abrupt disconnect shows the module offline through its last will', async () => {
        await mod(Sink, 'sink');
        await env.cut('sink', { refuse: true });
        const deadline = Date.now() + 15_000;
        let presence = await readPresence(op, deviceId, 'sink');
        while (presence?.state !== 'offline' && Date.now() < deadline) {
          await new Promise((resolve) => setTimeout(resolve, 20));
          presence = await readPresence(op, deviceId, 'sink');
        }
        expect(presence).toMatchObject({ state: 'offline', reason: 'connection-lost' });
        await env.restore('sink');
      });

      test('with two replicas, the module stays online while one of them is; offline when the last one goes', async () => {
        const a = await mod(Sink, 'sink', { replicaId: 'a' });
        const b = await connect(Sink, {
          deviceId,
          moduleId: 'sink',
          replicaId: 'b',
          transport: env.transport('sink-b'),
          clock: env.clock,
          onError: (e) => errors.push(e),
        });
        clients.push(b as unknown as ModuleClient<ModuleContract>);
        await b.close();
        const deadline = Date.now() + 15_000;
        let presence = await readPresence(op, deviceId, 'sink');
        while (presence?.state !== 'online' && Date.now() < deadline) {
          await new Promise((resolve) => setTimeout(resolve, 20));
          presence = await readPresence(op, deviceId, 'sink');
        }
        expect(presence?.state).toBe('online');
        await a.close();
        expect(await readPresence(op, deviceId, 'sink')).toMatchObject({ state: 'offline', reason: 'closed' });
      });

      test('status(): current state first; disconnected, reconnecting and connected again after a cut; closed last', async () => {
        const client = await mod(Sink, 'sink');
        const status = client.status();
        expect((await status.next()).value).toMatchObject({ state: 'connected' });
        await env.cut('sink', { refuse: true });
        expect(await nextStatus(status, 'disconnected')).toMatchObject({ state: 'disconnected' });
        const reconnecting = await nextStatus(status, 'reconnecting');
        expect(reconnecting).toMatchObject({ attempt: 1 });
        await env.restore('sink');
        await env.advance(600);
        await nextStatus(status, 'connected');
        expect(await readPresence(op, deviceId, 'sink')).toMatchObject({ state: 'online' });
        await client.close();
        expect(await nextStatus(status, 'closed')).toEqual({ state: 'closed' });
        expect((await status.next()).done).toBe(true);
        expect(client.stats().reconnects).toBe(1);
      });

      test('subscriptions are re-established after a reconnect', async () => {
        const { inbox } = await sinkInbox('sink');
        const sink = clients[clients.length - 1] as unknown as ModuleClient<typeof Sink>;
        const status = sink.status();
        await env.cut('sink');
        await nextStatus(status, 'disconnected');
        await env.advance(600);
        await nextStatus(status, 'connected');
        await inject('sink', 'in', { n: 1 });
        expect((await inbox.waitFor(1))[0]?.body).toEqual({ n: 1 });
      });

      test('methods and desired properties are served again after a reconnect', async () => {
        const s = await mod(Methods, 'server');
        await s.handle('echo', (req) => req);
        const desired: unknown[] = [];
        const t = s as unknown as ModuleClient<typeof Twinned>;
        await t.onDesired((d) => {
          desired.push(d);
        });
        const status = s.status();
        await env.cut('server');
        await nextStatus(status, 'disconnected');
        await env.advance(600);
        await nextStatus(status, 'connected');
        const res = await invokeAsService(
          op,
          env.clock,
          { deviceId, moduleId: 'server' },
          'echo',
          { text: 'again' },
          { timeoutInMs: 5_000 },
        );
        expect(res).toMatchObject({ ok: true, payload: { text: 'again' } });
        await updateDesired(op, deviceId, 'server', { limit: 3 });
        await waitUntil(() => desired.length === 1, 'desired after reconnect', WAIT);
      });

      test('close() finishes within its drainTimeoutInMs while the link is silent; the last will marks the module offline', async ({
        skip,
      }) => {
        if (env.stall === undefined) return skip('the environment cannot make a link go silent (no stall)');
        const client = await mod(Twinned, 'quiet');
        await env.stall('quiet');
        // Work in flight that the broker will never answer.
        const report = client.report({ note: 'lost in the partition' }, { timeoutInMs: 60_000 }).catch((e) => e);
        const started = Date.now();
        const closing = client.close({ drainTimeoutInMs: 1_000 });
        await env.advance(1_000);
        await closing;
        expect(Date.now() - started).toBeLessThan(1_000 + 1_000);
        expect(client.state).toEqual({ state: 'closed' });
        expect(await report).toBeInstanceOf(Error);
        await waitUntilAsync(
          async () => (await readPresence(op, deviceId, 'quiet'))?.state === 'offline',
          'the module to show offline',
          WAIT,
        );
      });

      test('a flapping link (cut again soon after each reconnect): the module ends up connected and takes input', async () => {
        const { sink, inbox } = await sinkInbox('flappy');
        for (let cut = 0; cut < 25; cut++) {
          await waitUntil(() => sink.state.state === 'connected', `reconnect ${cut}`, WAIT);
          await new Promise((resolve) => setTimeout(resolve, Math.floor(Math.random() * 20)));
          await env.cut('flappy');
        }
        await inject('flappy', 'in', { n: 7 });
        const messages = await inbox.waitFor(1, WAIT * 2);
        expect(messages.map((m) => m.body)).toEqual([{ n: 7 }]);
        expect(sink.stats().reconnects).toBeGreaterThanOrEqual(1);
      });

      test('close() during a reconnect leaves nothing connected and the module offline', async () => {
        const client = await mod(Methods, 'server');
        await client.handle('echo', (req) => req);
        const status = client.status();
        await env.cut('server');
        await nextStatus(status, 'reconnecting');
        await client.close();
        expect(client.state).toEqual({ state: 'closed' });
        await env.advance(700);
        const presence = await readPresence(op, deviceId, 'server');
        expect(presence?.state).toBe('offline');
        const res = await invokeAsService(
          op,
          env.clock,
          { deviceId, moduleId: 'server' },
          'echo',
          { text: 'x' },
          { timeoutInMs: 2_000 },
        );
        expect(res.status).toBe(404);
      });

      test('close() while disconnected does not wait for sends that cannot go anywhere; they fail with closed', async () => {
        await routes({ r: 'FROM /messages/modules/sensor/* INTO $upstream' });
        const sensor = await mod(Telemetry, 'sensor');
        await waitRoutes(sensor as never, 'out', 1, { n: 0 });
        const status = sensor.status();
        await env.cut('sensor', { refuse: true });
        await nextStatus(status, 'disconnected');
        const pending = sensor.send('out', { n: 1 });
        const started = Date.now();
        await sensor.close({ drainTimeoutInMs: 20_000 });
        expect(Date.now() - started).toBeLessThan(5_000);
        await expect(pending).rejects.toSatisfy((e: unknown) => isEdgeKitError(e, 'closed'));
        await env.restore('sensor');
      });

      test('close() drains an in-flight handler before resolving; then the message is not redelivered', async () => {
        const sink = await mod(Sink, 'sink');
        const started = gate();
        let finished = false;
        await sink.onInput('in', async () => {
          started.open();
          await new Promise((resolve) => setTimeout(resolve, 50));
          finished = true;
        });
        await inject('sink', 'in', { n: 1 });
        await started.promise;
        await sink.close();
        expect(finished).toBe(true);
        const again = await sinkInbox('sink');
        await inject('sink', 'in', { n: 2 });
        await again.inbox.waitFor(1);
        await env.advance(50);
        expect(again.inbox.items.map((m) => m.body.n)).toEqual([2]);
      });

      test('close() is idempotent, closed() resolves, and the client refuses work afterwards', async () => {
        const client = await mod(Telemetry, 'sensor');
        await Promise.all([client.close(), client.close()]);
        await expect(client.closed()).resolves.toBeUndefined();
        await expect(client.send('out', { n: 1 })).rejects.toSatisfy((e: unknown) => isEdgeKitError(e, 'closed'));
        await expect(client.onInput('in', () => undefined)).rejects.toSatisfy((e: unknown) =>
          isEdgeKitError(e, 'closed'),
        );
      });

      test('bad names and arguments are rejected at the call with TypeError/RangeError', async () => {
        await expect(connect(Sink, { deviceId: 'a/b', moduleId: 'm', transport: env.transport('x') })).rejects.toThrow(
          RangeError,
        );
        await expect(connect(Sink, { deviceId: 'd', moduleId: '', transport: env.transport('x') })).rejects.toThrow(
          RangeError,
        );
        await expect(connect(Sink, { deviceId: 'd', moduleId: 'm+1', transport: env.transport('x') })).rejects.toThrow(
          RangeError,
        );
        const client = await mod(Telemetry, 'sensor');
        await expect(client.send('nope' as never, { n: 1 } as never)).rejects.toThrow(RangeError);
        await expect(client.send('out', { n: 1 }, { properties: { a: 1 as unknown as string } })).rejects.toThrow(
          TypeError,
        );
        await expect(client.onInput('in', 'not a function' as never)).rejects.toThrow(TypeError);
        await expect(client.onInput('in', () => undefined, { concurrency: 0 })).rejects.toThrow(RangeError);
        await expect(client.send('out', { n: 1n } as never)).rejects.toSatisfy((e: unknown) =>
          isEdgeKitError(e, 'encode-failed'),
        );
      });
    });

    // ------------------------------------------------------------------ observing and listing

    describe('request and reply', () => {
      test('a serve handler that rejects makes the request reject with transport-error at once', async () => {
        const server = await env.transport('$operator').connect({ clientId: `$server-${deviceId}` });
        try {
          await server.serve(addresses.methods(deviceId, 'raw'), async () => {
            throw new Error('handler failed');
          });
          // The caller's timeout is long (and a manual clock never reaches it): only the failure reply can end it.
          const error = await op
            .request(addresses.methods(deviceId, 'raw'), new Uint8Array([1]), { timeoutInMs: 60_000 })
            .catch((e: unknown) => e);
          expect(isEdgeKitError(error, 'transport-error')).toBe(true);
          expect((error as Error).message).toContain('handler failed');
        } finally {
          await server.close();
        }
      });
    });

    /** Raw deliveries of a consumer, with their text; `ack` says whether each is acknowledged at once. */
    const deliveries = async (connection: TransportConnection, address: string, ack: boolean) => {
      const got: Array<{ text: string; redelivered: boolean; delivery: Delivery }> = [];
      const waiters: Array<() => void> = [];
      const subscription = await connection.consume(address, { prefetch: 10 }, (delivery) => {
        got.push({ text: new TextDecoder().decode(delivery.bytes), redelivered: delivery.redelivered, delivery });
        if (ack) delivery.ack();
        for (const wake of waiters.splice(0)) wake();
      });
      return {
        got,
        subscription,
        waitFor: (count: number) =>
          waitUntil(
            () => got.length >= count,
            `${count} deliveries on ${address} (got ${got.length})`,
            WAIT,
            (wake) => waiters.push(wake),
          ),
      };
    };

    describe('keeping and giving back', () => {
      const text = (value: string) => new TextEncoder().encode(value);
      test('after keep(address), a queue no one ever consumed keeps its messages for the client id that kept it', async () => {
        const address = addresses.upstream(deviceId);
        const clientId = `$queue-${deviceId}`;
        const keeper = await env.transport('$operator').connect({ clientId });
        if (keeper.keep === undefined && !capabilities.keepsMessagesBeforeFirstConsumer) {
          await keeper.close();
          throw new Error(
            'a transport whose queues do not keep messages before their first consumer must implement keep',
          );
        }
        await keeper.keep?.(address);
        await keeper.keep?.(address); // idempotent
        await keeper.close();
        for (const n of [1, 2, 3]) await op.publish(address, text(`m${n}`));
        const consumer = await env.transport('$operator').connect({ clientId });
        try {
          const got = await deliveries(consumer, address, true);
          await got.waitFor(3);
          expect(got.got.map((g) => g.text)).toEqual(['m1', 'm2', 'm3']);
        } finally {
          await consumer.close();
        }
        if (op.keep) await expect(op.keep('upstream/#')).rejects.toThrow();
      });

      test('a released delivery comes again, marked redelivered, to a consumer of the address', async () => {
        const address = addresses.upstream(deviceId);
        await op.keep?.(address);
        const first = await deliveries(op, address, false);
        for (const n of [1, 2]) await op.publish(address, text(`m${n}`));
        await first.waitFor(2);
        await first.subscription.close();
        // Last first, so that a transport that puts each back at the head keeps the order.
        for (const g of [...first.got].reverse()) g.delivery.release?.();
        if (first.got.some((g) => g.delivery.release === undefined)) return; // optional: redelivered once the connection ends
        const second = await deliveries(op, address, true);
        await second.waitFor(2);
        expect(second.got.map((g) => [g.text, g.redelivered])).toEqual([
          ['m1', true],
          ['m2', true],
        ]);
      });
    });

    describe('observing and listing', () => {
      /** Raw connections a test opened besides `op`; closed after it. */
      let raw: TransportConnection[] = [];
      afterEach(async () => {
        await Promise.all(raw.map((c) => c.close().catch(() => undefined)));
        raw = [];
      });
      const rawConnection = async (name: string): Promise<TransportConnection> => {
        const connection = await env.transport('$operator').connect({ clientId: `$${name}-${deviceId}` });
        raw.push(connection);
        return connection;
      };
      const text = (value: string) => new TextEncoder().encode(value);
      /** What an observation saw, as `address text`, awaited with timeouts. */
      const observations = () => {
        const seen: string[] = [];
        const waiters: Array<() => void> = [];
        return {
          seen,
          onMessage: (address: string, bytes: Uint8Array) => {
            seen.push(`${address} ${new TextDecoder().decode(bytes)}`);
            for (const wake of waiters.splice(0)) wake();
          },
          waitFor: (entry: string) =>
            waitUntil(
              () => seen.includes(entry),
              `the observation of ${entry} (saw ${JSON.stringify(seen)})`,
              WAIT,
              (wake) => waiters.push(wake),
            ),
        };
      };
      test('observe() sees messages published to matching addresses, with the address; consumers still get them', async () => {
        const watcher = await rawConnection('watcher');
        const inputs = observations();
        const upstream = observations();
        await watcher.observe(`inputs/${deviceId}/*/*`, inputs.onMessage);
        await watcher.observe(`*/${deviceId}`, upstream.onMessage);
        const sink = await deliveries(await rawConnection('sink'), `inputs/${deviceId}/sink/in`, true);
        await op.publish(`inputs/${deviceId}/sink/in`, text('m1'));
        await op.publish(`upstream/${deviceId}`, text('u1'));
        await inputs.waitFor(`inputs/${deviceId}/sink/in m1`);
        await upstream.waitFor(`upstream/${deviceId} u1`);
        await sink.waitFor(1);
        expect(sink.got.map((g) => g.text)).toEqual(['m1']);
        expect(inputs.seen).toEqual([`inputs/${deviceId}/sink/in m1`]);
        expect(upstream.seen).toEqual([`upstream/${deviceId} u1`]);
      });

      test('a connection observing an address it also consumes gets each message once as a delivery and once per observation', async () => {
        const connection = await rawConnection('both');
        const wildcard = observations();
        const exact = observations();
        const address = `inputs/${deviceId}/sink/in`;
        const sink = await deliveries(connection, address, true);
        await connection.observe(`inputs/${deviceId}/*/in`, wildcard.onMessage);
        await connection.observe(address, exact.onMessage);
        await op.publish(address, text('m1'));
        await op.publish(address, text('m2'));
        await wildcard.waitFor(`${address} m2`);
        await exact.waitFor(`${address} m2`);
        await sink.waitFor(2);
        expect(sink.got.map((g) => g.text)).toEqual(['m1', 'm2']);
        expect(wildcard.seen).toEqual([`${address} m1`, `${address} m2`]);
        expect(exact.seen).toEqual([`${address} m1`, `${address} m2`]);
      });

      test('addresses that do not match the pattern are not observed', async () => {
        const watcher = await rawConnection('watcher');
        const observed = observations();
        const exact = observations();
        await watcher.observe(`inputs/${deviceId}/*/in`, observed.onMessage);
        await watcher.observe(`upstream/${deviceId}`, exact.onMessage);
        // Published in order on one connection: anything wrongly observed would arrive before the markers.
        await op.publish(`inputs/${deviceId}/sink/in2`, text('other input'));
        await op.publish(`inputs/x-${deviceId}/sink/in`, text('other device'));
        await op.publish(`inputs/${deviceId}/sink`, text('fewer segments'));
        await op.publish(`inputs/${deviceId}/sink/in/more`, text('more segments'));
        await op.publish(`deadletter/${deviceId}/sink`, text('other kind'));
        await op.publish(`upstream/${deviceId}/more`, text('below the exact address'));
        await op.publish(`upstream/x-${deviceId}`, text('other upstream'));
        await op.publish(`inputs/${deviceId}/marker/in`, text('marker'));
        await op.publish(`upstream/${deviceId}`, text('marker'));
        await observed.waitFor(`inputs/${deviceId}/marker/in marker`);
        await exact.waitFor(`upstream/${deviceId} marker`);
        expect(observed.seen).toEqual([`inputs/${deviceId}/marker/in marker`]);
        expect(exact.seen).toEqual([`upstream/${deviceId} marker`]);
      });

      test('after close() an observation sees nothing more; another one of the same pattern goes on', async () => {
        const watcher = await rawConnection('watcher');
        const closing = observations();
        const staying = observations();
        const marker = observations();
        const pattern = `inputs/${deviceId}/*/in`;
        const first = await watcher.observe(pattern, closing.onMessage);
        await watcher.observe(pattern, staying.onMessage);
        await watcher.observe(`upstream/${deviceId}`, marker.onMessage);
        await op.publish(`inputs/${deviceId}/sink/in`, text('before'));
        await closing.waitFor(`inputs/${deviceId}/sink/in before`);
        await first.close();
        await first.close();
        await op.publish(`inputs/${deviceId}/sink/in`, text('after'));
        await op.publish(`upstream/${deviceId}`, text('marker'));
        await staying.waitFor(`inputs/${deviceId}/sink/in after`);
        await marker.waitFor(`upstream/${deviceId} marker`);
        expect(closing.seen).toEqual([`inputs/${deviceId}/sink/in before`]);
        expect(staying.seen).toEqual([`inputs/${deviceId}/sink/in before`, `inputs/${deviceId}/sink/in after`]);
      });

      test('bad patterns are rejected with TypeError/RangeError', async () => {
        const bad = (e: unknown) => e instanceof TypeError || e instanceof RangeError;
        for (const pattern of ['', 'a/+', 'a//b', 'a.b', 'a/#', '/a', 'a/', 42]) {
          await expect(op.observe(pattern as string, () => undefined)).rejects.toSatisfy(bad);
          if (op.listRetained !== undefined) await expect(op.listRetained(pattern as string)).rejects.toSatisfy(bad);
        }
        await expect(op.observe(`upstream/${deviceId}`, 'not a function' as never)).rejects.toThrow(TypeError);
      });

      test('listRetained() returns exactly the matching retained keys and values (when the transport lists)', async () => {
        if (!capabilities.listsRetained) {
          expect(op.listRetained).toBeUndefined();
          return;
        }
        const list = op.listRetained?.bind(op);
        if (list === undefined) throw new Error('listsRetained is true but listRetained is missing');
        const writer = await rawConnection('writer');
        await writer.setRetained(`presence/${deviceId}/a`, text('A'));
        await writer.setRetained(`presence/${deviceId}/b`, text('B'));
        await writer.setRetained(`presence/${deviceId}/c`, text('C'));
        await writer.setRetained(`presence/${deviceId}/b`, text('B2'));
        await writer.setRetained(`presence/${deviceId}/c`, null);
        await writer.setRetained(`presence/x-${deviceId}/a`, text('other device'));
        await writer.setRetained(`presence/${deviceId}/a/more`, text('more segments'));
        await writer.setRetained(`twin/${deviceId}/a/desired`, text('other kind'));
        const decoded = (found: ReadonlyMap<string, Uint8Array>) =>
          Object.fromEntries([...found].map(([key, value]) => [key, new TextDecoder().decode(value)]));
        expect(decoded(await list(`presence/${deviceId}/*`))).toEqual({
          [`presence/${deviceId}/a`]: 'A',
          [`presence/${deviceId}/b`]: 'B2',
        });
        expect(decoded(await list(`presence/${deviceId}/a`))).toEqual({ [`presence/${deviceId}/a`]: 'A' });
        expect(decoded(await list(`presence/${deviceId}/c`))).toEqual({});
        expect(decoded(await list(`*/${deviceId}/*/desired`))).toEqual({
          [`twin/${deviceId}/a/desired`]: 'other kind',
        });
        // Listing while the same keys are watched and observed on the connection leaves those working.
        const watched: Array<string | undefined> = [];
        await op.watchRetained(`presence/${deviceId}/a`, (value) =>
          watched.push(value === undefined ? undefined : new TextDecoder().decode(value)),
        );
        const observed = observations();
        await op.observe(`presence/${deviceId}/*`, observed.onMessage);
        expect(Object.keys(decoded(await list(`presence/${deviceId}/*`))).sort()).toEqual([
          `presence/${deviceId}/a`,
          `presence/${deviceId}/b`,
        ]);
        await writer.setRetained(`presence/${deviceId}/a`, text('A2'));
        await waitUntil(() => watched.includes('A2'), 'the watch to see A2', WAIT);
        expect(watched).toEqual(['A', 'A2']);
        // Retained values are not messages: the observation saw none of them.
        expect(observed.seen).toEqual([]);
      });
    });
  });
}
