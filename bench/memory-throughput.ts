/**
 * Memory transport throughput: messages per second from `send` to the input handler (256-byte JSON body, one
 * route, concurrency 1), beside an eventemitter3 emit + JSON.stringify/parse loop in the same run, as a ratio.
 *
 *   npm run bench   (builds, then runs every benchmark against dist/)
 */

import { connect, defineModule, json } from 'edgekit';
import { createTestHub } from 'edgekit/testing';
import EventEmitter from 'eventemitter3';
import { body256, fmt, rate, table } from './common.js';

const N = 200_000;
const ROUNDS = 5;
const body = body256();

async function baseline(): Promise<number> {
  const ee = new EventEmitter();
  let received = 0;
  ee.on('m', (s: string) => {
    JSON.parse(s);
    received++;
  });
  return rate(N, ROUNDS, (n) => {
    received = 0;
    for (let i = 0; i < n; i++) ee.emit('m', JSON.stringify(body));
    if (received !== n) throw new Error('baseline lost messages');
  });
}

async function edgekit(): Promise<number> {
  const hub = await createTestHub({
    deviceId: 'bench',
    routes: { r: 'FROM /messages/modules/sender/outputs/out INTO BrokeredEndpoint("/modules/receiver/inputs/in")' },
  });
  const transport = hub.transport();
  const Sender = defineModule({ outputs: { out: json<typeof body>() } });
  const Receiver = defineModule({ inputs: { in: json<typeof body>() } });
  const sender = await connect(Sender, {
    deviceId: 'bench',
    moduleId: 'sender',
    transport,
    offlineQueue: { maxMessages: 0 },
  });
  const receiver = await connect(Receiver, { deviceId: 'bench', moduleId: 'receiver', transport });
  let received = 0;
  let target = 0;
  let done: (() => void) | undefined;
  await receiver.onInput('in', () => {
    received++;
    if (received === target) done?.();
  });
  const result = await rate(N, ROUNDS, async (n) => {
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
  });
  await Promise.all([sender.close(), receiver.close()]);
  await hub.close();
  return result;
}

const base = await baseline();
const ours = await edgekit();
const ratio = ours / base;
table('memory transport: send → input handler, 256-byte JSON, one route (median of 5 × 200,000)', [
  { measure: 'eventemitter3 emit + JSON.stringify/parse', 'msgs/s': fmt(base), ratio: '1.00' },
  { measure: 'edgekit memory transport', 'msgs/s': fmt(ours), ratio: ratio.toFixed(2) },
]);
console.log(`target: ratio ≥ 0.25 — ${ratio >= 0.25 ? 'met' : 'NOT met'}`);
