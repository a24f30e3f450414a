/**
 * The MQTT transport against raw mqtt.js, on the same Mosquitto (started here) in the same run, printed as ratios:
 *
 *   (a) throughput, QoS 1, 256-byte JSON: `send` → input handler end to end, send only (until the PUBACKs), and
 *       receive only (draining a backlog queued while the receiver was away); raw mqtt.js publishes with the same
 *       window of in-flight publishes and its subscriber acks after its handler (`handleMessage`);
 *   (b) method round trip, p50/p99: edgekit `invoke`, the transport's own request/serve, and raw MQTT 5
 *       request/response (response topic + correlation data, QoS 1, TCP_NODELAY on both raw clients);
 *   (c) footprint: heap used after gc by a process holding one connected module client (and by mqtt.js alone), and
 *       the disk size of a production install of the packed edgekit tarball + mqtt.
 *
 *   npm run build && TSX_TSCONFIG_PATH=bench/tsconfig.json node --import tsx bench/mqtt.ts [--rounds 5] [--only a,b,c]
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { connect, defineModule, json, method, typed } from 'edgekit';
import { mqtt } from 'edgekit/mqtt';
import * as mqttjs from 'mqtt';
import { deployRoutes } from '../src/service/operations.js';
import { startMosquitto } from '../test/integration/brokers/mosquitto.js';
import { body256, compare, comparePrepared, counter, fmt, median, table } from './common.js';

const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '5' },
    messages: { type: 'string', default: '20000' },
    calls: { type: 'string', default: '1000' },
    window: { type: 'string', default: '100' },
    only: { type: 'string', default: 'a,b,c' },
  },
});
const ROUNDS = Number(values.rounds);
const N = Number(values.messages);
const CALLS = Number(values.calls);
/** Publishes (sends) in flight at once, for both clients. */
const WINDOW = Number(values.window);
const parts = new Set(values.only.split(','));

const body = body256();
type Body = typeof body;
/** What an application on raw mqtt.js does per message: serialize the body (edgekit's `send` does it too). */
const encodeBody = () => Buffer.from(JSON.stringify(body));
const REPO = path.resolve(import.meta.dirname, '..');

const broker = await startMosquitto();
const url = broker.url;
let unique = 0;
const id = (label: string) => `${label}-${process.pid}-${++unique}`;

/** Runs `send(i)` for i < n with at most `window` unsettled at once. */
function pump(n: number, window: number, send: (i: number) => Promise<unknown>): Promise<void> {
  if (n === 0) return Promise.resolve();
  return new Promise<void>((resolve, reject) => {
    let next = 0;
    let inFlight = 0;
    let done = 0;
    const launch = () => {
      while (inFlight < window && next < n) {
        const i = next++;
        inFlight++;
        send(i).then(() => {
          inFlight--;
          if (++done === n) resolve();
          else launch();
        }, reject);
      }
    };
    launch();
  });
}

/**
 * A raw mqtt.js client. `handleMessage` is installed before the connection opens: a resumed session delivers its
 * queued messages right behind the CONNACK, before a promise returned by `connectAsync` would have resolved.
 */
async function rawClient(
  options: mqttjs.IClientOptions = {},
  handleMessage?: mqttjs.MqttClient['handleMessage'],
): Promise<mqttjs.MqttClient> {
  const client = mqttjs.connect(url, {
    protocolVersion: 5,
    clientId: id('raw'),
    reconnectPeriod: 0,
    manualConnect: true,
    ...options,
  });
  if (handleMessage) client.handleMessage = handleMessage;
  await new Promise<void>((resolve, reject) => {
    client.once('connect', () => resolve());
    client.once('error', reject);
    client.connect();
  });
  // mqtt.js leaves Nagle's algorithm on (see docs/transports/mqtt.md); the transport turns it off, so do the same here.
  (client.stream as unknown as { setNoDelay?: (on: boolean) => void }).setNoDelay?.(true);
  return client;
}

function rawPublish(client: mqttjs.MqttClient, topic: string, payload: Buffer): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    client.publish(topic, payload, { qos: 1 }, (error) => (error ? reject(error) : resolve()));
  });
}

// ---------------------------------------------------------------------------------------------------- (a) throughput

const Sender = defineModule({ outputs: { out: json<Body>() } });
const Receiver = defineModule({ inputs: { in: json<Body>() } });

interface Pipeline {
  /** Sends n and resolves when n have been handled. */
  endToEnd(n: number): Promise<void>;
  /** Sends n to a topic nobody consumes; resolves when every PUBACK is in. */
  sendOnly(n: number): Promise<void>;
  /** Queues n for the receiver while it is away (untimed), then returns a function that drains them (timed). */
  backlog(n: number): Promise<() => Promise<void>>;
  close(): Promise<void>;
}

async function rawPipeline(): Promise<Pipeline> {
  const topic = `bench/raw/${id('in')}`;
  const receiverId = id('raw-receiver');
  const handled = counter();
  const receive = async () => {
    // The subscriber's handler: parse the body, then let mqtt.js send the PUBACK.
    const client = await rawClient(
      { clientId: receiverId, clean: false, properties: { sessionExpiryInterval: 600 } },
      (packet, callback) => {
        JSON.parse(packet.payload.toString());
        handled.hit();
        callback();
      },
    );
    await client.subscribeAsync(topic, { qos: 1 });
    return client;
  };
  let receiver = await receive();
  const sender = await rawClient();
  return {
    async endToEnd(n) {
      const all = handled.until(n);
      await pump(n, WINDOW, () => rawPublish(sender, topic, encodeBody()));
      await all;
    },
    sendOnly: (n) => pump(n, WINDOW, () => rawPublish(sender, `${topic}/nobody`, encodeBody())),
    async backlog(n) {
      await receiver.endAsync();
      await pump(n, WINDOW, () => rawPublish(sender, topic, encodeBody()));
      return async () => {
        const all = handled.until(n);
        receiver = await receive();
        await all;
      };
    },
    async close() {
      await Promise.all([receiver.endAsync(), sender.endAsync()]);
    },
  };
}

async function edgekitPipeline(): Promise<Pipeline> {
  const deviceId = id('bench');
  const transport = mqtt({ url });
  const operator = await transport.connect({ clientId: `${deviceId}/operator` });
  await deployRoutes(operator, deviceId, {
    toReceiver: 'FROM /messages/modules/sender/outputs/out INTO BrokeredEndpoint("/modules/receiver/inputs/in")',
  });
  const handled = counter();
  const receive = async () => {
    const client = await connect(Receiver, { deviceId, moduleId: 'receiver', transport });
    await client.onInput('in', () => handled.hit());
    return client;
  };
  let receiver = await receive();
  const sender = await connect(Sender, { deviceId, moduleId: 'sender', transport, offlineQueue: { maxMessages: 0 } });
  // Send-only goes through a second sender on a device whose route leads to an input nobody consumes.
  const lonelyDevice = id('bench');
  await deployRoutes(operator, lonelyDevice, {
    nowhere: 'FROM /messages/modules/sender/outputs/out INTO BrokeredEndpoint("/modules/nobody/inputs/in")',
  });
  const lonely = await connect(Sender, { deviceId: lonelyDevice, moduleId: 'sender', transport });
  return {
    async endToEnd(n) {
      const all = handled.until(n);
      await pump(n, WINDOW, () => sender.send('out', body));
      await all;
    },
    sendOnly: (n) => pump(n, WINDOW, () => lonely.send('out', body)),
    async backlog(n) {
      await receiver.close();
      await pump(n, WINDOW, () => sender.send('out', body));
      return async () => {
        const all = handled.until(n);
        receiver = await receive();
        await all;
      };
    },
    async close() {
      await Promise.all([receiver.close(), sender.close(), lonely.close()]);
      await operator.close();
    },
  };
}

async function throughput(): Promise<void> {
  const raw = await rawPipeline();
  const ours = await edgekitPipeline();
  const e2e = await compare(N, ROUNDS, raw.endToEnd, ours.endToEnd);
  const send = await compare(N, ROUNDS, raw.sendOnly, ours.sendOnly);
  const receive = await comparePrepared(N, ROUNDS, raw.backlog, ours.backlog, 5_000);
  await Promise.all([raw.close(), ours.close()]);
  const row = (measure: string, r: { a: number; b: number; ratio: number }) => ({
    measure,
    'raw mqtt.js msgs/s': fmt(r.a),
    'edgekit msgs/s': fmt(r.b),
    ratio: r.ratio.toFixed(2),
  });
  table(`(a) throughput, QoS 1, 256-byte JSON, window ${WINDOW} (median of ${ROUNDS} alternating rounds × ${fmt(N)})`, [
    row('send → input handler, end to end', e2e),
    row('send only (until PUBACK)', send),
    row('receive only (drain a backlog)', receive),
  ]);
  console.log(
    `target: end-to-end ratio ≥ 0.85 — ${e2e.ratio >= 0.85 ? 'met' : 'NOT met'} ` +
      "(Azure's ModuleClient measured the same way: 0.60 send, 0.74 receive)",
  );
}

// ------------------------------------------------------------------------------------------------------ (b) methods

const Target = defineModule({ methods: { echo: method(typed<{ n: number }>(), typed<{ n: number }>()) } });
const Caller = defineModule({});

function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number;
}

/** Calls in one block; the variants take turns block by block, so they share the machine's load alike. */
const BLOCK = 100;

interface Latency {
  readonly p50: number;
  readonly p99: number;
  /** Median over rounds of this variant's p50 divided by the first variant's p50 in the same round. */
  readonly ratio: number;
}

/**
 * Measures sequential calls of several variants: in each of `ROUNDS` rounds every variant makes `CALLS` calls, in
 * alternating blocks. Returns per variant the medians over rounds of p50 and p99 (ms) and of the p50 ratio.
 */
async function latencies(variants: ReadonlyArray<(i: number) => Promise<void>>): Promise<Latency[]> {
  for (const call of variants) for (let i = 0; i < 200; i++) await call(i);
  const p50s: number[][] = variants.map(() => []);
  const p99s: number[][] = variants.map(() => []);
  const ratios: number[][] = variants.map(() => []);
  for (let round = 0; round < ROUNDS; round++) {
    const samples: number[][] = variants.map(() => []);
    for (let done = 0; done < CALLS; done += BLOCK) {
      for (const [v, call] of variants.entries()) {
        for (let i = done; i < Math.min(CALLS, done + BLOCK); i++) {
          const start = process.hrtime.bigint();
          await call(i);
          samples[v]!.push(Number(process.hrtime.bigint() - start) / 1e6);
        }
      }
    }
    for (const [v, list] of samples.entries()) {
      list.sort((x, y) => x - y);
      p50s[v]!.push(percentile(list, 50));
      p99s[v]!.push(percentile(list, 99));
      ratios[v]!.push(percentile(list, 50) / percentile(samples[0]!, 50));
    }
  }
  return variants.map((_, v) => ({ p50: median(p50s[v]!), p99: median(p99s[v]!), ratio: median(ratios[v]!) }));
}

async function methods(): Promise<void> {
  // Raw MQTT 5 request/response: QoS 1 both ways, response topic + correlation data.
  const responder = await rawClient();
  const requester = await rawClient();
  const requestTopic = `bench/raw/${id('req')}`;
  const replyTopic = `bench/raw/${id('reply')}`;
  await responder.subscribeAsync(requestTopic, { qos: 1 });
  responder.on('message', (_topic, payload, packet) => {
    const { responseTopic, correlationData } = packet.properties ?? {};
    if (responseTopic === undefined) return;
    const answer = JSON.stringify({ status: 200, payload: JSON.parse(payload.toString()) });
    responder.publish(responseTopic, answer, { qos: 1, properties: { correlationData } });
  });
  const waiting = new Map<string, () => void>();
  await requester.subscribeAsync(replyTopic, { qos: 1 });
  requester.on('message', (_topic, payload, packet) => {
    const key = packet.properties?.correlationData?.toString('hex');
    JSON.parse(payload.toString());
    if (key !== undefined) waiting.get(key)?.();
  });
  const rawCall = (i: number) =>
    new Promise<void>((resolve, reject) => {
      const correlationData = randomBytes(16);
      waiting.set(correlationData.toString('hex'), () => {
        waiting.delete(correlationData.toString('hex'));
        resolve();
      });
      requester.publish(
        requestTopic,
        JSON.stringify({ method: 'echo', payload: { n: i } }),
        { qos: 1, properties: { responseTopic: replyTopic, correlationData, messageExpiryInterval: 5 } },
        (error) => error && reject(error),
      );
    });

  // The transport's own request/serve: what a call costs without the core.
  const transport = mqtt({ url });
  const server = await transport.connect({ clientId: id('server') });
  const client = await transport.connect({ clientId: id('client') });
  const address = `methods/${id('bench')}/target`;
  await server.serve(address, async (request) => request);
  const payload = new TextEncoder().encode(JSON.stringify({ method: 'echo', payload: { n: 1 }, timeoutInMs: 5000 }));
  const transportCall = async () => {
    await client.request(address, payload, { timeoutInMs: 5_000 });
  };

  // edgekit invoke, module to module.
  const deviceId = id('bench');
  const target = await connect(Target, { deviceId, moduleId: 'target', transport });
  await target.handle('echo', (request) => request);
  const caller = await connect(Caller, { deviceId, moduleId: 'caller', transport });
  const invokeCall = async (n: number) => {
    const result = await caller.invoke(Target, 'target', 'echo', { n }, { timeoutInMs: 5_000 });
    if (!result.ok) throw new Error(`invoke failed: ${result.status} ${result.message}`);
  };

  const [raw, bare, invoke] = (await latencies([rawCall, transportCall, invokeCall])) as [Latency, Latency, Latency];
  await Promise.all([responder.endAsync(), requester.endAsync(), server.close(), client.close()]);
  await Promise.all([target.close(), caller.close()]);

  const ms = (v: number) => v.toFixed(3);
  const row = (measure: string, l: Latency) => ({
    measure,
    p50: ms(l.p50),
    p99: ms(l.p99),
    'p50 ratio': l.ratio.toFixed(2),
  });
  table(
    `(b) method round trip, sequential (${ROUNDS} rounds of ${fmt(CALLS)} calls each, in alternating blocks of ${BLOCK}; medians), ms`,
    [
      row('raw MQTT 5 request/response (TCP_NODELAY)', raw),
      row('edgekit transport request → serve', bare),
      row('edgekit invoke (module → module)', invoke),
    ],
  );
  console.log(
    `target: invoke p50 ratio ≤ 1.25 — ${invoke.ratio <= 1.25 ? 'met' : 'NOT met'} ` +
      "(the transport's request → serve row is a call without the core: JSON, presence check, deadline timers)",
  );
}

// ---------------------------------------------------------------------------------------------------- (c) footprint

/** The script each footprint process runs; prints the heap used after gc, once connected. */
const FOOTPRINT_CHILD = `
const [what, url] = process.argv.slice(2);
const keep = [];
if (what === 'mqtt.js') {
  const mqtt = await import('mqtt');
  const client = await mqtt.connectAsync(url, { protocolVersion: 5, clientId: 'footprint-raw-' + process.pid,
    clean: false, properties: { sessionExpiryInterval: 0 }, reconnectPeriod: 0, writeCache: false });
  await client.subscribeAsync('bench/footprint/in', { qos: 1 });
  keep.push(client);
} else if (what === 'edgekit') {
  const { connect, defineModule, json } = await import('edgekit');
  const { mqtt } = await import('edgekit/mqtt');
  const Module = defineModule({ inputs: { in: json() }, outputs: { out: json() } });
  const client = await connect(Module, { deviceId: 'footprint', moduleId: 'm' + process.pid,
    transport: mqtt({ url, sessionExpiryInSeconds: 0 }) });
  await client.onInput('in', () => {});
  keep.push(client);
}
for (let i = 0; i < 6; i++) { globalThis.gc(); await new Promise((r) => setTimeout(r, 20)); }
const { heapUsed, rss } = process.memoryUsage();
console.log(JSON.stringify({ heapUsed, rss }));
process.exit(0);
`;

function sizeOf(dir: string): number {
  let total = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) total += sizeOf(full);
    else if (entry.isFile()) total += statSync(full).size;
  }
  return total;
}

const mb = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MB`;

async function footprint(): Promise<void> {
  const dir = mkdtempSync(path.join(tmpdir(), 'edgekit-footprint-'));
  try {
    const packed = JSON.parse(
      execFileSync('npm', ['pack', '--json', '--pack-destination', dir], { cwd: REPO, encoding: 'utf8' }),
    ) as Array<{ filename: string }>;
    const tarball = path.join(dir, packed[0]?.filename ?? '');
    const app = path.join(dir, 'app');
    mkdirSync(app);
    writeFileSync(path.join(app, 'package.json'), JSON.stringify({ name: 'footprint', private: true, type: 'module' }));
    execFileSync(
      'npm',
      ['install', '--omit=dev', '--no-audit', '--no-fund', '--no-package-lock', '--loglevel=error', tarball, 'mqtt@^5'],
      { cwd: app, stdio: ['ignore', 'ignore', 'inherit'] },
    );
    const modules = path.join(app, 'node_modules');
    const total = sizeOf(modules);
    const edgekitOnly = sizeOf(path.join(modules, 'edgekit'));
    writeFileSync(path.join(app, 'footprint.mjs'), FOOTPRINT_CHILD);

    const heap = (what: string) => {
      const samples: number[] = [];
      for (let i = 0; i < ROUNDS; i++) {
        const run = spawnSync(process.execPath, ['--expose-gc', 'footprint.mjs', what, url], {
          cwd: app,
          encoding: 'utf8',
        });
        if (run.status !== 0) throw new Error(`footprint child (${what}) failed: ${run.stderr}`);
        samples.push((JSON.parse(run.stdout.trim().split('\n').at(-1) ?? '{}') as { heapUsed: number }).heapUsed);
      }
      return median(samples);
    };
    const bare = heap('node');
    const alone = heap('mqtt.js');
    const ours = heap('edgekit');
    table(`(c) footprint (heap used after gc: median of ${ROUNDS} processes)`, [
      { measure: 'heap: node, nothing loaded', value: mb(bare), target: '' },
      { measure: 'heap: mqtt.js alone, connected and subscribed (write cache off)', value: mb(alone), target: '' },
      { measure: 'heap: one connected edgekit module client (mqtt)', value: mb(ours), target: '≤ 8 MB' },
      { measure: 'disk: production install of edgekit + mqtt', value: mb(total), target: '≤ 15 MB' },
      { measure: '      of which edgekit itself', value: mb(edgekitOnly), target: '' },
    ]);
    console.log(
      `targets: heap ≤ 8 MB — ${ours <= 8 * 1024 * 1024 ? 'met' : 'NOT met'}; ` +
        `install ≤ 15 MB — ${total <= 15 * 1024 * 1024 ? 'met' : 'NOT met'} ` +
        "(Azure's ModuleClient: 16 MB heap, 57 MB installed)",
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

console.log(`node ${process.version}, mosquitto at ${url}`);
try {
  if (parts.has('a')) await throughput();
  if (parts.has('b')) await methods();
  if (parts.has('c')) await footprint();
} finally {
  await broker.stop();
}
