/**
 * Condition evaluations per second for five representative conditions, on one message whose body is already parsed
 * (routing parses a body once per message and caches it). Run: `npx tsx bench/routing.ts`.
 * Each condition is warmed up, then timed in several rounds; the median round is reported.
 */
import { compileCondition, compileRouteTable, type RoutingMessage } from '../src/routing/index.js';

const message: RoutingMessage = {
  source: '/messages/modules/sensor/outputs/temperature',
  properties: { sensorType: 'thermo', temperature: '31.5', site: 'plant-7' },
  systemProperties: {
    messageId: 'b1d2',
    contentType: 'application/json',
    contentEncoding: 'utf-8',
    connectionDeviceId: 'edge-1',
    connectionModuleId: 'sensor',
    outputName: 'temperature',
  },
  body: new TextEncoder().encode(
    JSON.stringify({
      machine: { temperature: 31.5, pressure: 1.2 },
      ambient: { temperature: 21, humidity: 40 },
      timeCreated: 'now',
    }),
  ),
};

const cases: readonly (readonly [label: string, condition: string, expected: boolean | undefined])[] = [
  ['property compare', "sensorType = 'thermo'", true],
  ['$body path compare', '$body.machine.temperature > 30', true],
  ['AND/OR mix (target ≥ 1,000,000/s)', "$body.machine.temperature > 30 AND sensorType = 'thermo'", true],
  [
    'AND/OR mix, three clauses',
    "($body.ambient.humidity < 30 OR $connectionModuleId = 'sensor') AND NOT (site = 'lab')",
    true,
  ],
  ['string function', "starts_with($connectionModuleId, 'sens') AND upper(sensorType) = 'THERMO'", true],
  ['math function', 'abs(as_number(temperature) - $body.ambient.temperature) >= power(2, 3)', true],
];

const ROUNDS = 7;
const ROUND_MS = 300;

function measure(evaluate: (m: RoutingMessage) => boolean | undefined): number {
  // Calibrate a batch size that takes about 10 ms, then time batches until the round's budget is spent.
  let batch = 1000;
  for (;;) {
    const t = performance.now();
    for (let i = 0; i < batch; i++) evaluate(message);
    if (performance.now() - t > 10) break;
    batch *= 2;
  }
  const rates: number[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    let count = 0;
    const start = performance.now();
    let now = start;
    while (now - start < ROUND_MS) {
      for (let i = 0; i < batch; i++) evaluate(message);
      count += batch;
      now = performance.now();
    }
    rates.push((count / (now - start)) * 1000);
  }
  rates.sort((a, b) => a - b);
  return rates[Math.floor(rates.length / 2)] ?? 0;
}

const format = (n: number) => Math.round(n).toLocaleString('en-US').padStart(13);

console.log(`node ${process.version}, ${ROUNDS} rounds of ${ROUND_MS} ms after warm-up, median evaluations/s`);
for (const [label, condition, expected] of cases) {
  const evaluate = compileCondition(condition);
  const result = evaluate(message);
  if (result !== expected) throw new Error(`${label}: expected ${expected}, got ${result}`);
  for (let i = 0; i < 200_000; i++) evaluate(message); // warm-up: let the JIT optimise the closures
  console.log(`${format(measure(evaluate))}/s  ${label}: ${condition}`);
}

const table = compileRouteTable({
  alerts:
    "FROM /messages/modules/sensor/outputs/* WHERE $body.machine.temperature > 30 AND sensorType = 'thermo' INTO BrokeredEndpoint('/modules/alerts/inputs/in')",
  archive: 'FROM /messages/modules/sensor/* INTO BrokeredEndpoint("/modules/archive/inputs/in")',
  cloud: {
    route: 'FROM /messages/modules/sensor/outputs/temperature INTO $upstream',
    priority: 1,
    timeToLiveSecs: 3600,
  },
  other: 'FROM /messages/modules/other/* WHERE $body.x = 1 INTO $upstream',
});
const select = (m: RoutingMessage) => table.select(m).length === 3;
for (let i = 0; i < 200_000; i++) select(message);
console.log(`${format(measure(select))}/s  route table select (4 routes, 3 destinations)`);
