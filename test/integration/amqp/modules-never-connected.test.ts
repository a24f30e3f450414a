/**
 * A module that has never connected to RabbitMQ still gets what was routed to it while it was away: the sender's
 * publish declares the destination's durable queue, the messages wait there (until their route's time to live), and
 * the module's first connection receives them in order — with the desired properties an operator set meanwhile.
 */
import { afterEach, expect, it } from 'vitest';
import { json } from '../../../src/codecs/codec.js';
import { typed } from '../../../src/codecs/schema.js';
import { connect } from '../../../src/connect.js';
import { defineModule } from '../../../src/core/contract.js';
import type { InboundMessage } from '../../../src/core/types.js';
import { addresses } from '../../../src/names.js';
import { deployRoutes, readPresence, readTwin, updateDesired } from '../../../src/service/operations.js';
import type { TransportConnection } from '../../../src/transport.js';
import { topology } from '../../../src/transports/amqp/topology.js';
import { closeAll, Inbox, open, rawConnection, readyCount, testTransport, uniquePrefix, until } from './support.js';

type Reading = { n: number; fresh: boolean };
const Sensor = defineModule({ outputs: { out: json<Reading>() } });
const Latecomer = defineModule({
  inputs: { in: json<Reading>() },
  desired: typed<{ threshold?: number }>(),
});

const opened: TransportConnection[] = [];
const clients: Array<{ close(): Promise<void> }> = [];
afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
  await closeAll(opened);
});

it('receives, on its first connection, the messages routed to it while it had never connected', async () => {
  const prefix = uniquePrefix();
  const transport = testTransport({ prefix });
  const deviceId = 'gw-late';
  const operator = await open(transport, { clientId: '$operator' }, opened);
  await deployRoutes(operator, deviceId, {
    toLatecomer: 'FROM /messages/modules/sensor/outputs/out INTO BrokeredEndpoint("/modules/latecomer/inputs/in")',
  });
  await updateDesired(operator, deviceId, 'latecomer', { threshold: 25 });
  const queue = topology(prefix).messageQueue(addresses.input(deviceId, 'latecomer', 'in'));
  const raw = await rawConnection();
  try {
    // Nothing of the latecomer exists on the broker yet: no presence, no input queue.
    expect(await readPresence(operator, deviceId, 'latecomer')).toBeUndefined();
    expect(await readyCount(raw, queue)).toBeUndefined();

    const sensor = await connect(Sensor, { deviceId, moduleId: 'sensor', transport });
    clients.push(sensor);
    const total = 100;
    const messageIds: string[] = [];
    for (let n = 0; n < total; n++) {
      const result = await sensor.send('out', { n, fresh: true });
      expect(result.destinations).toBe(1);
      messageIds.push(result.messageId);
    }
    await sensor.close();
    // Every send resolved on the broker's confirm, so all of them are in the durable queue now.
    expect(await readyCount(raw, queue)).toBe(total);

    const latecomer = await connect(Latecomer, { deviceId, moduleId: 'latecomer', transport });
    clients.push(latecomer);
    const desired = new Inbox<{ threshold?: number; version: number }>();
    await latecomer.onDesired((properties, _patch, version) => desired.push({ ...properties, version }));
    const inbox = new Inbox<InboundMessage<Reading>>();
    await latecomer.onInput('in', (message) => inbox.push(message));

    const received = await inbox.count(total, 10_000, `${total} messages for the latecomer`);
    expect(received.map((m) => m.body.n)).toEqual(Array.from({ length: total }, (_, n) => n));
    expect(received.map((m) => m.messageId)).toEqual(messageIds);
    for (const message of received) {
      expect(message.source).toEqual({ deviceId, moduleId: 'sensor', output: 'out' });
      expect(message.redelivered).toBe(false);
      expect(message.attempt).toBe(1);
    }
    expect(await desired.next(5_000, 'the desired document')).toEqual({ threshold: 25, version: 1 });
    expect((await readPresence(operator, deviceId, 'latecomer'))?.state).toBe('online');
    expect((await readTwin(operator, deviceId, 'latecomer')).desired.version).toBe(1);

    await latecomer.close();
    expect(await readyCount(raw, queue)).toBe(0);
  } finally {
    await raw.close();
  }
});

it('does not get the messages whose route time to live ran out before it first connected', async () => {
  const prefix = uniquePrefix();
  const transport = testTransport({ prefix });
  const deviceId = 'gw-late-ttl';
  const operator = await open(transport, { clientId: '$operator' }, opened);
  await deployRoutes(operator, deviceId, {
    stale: {
      route:
        'FROM /messages/modules/sensor/outputs/out WHERE $body.fresh = false INTO BrokeredEndpoint("/modules/latecomer/inputs/in")',
      timeToLiveSecs: 1,
    },
    fresh:
      'FROM /messages/modules/sensor/outputs/out WHERE $body.fresh = true INTO BrokeredEndpoint("/modules/latecomer/inputs/in")',
  });
  const queue = topology(prefix).messageQueue(addresses.input(deviceId, 'latecomer', 'in'));
  const sensor = await connect(Sensor, { deviceId, moduleId: 'sensor', transport });
  clients.push(sensor);
  // Short-lived messages first: RabbitMQ drops an expired message when it reaches the head of the queue.
  for (let n = 0; n < 10; n++) expect((await sensor.send('out', { n, fresh: false })).destinations).toBe(1);
  for (let n = 10; n < 20; n++) expect((await sensor.send('out', { n, fresh: true })).destinations).toBe(1);
  await sensor.close();

  const raw = await rawConnection();
  try {
    expect(await readyCount(raw, queue)).toBe(20);
    // The broker's own expiry is the event: the ten 1-second messages leave the queue, the others stay.
    await until(async () => (await readyCount(raw, queue)) === 10, 10_000, 'the expired messages to be dropped');
  } finally {
    await raw.close();
  }

  const latecomer = await connect(Latecomer, { deviceId, moduleId: 'latecomer', transport });
  clients.push(latecomer);
  const inbox = new Inbox<InboundMessage<Reading>>();
  await latecomer.onInput('in', (message) => inbox.push(message));
  // In queue order an expired message would have come before the fresh ones.
  const received = await inbox.count(10, 10_000, 'the ten fresh messages');
  expect(received.map((m) => m.body)).toEqual(Array.from({ length: 10 }, (_, i) => ({ n: 10 + i, fresh: true })));
});
