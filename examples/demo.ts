/**
 * `npm run demo`: the example pipeline — a simulated temperature sensor feeding a filter that raises alerts to
 * $upstream — deployed from deployment.json, with an operator changing a desired property and calling a direct method
 * along the way. Runs on the embedded memory broker, or with `--broker` on an MQTT broker such as Mosquitto; stops by
 * itself or on Ctrl-C.
 *
 *   npm run demo [-- --duration 12] [-- --broker mqtt://127.0.0.1:1883 | amqp://127.0.0.1:5672]
 */
import { readFileSync } from 'node:fs';
import { parseArgs, styleText } from 'node:util';
import { type Clock, connect, MemoryBroker, memory, systemClock, type Transport } from 'edgekit';
import { amqp } from 'edgekit/amqp';
import { mqtt } from 'edgekit/mqtt';
import { routesFromManifest } from 'edgekit/routing';
import { decodeEnvelope } from '../src/core/envelope.js';
import { deployRoutes, invokeAsService, updateDesired } from '../src/service/operations.js';
import type { TransportConnection } from '../src/transport.js';
import { Filter, startFilter } from './filter/module.js';
import { type Reading, startSensor, TemperatureSensor } from './temperature-sensor/module.js';

const usage = 'usage: npm run demo [-- --duration <seconds>] [-- --broker mqtt://host:port | amqp://host:port]';
let values: { duration: string; broker?: string; help?: boolean };
try {
  ({ values } = parseArgs({
    options: {
      duration: { type: 'string', default: '12' },
      broker: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  }));
} catch (error) {
  console.error(`demo: ${error instanceof Error ? error.message : String(error)}\n${usage}`);
  process.exit(2);
}
if (values.help) {
  console.log(usage);
  console.log('  --duration  seconds to run (default 12)');
  console.log(
    '  --broker    an MQTT 5 broker (mqtt://, mqtts://) or RabbitMQ (amqp://, amqps://) instead of the in-process memory broker',
  );
  process.exit(0);
}
const seconds = Number(values.duration);
if (!Number.isFinite(seconds) || seconds <= 0) {
  console.error(`demo: --duration must be a positive number of seconds, got ${values.duration}`);
  process.exit(2);
}
const brokerUrl = values.broker;
if (brokerUrl !== undefined && !/^(mqtts?|tcp|ssl|tls|amqps?):\/\//.test(brokerUrl)) {
  console.error(`demo: --broker must be an mqtt://, mqtts://, amqp:// or amqps:// URL, got ${brokerUrl}`);
  process.exit(2);
}
const onAmqp = brokerUrl !== undefined && /^amqps?:/.test(brokerUrl);

const color = process.stdout.isTTY;
const paint = (style: Parameters<typeof styleText>[0], text: string) => (color ? styleText(style, text) : text);
const t0 = Date.now();
const log = (who: string, style: Parameters<typeof styleText>[0], text: string) =>
  console.log(
    `${paint('gray', `+${((Date.now() - t0) / 1000).toFixed(1).padStart(5)}s`)} ${paint(style, who.padEnd(9))} ${text}`,
  );

const deviceId = 'demo-device';
const manifest = JSON.parse(readFileSync(new URL('./deployment.json', import.meta.url), 'utf8'));

// The transports: modules and the operator on the same broker. On MQTT the operator keeps no session (it only
// watches while the demo runs); the modules keep theirs, so their inputs wait for them as they would in production.
const memoryBroker = brokerUrl === undefined ? new MemoryBroker() : undefined;
const transport: Transport = memoryBroker
  ? memory({ broker: memoryBroker })
  : onAmqp
    ? amqp({ url: brokerUrl as string })
    : mqtt({ url: brokerUrl as string });
const operatorTransport: Transport =
  memoryBroker || onAmqp
    ? transport
    : mqtt({ url: brokerUrl as string, sessionExpiryInSeconds: 0, connectTimeoutInMs: 5_000 });
const clock: Clock = memoryBroker ? memoryBroker.clock : systemClock;

let operator: TransportConnection;
try {
  operator = await operatorTransport.connect({ clientId: `${deviceId}/demo-operator` });
} catch (error) {
  console.error(`demo: cannot reach the broker at ${brokerUrl}: ${error instanceof Error ? error.message : error}`);
  console.error(
    onAmqp
      ? 'demo: start RabbitMQ first (see docs/transports/amqp.md)'
      : 'demo: start one first, e.g. `mosquitto -p 1883` (see docs/transports/mqtt.md)',
  );
  process.exit(1);
}
log(
  'demo',
  'green',
  memoryBroker
    ? 'running on the in-process memory broker'
    : `running on the ${onAmqp ? 'AMQP' : 'MQTT'} broker at ${brokerUrl}${onAmqp ? ' (showing $upstream; an AMQP consumer of the filter input would take its messages)' : ''}`,
);

// The operator: deploy routes and desired properties from the manifest.
await deployRoutes(operator, deviceId, routesFromManifest(manifest));
await updateDesired(operator, deviceId, 'SimulatedTemperatureSensor', { SendInterval: 0.3 });
await updateDesired(operator, deviceId, 'filter', { TemperatureThreshold: 25 });
log('operator', 'magenta', 'deployed deployment.json: 2 routes, SendInterval 0.3 s, TemperatureThreshold 25');

// Watch what the modules do, as an operator's monitor would.
const describe = (r: Reading) =>
  `machine ${r.machine.temperature.toFixed(1)} °C ${r.machine.pressure.toFixed(2)} bar · ambient ${r.ambient.temperature.toFixed(1)} °C ${r.ambient.humidity.toFixed(0)} %`;
const show = (address: string, bytes: Uint8Array) => {
  const { header, body } = decodeEnvelope(bytes);
  const reading = JSON.parse(new TextDecoder().decode(body)) as Reading;
  if (address.startsWith('inputs/')) log('sensor', 'cyan', `→ filter/input1   ${describe(reading)}`);
  else if (address.startsWith('upstream/')) {
    log(
      'filter',
      'yellow',
      `→ $upstream  ${paint('bold', `ALERT (${header.properties.MessageType})`)} ${describe(reading)}`,
    );
  }
};
const filterInput = `inputs/${deviceId}/filter/input1`;
const upstream = `upstream/${deviceId}`;
let unwatch = () => {};
if (memoryBroker) {
  // The memory broker has a tap that sees every publish.
  unwatch = memoryBroker.tap((event) => {
    if (event.kind === 'publish' && event.bytes) show(event.address, event.bytes);
  });
} else {
  // On MQTT the operator subscribes like any client: a plain subscription gets its own copy of each message, so
  // watching the filter's input takes nothing from the filter. Subscribed before the modules start.
  for (const address of onAmqp ? [upstream] : [filterInput, upstream]) {
    await operator.consume(address, { prefetch: 100 }, (delivery) => {
      show(address, delivery.bytes);
      delivery.ack();
    });
  }
}

// The filter connects first: on MQTT an input keeps messages only once its module has connected (and subscribed).
const filter = await connect(Filter, { deviceId, moduleId: 'filter', transport });
await startFilter(filter);
const sensor = await connect(TemperatureSensor, { deviceId, moduleId: 'SimulatedTemperatureSensor', transport });
const stopSensor = await startSensor(sensor);

const timers = [
  setTimeout(async () => {
    const doc = await updateDesired(operator, deviceId, 'filter', { TemperatureThreshold: 30 });
    log(
      'operator',
      'magenta',
      `set filter desired TemperatureThreshold = 30 (version ${doc.version}); alerts now above 30 °C`,
    );
  }, seconds * 330),
  setTimeout(async () => {
    const result = await invokeAsService(
      operator,
      clock,
      { deviceId, moduleId: 'SimulatedTemperatureSensor' },
      'reset',
      {},
      { timeoutInMs: 5_000 },
    );
    log(
      'operator',
      'magenta',
      `invoked SimulatedTemperatureSensor.reset → ${result.status} ${JSON.stringify(result.payload)}`,
    );
  }, seconds * 660),
  setTimeout(() => void shutdown('time is up'), seconds * 1000),
];

let stopping = false;
async function shutdown(reason: string): Promise<void> {
  if (stopping) return;
  stopping = true;
  for (const t of timers) clearTimeout(t);
  stopSensor();
  log('demo', 'green', `stopping (${reason}): draining and closing modules`);
  await Promise.all([sensor.close(), filter.close()]);
  unwatch();
  await operator.close();
  const s = sensor.stats();
  const f = filter.stats();
  log(
    'demo',
    'green',
    `sensor sent ${s.sent}; filter processed ${f.processed}, forwarded ${f.sent} alerts; dead letters ${f.deadLettered}`,
  );
}
process.once('SIGINT', () => void shutdown('Ctrl-C'));
