/**
 * `npm run demo`: the example pipeline in one process — a simulated temperature sensor feeding a filter that raises
 * alerts to $upstream — deployed from deployment.json, with an operator changing a desired property and calling a
 * direct method along the way. Runs on the embedded memory broker; stops by itself or on Ctrl-C.
 *
 *   npm run demo [-- --duration 12]
 */
import { readFileSync } from 'node:fs';
import { parseArgs, styleText } from 'node:util';
import { connect, MemoryBroker, memory, type Transport } from 'edgekit';
import { routesFromManifest } from 'edgekit/routing';
import { decodeEnvelope } from '../src/core/envelope.js';
import { deployRoutes, invokeAsService, updateDesired } from '../src/service/operations.js';
import { Filter, startFilter } from './filter/module.js';
import { type Reading, startSensor, TemperatureSensor } from './temperature-sensor/module.js';

const { values } = parseArgs({
  options: { duration: { type: 'string', default: '12' }, help: { type: 'boolean', short: 'h' } },
});
if (values.help) {
  console.log('usage: npm run demo [-- --duration <seconds>]');
  process.exit(0);
}
const seconds = Number(values.duration);
if (!Number.isFinite(seconds) || seconds <= 0) {
  console.error(`demo: --duration must be a positive number of seconds, got ${values.duration}`);
  process.exit(2);
}

const color = process.stdout.isTTY;
const paint = (style: Parameters<typeof styleText>[0], text: string) => (color ? styleText(style, text) : text);
const t0 = Date.now();
const log = (who: string, style: Parameters<typeof styleText>[0], text: string) =>
  console.log(
    `${paint('gray', `+${((Date.now() - t0) / 1000).toFixed(1).padStart(5)}s`)} ${paint(style, who.padEnd(9))} ${text}`,
  );

const deviceId = 'demo-device';
const manifest = JSON.parse(readFileSync(new URL('./deployment.json', import.meta.url), 'utf8'));
const broker = new MemoryBroker();
const transport: Transport = memory({ broker });

// The operator: deploy routes and desired properties from the manifest.
const operator = await transport.connect({ clientId: '$operator' });
await deployRoutes(operator, deviceId, routesFromManifest(manifest));
await updateDesired(operator, deviceId, 'SimulatedTemperatureSensor', { SendInterval: 0.3 });
await updateDesired(operator, deviceId, 'filter', { TemperatureThreshold: 25 });
log('operator', 'magenta', 'deployed deployment.json: 2 routes, SendInterval 0.3 s, TemperatureThreshold 25');

const sensor = await connect(TemperatureSensor, { deviceId, moduleId: 'SimulatedTemperatureSensor', transport });
const filter = await connect(Filter, { deviceId, moduleId: 'filter', transport });
await startFilter(filter);
const stopSensor = await startSensor(sensor);

// Watch what the modules do, as an operator's monitor would.
const describe = (r: Reading) =>
  `machine ${r.machine.temperature.toFixed(1)} °C ${r.machine.pressure.toFixed(2)} bar · ambient ${r.ambient.temperature.toFixed(1)} °C ${r.ambient.humidity.toFixed(0)} %`;
const unwatch = broker.tap((event) => {
  if (event.kind !== 'publish' || !event.bytes) return;
  const { header, body: bytes } = decodeEnvelope(event.bytes);
  const body = JSON.parse(new TextDecoder().decode(bytes)) as Reading;
  if (event.address.startsWith('inputs/')) log('sensor', 'cyan', `→ filter/input1   ${describe(body)}`);
  else if (event.address.startsWith('upstream/')) {
    log(
      'filter',
      'yellow',
      `→ $upstream  ${paint('bold', `ALERT (${header.properties.MessageType})`)} ${describe(body)}`,
    );
  }
});

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
      broker.clock,
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
