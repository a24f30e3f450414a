/**
 * The AMQP transport beside raw amqplib on one RabbitMQ started here, in the same run, alternating rounds:
 *
 *   (a) throughput, `send` → input handler, 256-byte JSON: two edgekit modules joined by a route, against an amqplib
 *       publisher (confirm channel, the same window of unconfirmed publishes) and consumer (manual ack after its
 *       handler, the same prefetch) sending the same AMQP messages; msgs/s, the ratio, and Node CPU time per message
 *       (RabbitMQ takes most of the CPU on a small machine, so the ratio alone hides what edgekit costs); a third row
 *       gives amqplib the transport's socket-write coalescing, to show how much of the difference that is;
 *   (b) method round trip p50/p99: edgekit `invoke`, the transport's own request/serve, and amqplib request/reply
 *       with direct reply-to and a correlation id;
 *   (c) throughput with 1, 2 and 4 competing replicas of the receiving module, with an instant handler and with one
 *       that waits 1 ms (standing in for I/O).
 *
 * Every amqplib connection sets `noDelay: true`, as the transport does (with Nagle on, a round trip takes ~40 ms).
 *
 *   npm run build && TSX_TSCONFIG_PATH=bench/tsconfig.json node --import tsx --expose-gc bench/amqp.ts \
 *     [--rounds 5] [--messages 20000] [--calls 2000] [--window 200] [--only a,b,c]
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import * as amqplib from 'amqplib';
import { connect, defineModule, json, type ModuleClient, method, typed } from 'edgekit';
import { amqp } from 'edgekit/amqp';
import { deployRoutes } from '../src/service/operations.js';
import { coalesceSocketWrites } from '../src/transports/amqp/socket-writes.js';
import { startRabbitMQ } from '../test/integration/brokers/rabbitmq.js';
import { body256, fmt, median, table } from './common.js';

const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '5' },
    messages: { type: 'string', default: '20000' },
    calls: { type: 'string', default: '2000' },
    window: { type: 'string', default: '200' },
    only: { type: 'string', default: 'a,b,c' },
  },
});
const ROUNDS = positive('rounds', values.rounds);
const N = positive('messages', values.messages);
const CALLS = positive('calls', values.calls);
/** Publishes awaiting their confirm at once, for both clients. */
const WINDOW = positive('window', values.window);
const parts = new Set(values.only.split(','));
/** The core consumes an input with a prefetch of max(2 × concurrency, 32): 32 for the default concurrency 1. */
const PREFETCH = 32;
/** What the core puts on every routed message: the route's time to live, by default 7200 s. */
const EXPIRATION = String(7200 * 1000);

function positive(name: string, value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`--${name} must be a positive integer, got ${value}`);
  return n;
}

const body = body256();
type Body = typeof body;
const Sensor = defineModule({ outputs: { out: json<Body>() } });
const Receiver = defineModule({ inputs: { in: json<Body>() } });
const Echo = defineModule({ methods: { echo: method(typed<{ seq: number }>(), typed<{ seq: number }>()) } });
const Invoker = defineModule({});

/** Runs `start(i)` for i < n, at most `window` unsettled at once; resolves when all settled. */
function pump(n: number, window: number, start: (i: number) => Promise<unknown>): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    let next = 0;
    let settled = 0;
    let failed = false;
    const onSettled = () => {
      settled++;
      if (settled === n) resolve();
      else if (next < n) launch();
    };
    const onFailed = (error: unknown) => {
      if (failed) return;
      failed = true;
      reject(error);
    };
    const launch = () => {
      const i = next++;
      start(i).then(onSettled, onFailed);
    };
    for (let k = 0; k < Math.min(window, n); k++) launch();
  });
}

/** Counts handled messages; `expect(n)` resolves once n more have been handled. */
class Arrivals {
  private count = 0;
  private target = 0;
  private reached: (() => void) | undefined;

  readonly hit = (): void => {
    if (++this.count === this.target) this.reached?.();
  };

  expect(n: number): Promise<void> {
    this.count = 0;
    this.target = n;
    return new Promise<void>((resolve) => {
      this.reached = resolve;
    });
  }
}

/** A round function that also records the Node CPU time (user + system) it used per item. */
function withCpu(fn: (n: number) => Promise<void>, perItem: number[]): (n: number) => Promise<void> {
  return async (n) => {
    const before = process.cpuUsage();
    await fn(n);
    const used = process.cpuUsage(before);
    perItem.push((used.user + used.system) / n);
  };
}

const micros = (perItem: number[]) => median(perItem.slice(1)).toFixed(1); // the first entry is the warm-up

const rangeOf = (values: number[]) => `${Math.min(...values).toFixed(2)}–${Math.max(...values).toFixed(2)}`;

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))] as number;
}

/**
 * Runs each of `fns` in turn, `rounds` times after one warm-up each (as `compare` in common.ts does for two), so all
 * see the same machine load; returns each one's median rate, the median of its per-round ratios to the first, and the
 * range of those ratios (a wide range means the machine was busy with other work).
 */
async function alternate(
  n: number,
  rounds: number,
  fns: ReadonlyArray<(n: number) => Promise<void>>,
): Promise<{ rates: number[]; ratios: number[]; spread: string[] }> {
  for (const fn of fns) await fn(Math.min(n, 20_000));
  const rates = fns.map((): number[] => []);
  const ratios = fns.map((): number[] => []);
  for (let round = 0; round < rounds; round++) {
    const perFn: number[] = [];
    for (const fn of fns) {
      const start = process.hrtime.bigint();
      await fn(n);
      perFn.push(n / (Number(process.hrtime.bigint() - start) / 1e9));
    }
    for (const [i, rate] of perFn.entries()) {
      rates[i]?.push(rate);
      ratios[i]?.push(rate / (perFn[0] as number));
    }
  }
  const spread = ratios.map(rangeOf);
  return { rates: rates.map(median), ratios: ratios.map(median), spread };
}

async function rawConnect(url: string, coalesce = false): Promise<amqplib.ChannelModel> {
  const model = await amqplib.connect(url, { noDelay: true });
  if (coalesce) coalesceSocketWrites(model);
  model.on('error', () => undefined);
  return model;
}

const closers: Array<() => Promise<unknown>> = [];
const broker = await startRabbitMQ();
// Ctrl-C must not leave the broker behind.
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    void broker.stop().finally(() => process.exit(130));
  });
}
let unique = 0;
const fresh = (label: string) => `${label}${++unique}`;

try {
  const probe = await rawConnect(broker.url);
  const version = String(probe.connection.serverProperties.version ?? '?');
  await probe.close();
  console.log(
    `RabbitMQ ${version}, Node ${process.version}, amqplib ${amqplibVersion()}; ${ROUNDS} alternating rounds`,
  );
  if (parts.has('a')) await throughput(broker.url);
  if (parts.has('b')) await roundTrip(broker.url);
  if (parts.has('c')) await replicas(broker.url);
} finally {
  for (const close of closers.reverse()) await close().catch(() => undefined);
  await broker.stop();
}

function amqplibVersion(): string {
  const file = path.resolve(import.meta.dirname, '../node_modules/amqplib/package.json');
  return (JSON.parse(readFileSync(file, 'utf8')) as { version: string }).version;
}

// ------------------------------------------------------------------------------------------------ (a) throughput

/** Two edgekit modules on their own connections, joined by a route; resolves to a round function. */
async function edgekitPipeline(
  url: string,
  receivers = 1,
  handler?: () => Promise<void>,
): Promise<(n: number) => Promise<void>> {
  const deviceId = fresh('bench');
  const transport = amqp({ url, prefix: fresh('edgekit') });
  const operator = await transport.connect({ clientId: '$bench-operator' });
  closers.push(() => operator.close());
  await deployRoutes(operator, deviceId, {
    r: 'FROM /messages/modules/sensor/outputs/out INTO BrokeredEndpoint("/modules/receiver/inputs/in")',
  });
  const arrivals = new Arrivals();
  for (let r = 0; r < receivers; r++) {
    const receiver: ModuleClient<typeof Receiver> = await connect(Receiver, {
      deviceId,
      moduleId: 'receiver',
      replicaId: `r${r}`,
      transport,
    });
    closers.push(() => receiver.close());
    if (handler === undefined) await receiver.onInput('in', arrivals.hit);
    else await receiver.onInput('in', () => handler().then(arrivals.hit));
  }
  const sensor = await connect(Sensor, { deviceId, moduleId: 'sensor', transport });
  closers.push(() => sensor.close());
  return async (n) => {
    const all = arrivals.expect(n);
    await pump(n, WINDOW, () => sensor.send('out', body));
    await all;
  };
}

/** amqplib doing what the transport does for one routed message: persistent, mandatory, expiring, confirmed. */
async function rawPipeline(url: string, coalesce: boolean): Promise<(n: number) => Promise<void>> {
  const queue = fresh('raw.pipeline.');
  const publisher = await rawConnect(url, coalesce);
  const consumer = await rawConnect(url, coalesce);
  closers.push(
    () => consumer.close(),
    () => publisher.close(),
  );
  const confirm = await publisher.createConfirmChannel();
  await confirm.assertQueue(queue, { durable: true });
  const channel = await consumer.createChannel();
  await channel.prefetch(PREFETCH);
  const arrivals = new Arrivals();
  await channel.consume(
    queue,
    (message) => {
      if (message === null) return;
      JSON.parse(message.content.toString('utf8'));
      channel.ack(message);
      arrivals.hit();
    },
    { noAck: false },
  );
  const publish = () =>
    new Promise<void>((resolve, reject) => {
      const options = { persistent: true, mandatory: true, expiration: EXPIRATION };
      confirm.publish('', queue, Buffer.from(JSON.stringify(body)), options, (error: unknown) =>
        error === null || error === undefined ? resolve() : reject(error),
      );
    });
  return async (n) => {
    const all = arrivals.expect(n);
    await pump(n, WINDOW, publish);
    await all;
  };
}

async function throughput(url: string): Promise<void> {
  const clients = [
    { name: 'raw amqplib (confirm channel, manual ack)', run: await rawPipeline(url, false), cpu: [] as number[] },
    { name: 'edgekit (two modules, one route)', run: await edgekitPipeline(url), cpu: [] as number[] },
    {
      name: "raw amqplib + the transport's write coalescing",
      run: await rawPipeline(url, true),
      cpu: [] as number[],
    },
  ];
  const result = await alternate(
    N,
    ROUNDS,
    clients.map((c) => withCpu(c.run, c.cpu)),
  );
  table(
    `(a) send → input handler, 256-byte JSON, ${WINDOW} publishes awaiting confirms, prefetch ${PREFETCH} ` +
      `(median of ${ROUNDS} alternating rounds × ${fmt(N)})`,
    clients.map((c, i) => ({
      client: c.name,
      'msgs/s': fmt(result.rates[i] as number),
      'ratio to raw': (result.ratios[i] as number).toFixed(2),
      'ratio range': result.spread[i] as string,
      'Node CPU µs/msg': micros(c.cpu),
    })),
  );
  const ratio = result.ratios[1] as number;
  console.log(`target: edgekit ≥ 0.85 of raw amqplib — ${ratio >= 0.85 ? 'met' : 'NOT met'} (${ratio.toFixed(2)})`);
}

// ------------------------------------------------------------------------------------------------ (b) round trip

type Call = (seq: number) => Promise<void>;

async function edgekitInvoke(url: string): Promise<Call> {
  const deviceId = fresh('bench');
  const transport = amqp({ url, prefix: fresh('edgekit') });
  const target = await connect(Echo, { deviceId, moduleId: 'echo', transport });
  closers.push(() => target.close());
  await target.handle('echo', (request) => request);
  const caller = await connect(Invoker, { deviceId, moduleId: 'caller', transport });
  closers.push(() => caller.close());
  return async (seq) => {
    const result = await caller.invoke(Echo, 'echo', 'echo', { seq }, { timeoutInMs: 5_000 });
    if (!result.ok || result.payload.seq !== seq) throw new Error(`bad answer to call ${seq}`);
  };
}

/** The transport's request/serve alone, with the same JSON bytes the core would send: what the core adds on top. */
async function transportRequest(url: string): Promise<Call> {
  const transport = amqp({ url, prefix: fresh('edgekit') });
  const server = await transport.connect({ clientId: fresh('server') });
  const client = await transport.connect({ clientId: fresh('client') });
  closers.push(
    () => client.close(),
    () => server.close(),
  );
  const address = `methods/${fresh('bench')}/echo`;
  await server.serve(address, async (request) => {
    const { payload } = JSON.parse(new TextDecoder().decode(request)) as { payload: unknown };
    return new TextEncoder().encode(JSON.stringify({ status: 200, payload }));
  });
  return async (seq) => {
    const request = new TextEncoder().encode(JSON.stringify({ method: 'echo', payload: { seq }, timeoutInMs: 5_000 }));
    const reply = await client.request(address, request, { timeoutInMs: 5_000 });
    const answer = JSON.parse(new TextDecoder().decode(reply)) as { payload: { seq: number } };
    if (answer.payload.seq !== seq) throw new Error(`bad answer to call ${seq}`);
  };
}

/** amqplib request/reply: a server consuming a request queue, a client on direct reply-to with correlation ids. */
async function rawRequestReply(url: string): Promise<Call> {
  const queue = fresh('raw.rpc.');
  const serverModel = await rawConnect(url);
  const clientModel = await rawConnect(url);
  closers.push(
    () => clientModel.close(),
    () => serverModel.close(),
  );
  const server = await serverModel.createChannel();
  await server.prefetch(16);
  await server.assertQueue(queue, { durable: false, autoDelete: true });
  await server.consume(
    queue,
    (message) => {
      if (message === null) return;
      const { payload } = JSON.parse(message.content.toString('utf8')) as { payload: unknown };
      server.publish('', String(message.properties.replyTo), Buffer.from(JSON.stringify({ status: 200, payload })), {
        correlationId: message.properties.correlationId as string,
      });
      server.ack(message);
    },
    { noAck: false },
  );
  const client = await clientModel.createChannel();
  const waiting = new Map<string, (content: Buffer) => void>();
  await client.consume(
    'amq.rabbitmq.reply-to',
    (message) => {
      if (message === null) return;
      waiting.get(String(message.properties.correlationId))?.(message.content);
    },
    { noAck: true },
  );
  let next = 0;
  return (seq) =>
    new Promise<void>((resolve, reject) => {
      const correlationId = `c${++next}`;
      waiting.set(correlationId, (content) => {
        waiting.delete(correlationId);
        const answer = JSON.parse(content.toString('utf8')) as { payload: { seq: number } };
        if (answer.payload.seq === seq) resolve();
        else reject(new Error(`bad answer to call ${seq}`));
      });
      client.publish('', queue, Buffer.from(JSON.stringify({ method: 'echo', payload: { seq }, timeoutInMs: 5_000 })), {
        correlationId,
        replyTo: 'amq.rabbitmq.reply-to',
        expiration: '5000',
        mandatory: true,
      });
    });
}

/** Sequential calls; returns each call's latency in ms. */
async function latencies(call: Call, calls: number): Promise<number[]> {
  const out: number[] = [];
  for (let seq = 0; seq < calls; seq++) {
    const start = process.hrtime.bigint();
    await call(seq);
    out.push(Number(process.hrtime.bigint() - start) / 1e6);
  }
  return out;
}

async function roundTrip(url: string): Promise<void> {
  const clients: Array<{ name: string; call: Call; p50: number[]; p99: number[]; cpu: number[] }> = [
    {
      name: 'raw amqplib (direct reply-to, correlation id)',
      call: await rawRequestReply(url),
      p50: [],
      p99: [],
      cpu: [],
    },
    { name: 'edgekit invoke', call: await edgekitInvoke(url), p50: [], p99: [], cpu: [] },
    { name: 'edgekit transport request/serve', call: await transportRequest(url), p50: [], p99: [], cpu: [] },
  ];
  for (const client of clients) await latencies(client.call, Math.min(CALLS, 500)); // warm-up
  const ratios = new Map<string, number[]>();
  for (let round = 0; round < ROUNDS; round++) {
    for (const client of clients) {
      const before = process.cpuUsage();
      const sorted = (await latencies(client.call, CALLS)).sort((x, y) => x - y);
      const used = process.cpuUsage(before);
      client.cpu.push((used.user + used.system) / CALLS);
      client.p50.push(percentile(sorted, 50));
      client.p99.push(percentile(sorted, 99));
    }
    const raw = clients[0]?.p50[round] as number;
    for (const client of clients.slice(1)) {
      ratios.set(client.name, [...(ratios.get(client.name) ?? []), (client.p50[round] as number) / raw]);
    }
  }
  table(
    `(b) method round trip, sequential calls (median of ${ROUNDS} alternating rounds × ${fmt(CALLS)} calls)`,
    clients.map((client) => ({
      client: client.name,
      'p50 ms': median(client.p50).toFixed(3),
      'p99 ms': median(client.p99).toFixed(3),
      'p50 ratio': client === clients[0] ? '1.00' : median(ratios.get(client.name) ?? []).toFixed(2),
      'ratio range': client === clients[0] ? '' : rangeOf(ratios.get(client.name) ?? []),
      'Node CPU µs/call': median(client.cpu).toFixed(0),
    })),
  );
  const invokeRatio = median(ratios.get('edgekit invoke') ?? []);
  console.log(`target: invoke p50 ratio ≤ 1.25 — ${invokeRatio <= 1.25 ? 'met' : 'NOT met'}`);
}

// ------------------------------------------------------------------------------------------------ (c) replicas

async function replicas(url: string): Promise<void> {
  const counts = [1, 2, 4];
  const waitOneMs = () => new Promise<void>((resolve) => setTimeout(resolve, 1));
  const kinds = [
    { label: 'instant handler', n: N, handler: undefined },
    { label: 'handler waits 1 ms', n: Math.min(N, 4_000), handler: waitOneMs },
  ];
  const rows: Array<Record<string, string>> = [];
  for (const kind of kinds) {
    const runs = [];
    for (const count of counts) {
      const cpu: number[] = [];
      runs.push({ count, cpu, run: withCpu(await edgekitPipeline(url, count, kind.handler), cpu) });
    }
    const result = await alternate(
      kind.n,
      ROUNDS,
      runs.map((r) => r.run),
    );
    for (const [i, r] of runs.entries()) {
      rows.push({
        handler: kind.label,
        replicas: String(r.count),
        'msgs/s': fmt(result.rates[i] as number),
        'vs 1 replica': (result.ratios[i] as number).toFixed(2),
        range: result.spread[i] as string,
        'Node CPU µs/msg': micros(r.cpu),
      });
    }
  }
  table(
    `(c) send → input handler with competing replicas of the receiving module (same device and module id, ` +
      `different replicaId), all in this process (median of ${ROUNDS} alternating rounds; ` +
      `${fmt(N)} messages, ${fmt(Math.min(N, 4_000))} with the 1 ms handler)`,
    rows,
  );
}
