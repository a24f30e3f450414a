/**
 * Memory transport throughput: messages per second from `send` to the input handler (256-byte JSON body, one
 * route, concurrency 1), beside an eventemitter3 emit + JSON.stringify/parse loop, alternating rounds in the same
 * run, as a ratio. Target (issue #2): ≥ 0.25.
 *
 *   npm run bench -- memory-throughput    (builds, then runs against dist/)
 */

import { connect, defineModule, json } from 'edgekit';
import { createTestHub } from 'edgekit/testing';
import EventEmitter from 'eventemitter3';
import { body256, compare, fmt, table } from './common.js';

const N = 100_000;
const ROUNDS = 7;
const body = body256();

const ee = new EventEmitter();
let baselineReceived = 0;
ee.on('m', (s: string) => {
  JSON.parse(s);
  baselineReceived++;
});
const baseline = (n: number) => {
  baselineReceived = 0;
  for (let i = 0; i < n; i++) ee.emit('m', JSON.stringify(body));
  if (baselineReceived !== n) throw new Error('baseline lost messages');
};

const hub = await createTestHub({
  deviceId: 'bench',
  routes: { r: 'FROM /messages/modules/sender/outputs/out INTO BrokeredEndpoint("/modules/receiver/inputs/in")' },
});
const transport = hub.transport();
const Sender = defineModule({ outputs: { out: json<typeof body>() } });
const Receiver = defineModule({ inputs: { in: json<typeof body>() } });
const sender = await connect(Sender, { deviceId: 'bench', moduleId: 'sender', transport });
const receiver = await connect(Receiver, { deviceId: 'bench', moduleId: 'receiver', transport });
let received = 0;
let target = 0;
let done: (() => void) | undefined;
await receiver.onInput('in', () => {
  received++;
  if (received === target) done?.();
});
const edgekit = async (n: number) => {
  received = 0;
  target = n;
  const all = new Promise<void>((resolve) => {
    done = resolve;
  });
  const window: Promise<unknown>[] = [];
  for (let i = 0; i < n; i++) {
    window.push(sender.send('out', body));
    if (window.length === 1000) await Promise.all(window.splice(0));
  }
  await Promise.all(window);
  await all;
};

const result = await compare(N, ROUNDS, baseline, edgekit);
await Promise.all([sender.close(), receiver.close()]);
await hub.close();
table(
  `memory transport: send → input handler, 256-byte JSON, one route (median of ${ROUNDS} alternating rounds × ${fmt(N)})`,
  [
    { measure: 'eventemitter3 emit + JSON.stringify/parse', 'msgs/s': fmt(result.a), ratio: '1.00' },
    { measure: 'edgekit memory transport', 'msgs/s': fmt(result.b), ratio: result.ratio.toFixed(2) },
  ],
);
console.log(`target: ratio ≥ 0.25 — ${result.ratio >= 0.25 ? 'met' : 'NOT met'}`);
