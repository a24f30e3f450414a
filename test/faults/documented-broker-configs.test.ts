/**
 * The broker configurations the docs print (docs/brokers/) never drop a message they acknowledged because a queue was
 * full. With the configuration the docs used to print (Mosquitto `max_queued_messages 100000`), 105,000 messages
 * sent to an offline module were all acknowledged and 5,000 of them vanished; a control case here shows Mosquitto
 * still does that with a queue limit, which is why the documented file sets none.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { connect, defineModule, isEdgeKitError, json } from '../../src/index.js';
import { deployRoutes } from '../../src/service/operations.js';
import type { Transport } from '../../src/transport.js';
import { amqp } from '../../src/transports/amqp/index.js';
import { mqtt } from '../../src/transports/mqtt/index.js';
import { type Mosquitto, startMosquitto } from '../integration/brokers/mosquitto.js';
import { type RabbitMQ, startRabbitMQ } from '../integration/brokers/rabbitmq.js';
import { REPO_ROOT } from '../integration/mqtt/fixtures/child-process.js';
import { uniqueDevice } from './support/modules.js';

const doc = (name: string) => readFileSync(path.join(REPO_ROOT, 'docs/brokers', name), 'utf8');

const Sender = defineModule({ outputs: { out: json<number>() } });
const Receiver = defineModule({ inputs: { in: json<number>() } });

const brokers: Array<Mosquitto | RabbitMQ> = [];
afterEach(async () => {
  await Promise.all(brokers.splice(0).map((broker) => broker.stop()));
});

/**
 * The receiver subscribes once and goes away; `count` messages are sent to it while it is offline; then it returns.
 * Resolves with what the sender was told (sends that resolved, sends refused with an error) and what arrived.
 */
async function offlineBacklog(transport: Transport, count: number) {
  const deviceId = uniqueDevice('backlog');
  const operator = await transport.connect({ clientId: `${deviceId}/operator` });
  await deployRoutes(operator, deviceId, {
    r: 'FROM /messages/modules/sender/outputs/out INTO BrokeredEndpoint("/modules/receiver/inputs/in")',
  });
  await operator.close();
  const options = { deviceId, transport, onError: () => undefined };
  const receiver = await connect(Receiver, { ...options, moduleId: 'receiver' });
  const registration = await receiver.onInput('in', () => undefined);
  await registration.close();
  await receiver.close();

  const sender = await connect(Sender, { ...options, moduleId: 'sender' });
  const acknowledged = new Set<number>();
  const refused: unknown[] = [];
  // A window of sends at a time, as a busy module would have.
  for (let start = 0; start < count; start += 1_000) {
    const batch = Array.from({ length: Math.min(1_000, count - start) }, (_, i) => start + i);
    await Promise.all(
      batch.map((n) =>
        sender.send('out', n).then(
          () => acknowledged.add(n),
          (error: unknown) => refused.push(error),
        ),
      ),
    );
  }
  await sender.close();

  const back = await connect(Receiver, { ...options, moduleId: 'receiver' });
  const arrived = new Set<number>();
  await back.onInput(
    'in',
    (message) => {
      arrived.add(message.body);
    },
    { concurrency: 16 },
  );
  // Delivered until the backlog is empty: every acknowledged message, then a probe sent last arrives too.
  const probe = await connect(Sender, { ...options, moduleId: 'sender' });
  await probe.send('out', -1);
  const deadline = Date.now() + 120_000;
  while (!arrived.has(-1)) {
    if (Date.now() > deadline) throw new Error(`only ${arrived.size} of ${acknowledged.size} arrived in time`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  await Promise.all([probe.close(), back.close()]);
  arrived.delete(-1);
  return { acknowledged, refused, arrived };
}

const lost = (acknowledged: Set<number>, arrived: Set<number>) => [...acknowledged].filter((n) => !arrived.has(n));

describe('documented Mosquitto configuration (docs/brokers/mosquitto.conf)', () => {
  it('105,000 messages to an offline module: every one acknowledged arrives', { timeout: 240_000 }, async () => {
    const broker = await startMosquitto({ configFile: doc('mosquitto.conf') });
    brokers.push(broker);
    const { acknowledged, refused, arrived } = await offlineBacklog(mqtt({ url: broker.url }), 105_000);
    expect(refused).toEqual([]);
    expect(acknowledged.size).toBe(105_000);
    expect(lost(acknowledged, arrived)).toEqual([]);
  });

  it('control: with a queue limit, Mosquitto acknowledges and then drops (the reason the file sets none)', {
    timeout: 60_000,
  }, async () => {
    const broker = await startMosquitto({ configFile: doc('mosquitto.conf'), config: ['max_queued_messages 1000'] });
    brokers.push(broker);
    const { acknowledged, arrived } = await offlineBacklog(mqtt({ url: broker.url }), 1_500);
    expect(acknowledged.size).toBe(1_500);
    expect(lost(acknowledged, arrived).length).toBeGreaterThan(0);
    expect(broker.log()).toMatch(/Outgoing messages are being dropped/);
  });
});

describe('documented RabbitMQ configuration (docs/brokers/rabbitmq.conf and rabbitmq-definitions.json)', () => {
  it('a queue at its length limit refuses new messages: every one acknowledged arrives, the others are refused', {
    timeout: 120_000,
  }, async () => {
    // The documented bound is 1 GiB per queue; the same policy with 200 KB shows what happens when it is reached.
    const definitions = doc('rabbitmq-definitions.json').replace('1073741824', '200000');
    const broker = await startRabbitMQ({ configFile: doc('rabbitmq.conf'), definitionsFile: definitions });
    brokers.push(broker);
    const { acknowledged, refused, arrived } = await offlineBacklog(amqp({ url: broker.url }), 5_000);
    expect(refused.length).toBeGreaterThan(0);
    expect(refused.every((error) => isEdgeKitError(error))).toBe(true);
    expect(acknowledged.size + refused.length).toBe(5_000);
    expect(lost(acknowledged, arrived)).toEqual([]);
  });
});
