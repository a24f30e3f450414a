/**
 * Azure module → edgekit module throughput through the hub, against the same Azure module publishing straight to the
 * broker, on one Mosquitto (started here, with a plain and a TLS listener) in the same run, printed as a ratio:
 *
 *   hub: an unmodified Azure SDK module (bench/fixtures/azure-sender.cjs, its own process: azure-iot-device +
 *        azure-iot-device-mqtt, MQTT 3.1.1/TLS, SAS token) sends `sendOutputEvent('out', …)` to `edgekit/hub`, which
 *        runs in this process on the MQTT transport to the Mosquitto; the route
 *        `FROM /messages/modules/azure/outputs/out INTO BrokeredEndpoint("/modules/sink/inputs/in")` takes each
 *        message to an edgekit module `sink` (also in this process, json contract) whose handler counts it;
 *   raw: the same sender process, with the same kind of connection string, but its gateway is Mosquitto's TLS
 *        listener: its publishes go to the broker as they are, and a raw mqtt.js subscriber on the plain listener
 *        (QoS 1 to `devices/+/modules/+/messages/events/#`, acking after its handler, which parses the JSON) counts
 *        them.
 *
 * Both send N 256-byte JSON bodies with W sends in flight (the SDK pipelines them) and are timed from the first send
 * to the Nth handler completion; the rounds alternate (raw, hub) after one warm-up pair, and the ratio is the median
 * of the per-round ratios hub/raw. CPU per message is measured over the whole round (until the sender has every
 * acknowledgement): this process (hub + sink, or the raw subscriber), the sender process and Mosquitto.
 *
 *   npm run build && TSX_TSCONFIG_PATH=bench/tsconfig.json node --import tsx bench/hub.ts [--rounds 7] [--messages 5000] [--window 50]
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import {
  connect,
  connectService,
  createCertificateAuthority,
  defineModule,
  issueServerCertificate,
  json,
} from 'edgekit';
import { startHub } from 'edgekit/hub';
import { mqtt } from 'edgekit/mqtt';
import * as mqttjs from 'mqtt';
import { startMosquitto } from '../test/integration/brokers/mosquitto.js';
import { freePort } from '../test/integration/support/loopback.js';
import { body256, counter, fmt, median, table } from './common.js';

const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '7' },
    messages: { type: 'string', default: '5000' },
    window: { type: 'string', default: '50' },
  },
});
const ROUNDS = Number(values.rounds);
const N = Number(values.messages);
/** Sends in flight at once, in both set-ups. */
const WINDOW = Number(values.window);
const WARM_UP = Math.min(N, 1_000);
/** A round that has not finished by then has lost messages. */
const ROUND_TIMEOUT_MS = 60_000;

const SENDER = path.resolve(import.meta.dirname, 'fixtures/azure-sender.cjs');
const HUB_HOST = 'hub.example.net';
const body = body256();
const BODY = JSON.stringify(body);
const Sink = defineModule({ inputs: { in: json<typeof body>() } });

// ----------------------------------------------------------------------------------------------------- CPU counters

const CLOCK_TICKS = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

/** CPU time (µs) a process has used, from /proc (undefined where there is none). */
function cpuOf(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // Fields 14 and 15 of stat(5) (utime, stime); the slice starts at field 3.
    return ((Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS) * 1e6;
  } catch {
    return undefined;
  }
}

// ---------------------------------------------------------------------------------------------------- the sender

interface Sender {
  /** Sends n events, W in flight; resolves with the sender's CPU time (µs) once every one is acknowledged. */
  send(n: number): Promise<number>;
  close(): Promise<void>;
}

const children = new Set<ChildProcess>();
const killChildren = () => {
  for (const child of children) {
    if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) {
      try {
        process.kill(child.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  }
};
process.once('exit', killChildren);

/** Starts the Azure sender process as IoT Edge would start a module, and resolves once its client is open. */
async function startSender(connectionString: string, caFile: string): Promise<Sender> {
  const child = spawn(process.execPath, [SENDER], {
    env: { ...process.env, EdgeHubConnectionString: connectionString, EdgeModuleCACertificateFile: caFile },
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  children.add(child);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  type Event = { event: string; cpuMicros?: number; what?: string; message?: string };
  let waiting: { resolve: (e: Event) => void; reject: (e: Error) => void } | undefined;
  createInterface({ input: child.stdout! }).on('line', (line) => {
    const event = JSON.parse(line) as Event;
    if (event.event === 'error') waiting?.reject(new Error(`azure sender: ${event.what}: ${event.message}`));
    else waiting?.resolve(event);
    waiting = undefined;
  });
  const next = () =>
    new Promise<Event>((resolve, reject) => {
      waiting = { resolve, reject };
      exited.then(() => reject(new Error(`azure sender exited (${child.exitCode ?? child.signalCode})`)));
    });
  const ready = await next();
  if (ready.event !== 'ready') throw new Error(`azure sender: expected ready, got ${JSON.stringify(ready)}`);
  return {
    async send(n) {
      const sent = next();
      child.stdin!.write(
        `${JSON.stringify({ cmd: 'send', messages: n, window: WINDOW, output: 'out', body: BODY })}\n`,
      );
      const event = await sent;
      return event.cpuMicros ?? 0;
    },
    async close() {
      if (child.exitCode === null && child.signalCode === null) {
        child.stdin!.write(`${JSON.stringify({ cmd: 'close' })}\n`);
        const timer = setTimeout(() => child.pid !== undefined && process.kill(child.pid, 'SIGKILL'), 5_000);
        await exited;
        clearTimeout(timer);
      }
      children.delete(child);
    },
  };
}

// --------------------------------------------------------------------------------------------------------- the run

interface Round {
  /** Messages per second, first send to the Nth handler completion. */
  readonly rate: number;
  /** CPU µs per message: this process, the sender, Mosquitto. */
  readonly here: number;
  readonly sender: number;
  readonly broker: number;
}

const folder = mkdtempSync(path.join(tmpdir(), 'edgekit-bench-hub-'));
const cleanups: Array<() => Promise<void> | void> = [() => rmSync(folder, { recursive: true, force: true })];
try {
  const ca = createCertificateAuthority({ commonName: 'edgekit hub bench CA' });
  const server = issueServerCertificate({ ca, dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] });
  const caFile = path.join(folder, 'ca.pem');
  const certFile = path.join(folder, 'server.pem');
  const keyFile = path.join(folder, 'server.key');
  writeFileSync(caFile, ca.cert);
  writeFileSync(certFile, server.cert);
  writeFileSync(keyFile, server.key, { mode: 0o600 });

  // One broker: its default plain listener for edgekit and the raw subscriber, and a TLS listener the Azure SDK
  // reaches in the raw set-up. Anonymous access is allowed, so any user name and password (the SAS token) pass.
  const tlsPort = await freePort();
  const broker = await startMosquitto({
    config: [`listener ${tlsPort} 127.0.0.1`, `certfile ${certFile}`, `keyfile ${keyFile}`],
  });
  cleanups.unshift(() => broker.stop());
  console.log(
    `node ${process.version}, mosquitto at ${broker.url} and mqtts://127.0.0.1:${tlsPort}; ` +
      `${fmt(N)} messages × ${ROUNDS} rounds, window ${WINDOW}`,
  );

  // ---- hub: Azure sender → hub (TLS) → Mosquitto → edgekit module `sink`
  const hubDevice = `bench-hub-${process.pid}`;
  const service = await connectService({ transport: mqtt({ url: broker.url }) });
  cleanups.unshift(() => service.close());
  await service.applyDeployment(hubDevice, {
    modulesContent: {
      $edgeAgent: { 'properties.desired': { modules: { azure: {}, sink: {} } } },
      $edgeHub: {
        'properties.desired': {
          schemaVersion: '1.1',
          routes: {
            toSink: 'FROM /messages/modules/azure/outputs/out INTO BrokeredEndpoint("/modules/sink/inputs/in")',
          },
        },
      },
    },
  });
  const azureKey = randomBytes(32).toString('base64');
  const hubErrors: string[] = [];
  const hub = await startHub({
    deviceId: hubDevice,
    hubHostName: HUB_HOST,
    transport: mqtt({ url: broker.url }),
    keys: { azure: azureKey },
    tls: { cert: server.cert, key: server.key, ca: ca.cert },
    mqttPort: 0,
    httpsPort: 0,
    onError: (error) => hubErrors.push(`${error.code}: ${error.message}`),
  });
  cleanups.unshift(() => hub.close());
  const viaHub = counter(ROUND_TIMEOUT_MS);
  const sink = await connect(Sink, { deviceId: hubDevice, moduleId: 'sink', transport: mqtt({ url: broker.url }) });
  cleanups.unshift(() => sink.close());
  await sink.onInput('in', () => viaHub.hit());
  const hubSender = await startSender(
    `HostName=${HUB_HOST};GatewayHostName=localhost:${hub.mqttPort};DeviceId=${hubDevice};ModuleId=azure;SharedAccessKey=${azureKey}`,
    caFile,
  );
  cleanups.unshift(() => hubSender.close());

  // ---- raw: Azure sender → Mosquitto (TLS) → mqtt.js subscriber
  const rawDevice = `bench-raw-${process.pid}`;
  const viaBroker = counter(ROUND_TIMEOUT_MS);
  const subscriber = mqttjs.connect(broker.url, {
    protocolVersion: 5,
    clientId: `bench-raw-subscriber-${process.pid}`,
    reconnectPeriod: 0,
    manualConnect: true,
  });
  // The subscriber's handler: parse the body, then let mqtt.js send the PUBACK.
  subscriber.handleMessage = (packet, callback) => {
    JSON.parse(packet.payload.toString());
    viaBroker.hit();
    callback();
  };
  await new Promise<void>((resolve, reject) => {
    subscriber.once('connect', () => resolve());
    subscriber.once('error', reject);
    subscriber.connect();
  });
  cleanups.unshift(() => subscriber.endAsync());
  // mqtt.js leaves Nagle's algorithm on; the edgekit transport turns it off, so do the same here.
  (subscriber.stream as unknown as { setNoDelay?: (on: boolean) => void }).setNoDelay?.(true);
  await subscriber.subscribeAsync('devices/+/modules/+/messages/events/#', { qos: 1 });
  const rawSender = await startSender(
    `HostName=${HUB_HOST};GatewayHostName=localhost:${tlsPort};DeviceId=${rawDevice};ModuleId=azure;SharedAccessKey=${randomBytes(32).toString('base64')}`,
    caFile,
  );
  cleanups.unshift(() => rawSender.close());

  const round = async (sender: Sender, handled: ReturnType<typeof counter>, n: number): Promise<Round> => {
    const all = handled.until(n);
    const cpu = process.cpuUsage();
    const brokerBefore = cpuOf(broker.pid);
    const start = process.hrtime.bigint();
    const sent = sender.send(n);
    await all;
    const seconds = Number(process.hrtime.bigint() - start) / 1e9;
    const senderCpu = await sent;
    const used = process.cpuUsage(cpu);
    const brokerAfter = cpuOf(broker.pid);
    return {
      rate: n / seconds,
      here: (used.user + used.system) / n,
      sender: senderCpu / n,
      broker: brokerBefore === undefined || brokerAfter === undefined ? Number.NaN : (brokerAfter - brokerBefore) / n,
    };
  };

  await round(rawSender, viaBroker, WARM_UP);
  await round(hubSender, viaHub, WARM_UP);
  const raws: Round[] = [];
  const hubs: Round[] = [];
  const ratios: number[] = [];
  for (let i = 0; i < ROUNDS; i++) {
    const raw = await round(rawSender, viaBroker, N);
    const ours = await round(hubSender, viaHub, N);
    raws.push(raw);
    hubs.push(ours);
    ratios.push(ours.rate / raw.rate);
  }

  const us = (v: number) => (Number.isNaN(v) ? 'n/a' : v.toFixed(1));
  const row = (setUp: string, rounds: Round[]) => ({
    'set-up': setUp,
    'msgs/s': fmt(median(rounds.map((r) => r.rate))),
    'CPU µs/msg: bench process': us(median(rounds.map((r) => r.here))),
    'Azure sender': us(median(rounds.map((r) => r.sender))),
    mosquitto: us(median(rounds.map((r) => r.broker))),
  });
  table(
    `Azure module → consumer, QoS 1, 256-byte JSON, window ${WINDOW} ` +
      `(median of ${ROUNDS} alternating rounds × ${fmt(N)}; first send → Nth handler)`,
    [
      row('raw: Azure SDK → Mosquitto (TLS) → mqtt.js subscriber', raws),
      row('hub: Azure SDK → edgekit/hub (TLS) → Mosquitto → edgekit module', hubs),
    ],
  );
  console.log(
    `ratio hub/raw: ${median(ratios).toFixed(2)} (median of per-round ratios: ${ratios.map((r) => r.toFixed(2)).join(', ')}); ` +
      'the bench process hosts the hub and the sink in the hub rounds, the raw subscriber in the raw rounds',
  );
  const stats = hub.stats();
  console.log(
    `hub: ${fmt(stats.outputs)} outputs taken, ${stats.outputsRefused} refused, ${stats.unknownTopics} unknown topics, ` +
      `${hubErrors.length} errors${hubErrors.length > 0 ? ` (first: ${hubErrors[0]})` : ''}`,
  );
} finally {
  for (const cleanup of cleanups) {
    try {
      await cleanup();
    } catch (error) {
      console.error(`bench/hub: clean-up failed: ${(error as Error).message}`);
    }
  }
  killChildren();
}
