/**
 * Module clients on RabbitMQ whose input handler throws: the core tries a message `maxAttempts` times (the handler
 * sees attempt 1, 2, …), then publishes it to the module's dead-letter queue `deadletter/<device>/<module>` with the
 * reason `handler-failed`, the error text and the attempt count, and only then acknowledges it. The dead letter waits
 * durably for an operator; the input carries on with later messages and nothing is left unacknowledged.
 */
import { afterEach, expect, it } from 'vitest';
import { systemClock } from '../../../src/clock.js';
import { json } from '../../../src/codecs/codec.js';
import { connect } from '../../../src/connect.js';
import { defineModule } from '../../../src/core/contract.js';
import { decodeEnvelope, type Envelope } from '../../../src/core/envelope.js';
import type { EdgeKitError } from '../../../src/errors.js';
import { addresses } from '../../../src/names.js';
import { deployRoutes, injectMessage } from '../../../src/service/operations.js';
import type { TransportConnection } from '../../../src/transport.js';
import { topology } from '../../../src/transports/amqp/topology.js';
import { closeAll, Inbox, open, rawConnection, readyCount, testTransport, uniquePrefix } from './support.js';

type Reading = { n: number; kind: 'good' | 'flaky' | 'poison' };
const Sensor = defineModule({ outputs: { out: json<Reading>() } });
const Sink = defineModule({ inputs: { in: json<Reading>() } });

const opened: TransportConnection[] = [];
const clients: Array<{ close(): Promise<void> }> = [];
afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
  await closeAll(opened);
});

/** Reads every dead letter waiting in a module's dead-letter queue (consuming them, as an operator would). */
async function drainDeadLetters(
  operator: TransportConnection,
  deviceId: string,
  moduleId: string,
  expected: number,
): Promise<Envelope[]> {
  const inbox = new Inbox<Envelope>();
  const subscription = await operator.consume(addresses.deadLetter(deviceId, moduleId), { prefetch: 50 }, (d) => {
    inbox.push(decodeEnvelope(d.bytes));
    d.ack();
  });
  try {
    return [...(await inbox.count(expected, 10_000, `${expected} dead letters`))];
  } finally {
    await subscription.close();
  }
}

it('tries a throwing handler maxAttempts times, dead-letters the message with reason, error and attempts, and goes on', async () => {
  const prefix = uniquePrefix();
  const transport = testTransport({ prefix });
  const deviceId = 'gw-dead';
  const operator = await open(transport, { clientId: '$operator' }, opened);
  await deployRoutes(operator, deviceId, {
    r: 'FROM /messages/modules/sensor/outputs/out INTO BrokeredEndpoint("/modules/sink/inputs/in")',
  });

  const errors: EdgeKitError[] = [];
  const sink = await connect(Sink, {
    deviceId,
    moduleId: 'sink',
    transport,
    maxAttempts: 4,
    retryDelayInMs: 5,
    onError: (error) => errors.push(error),
  });
  clients.push(sink);
  const attempts = new Map<number, number[]>();
  const processed = new Inbox<number>();
  await sink.onInput('in', async (message) => {
    const { n, kind } = message.body;
    attempts.set(n, [...(attempts.get(n) ?? []), message.attempt]);
    if (kind === 'poison') throw new Error(`reading ${n} is poison`);
    if (kind === 'flaky' && message.attempt < 3) throw new Error(`reading ${n} failed transiently`);
    processed.push(n);
  });

  const sensor = await connect(Sensor, { deviceId, moduleId: 'sensor', transport });
  clients.push(sensor);
  const kinds: Reading['kind'][] = ['good', 'poison', 'flaky', 'good', 'poison', 'good'];
  const messageIds: string[] = [];
  for (const [n, kind] of kinds.entries()) {
    const result = await sensor.send('out', { n, kind });
    expect(result.destinations).toBe(1);
    messageIds.push(result.messageId);
  }

  // Concurrency 1: in order, a poison message holds the input only for its own attempts.
  expect(await processed.count(4, 10_000, 'the four messages that can succeed')).toEqual([0, 2, 3, 5]);
  expect(attempts.get(1)).toEqual([1, 2, 3, 4]);
  expect(attempts.get(4)).toEqual([1, 2, 3, 4]);
  expect(attempts.get(2)).toEqual([1, 2, 3]);
  expect(attempts.get(0)).toEqual([1]);
  const stats = sink.stats();
  expect(stats).toMatchObject({ processed: 4, deadLettered: 2, handlerErrors: 10, redelivered: 0 });
  expect(errors.map((e) => e.message)).toEqual([
    expect.stringContaining(`message ${messageIds[1]} on input "in" dead-lettered (handler-failed)`),
    expect.stringContaining(`message ${messageIds[4]} on input "in" dead-lettered (handler-failed)`),
  ]);

  // Closing drains and disconnects: whatever was not acknowledged would now be back in the input queue.
  await sink.close();
  const raw = await rawConnection();
  try {
    const names = topology(prefix);
    expect(await readyCount(raw, names.messageQueue(addresses.input(deviceId, 'sink', 'in')))).toBe(0);
    expect(await readyCount(raw, names.messageQueue(addresses.deadLetter(deviceId, 'sink')))).toBe(2);
  } finally {
    await raw.close();
  }

  // The dead letters waited for the operator, in order, each the original message plus why it was given up.
  const letters = await drainDeadLetters(operator, deviceId, 'sink', 2);
  expect(letters).toHaveLength(2);
  for (const [i, n] of [1, 4].entries()) {
    const letter = letters[i] as Envelope;
    expect(letter.header.messageId).toBe(messageIds[n]);
    expect(letter.header).toMatchObject({
      sourceDeviceId: deviceId,
      sourceModuleId: 'sensor',
      sourceOutput: 'out',
      contentType: 'application/json',
    });
    expect(letter.header.deadLetter).toMatchObject({
      reason: 'handler-failed',
      error: `reading ${n} is poison`,
      input: 'in',
      attempts: 4,
    });
    expect(letter.header.deadLetter?.at).toBeGreaterThan(0);
    expect(JSON.parse(new TextDecoder().decode(letter.body))).toEqual({ n, kind: 'poison' });
  }
});

it('with concurrency 4, dead-letters each poison message once while every other message is processed once', async () => {
  const prefix = uniquePrefix();
  const transport = testTransport({ prefix });
  const deviceId = 'gw-dead-many';
  const operator = await open(transport, { clientId: '$operator' }, opened);
  const sink = await connect(Sink, {
    deviceId,
    moduleId: 'sink',
    transport,
    maxAttempts: 2,
    retryDelayInMs: 1,
    onError: () => undefined,
  });
  clients.push(sink);
  const processed = new Inbox<number>();
  const poisonAttempts = new Map<number, number>();
  await sink.onInput(
    'in',
    async (message) => {
      const { n, kind } = message.body;
      // A turn of the event loop per message, so four handlers really overlap.
      await new Promise((resolve) => setImmediate(resolve));
      if (kind === 'poison') {
        poisonAttempts.set(n, (poisonAttempts.get(n) ?? 0) + 1);
        throw new Error(`poison ${n}`);
      }
      processed.push(n);
    },
    { concurrency: 4 },
  );

  const total = 200;
  const isPoison = (n: number) => n % 10 === 7;
  const encoder = new TextEncoder();
  for (let n = 0; n < total; n++) {
    const body: Reading = { n, kind: isPoison(n) ? 'poison' : 'good' };
    await injectMessage(
      operator,
      systemClock,
      { deviceId, moduleId: 'sink', input: 'in' },
      encoder.encode(JSON.stringify(body)),
      { contentType: 'application/json', contentEncoding: 'utf-8', messageId: `m${n}` },
    );
  }
  const goods = Array.from({ length: total }, (_, n) => n).filter((n) => !isPoison(n));
  const poisons = Array.from({ length: total }, (_, n) => n).filter(isPoison);

  const letters = await drainDeadLetters(operator, deviceId, 'sink', poisons.length);
  await processed.count(goods.length, 10_000, `${goods.length} good messages`);
  await sink.close();

  expect([...processed.items].sort((a, b) => a - b)).toEqual(goods);
  expect(letters.map((l) => l.header.messageId).sort()).toEqual(poisons.map((n) => `m${n}`).sort());
  for (const letter of letters) {
    expect(letter.header.deadLetter).toMatchObject({ reason: 'handler-failed', attempts: 2, input: 'in' });
  }
  expect([...poisonAttempts.values()]).toEqual(poisons.map(() => 2));
  expect(sink.stats()).toMatchObject({ processed: goods.length, deadLettered: poisons.length, redelivered: 0 });
  const raw = await rawConnection();
  try {
    const names = topology(prefix);
    expect(await readyCount(raw, names.messageQueue(addresses.input(deviceId, 'sink', 'in')))).toBe(0);
    expect(await readyCount(raw, names.messageQueue(addresses.deadLetter(deviceId, 'sink')))).toBe(0);
  } finally {
    await raw.close();
  }
});
