/**
 * End to end on RabbitMQ with the real core: a 5,000-message stream from one module to another, with the broker
 * restarted in the middle, arrives whole — every message id at least once. Sends made while the broker is down wait
 * in the sender's offline queue; unacknowledged deliveries come again after the reconnect.
 *
 * This suite restarts the shared broker: it must not run beside other AMQP suites (one worker, or its own group).
 */
import { afterEach, expect, it } from 'vitest';
import { json } from '../../../src/codecs/codec.js';
import { connect } from '../../../src/connect.js';
import { defineModule } from '../../../src/core/contract.js';
import type { ModuleClient } from '../../../src/core/types.js';
import { deployRoutes } from '../../../src/service/operations.js';
import type { TransportConnection } from '../../../src/transport.js';
import { closeAll, open, restartRabbitMQ, testTransport, uniquePrefix, until } from './support.js';

const Sensor = defineModule({ outputs: { out: json<{ n: number }>() } });
const Sink = defineModule({ inputs: { in: json<{ n: number }>() } });

const opened: TransportConnection[] = [];
const clients: Array<{ close(): Promise<void> }> = [];
afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
  await closeAll(opened);
});

it('delivers every one of 5,000 messages although the broker restarts mid-stream', async () => {
  const prefix = uniquePrefix();
  const transport = testTransport({ prefix });
  const deviceId = 'gw-stream';
  const operator = await open(transport, { clientId: '$operator' }, opened);
  await deployRoutes(operator, deviceId, {
    r: 'FROM /messages/modules/sensor/outputs/out INTO BrokeredEndpoint("/modules/sink/inputs/in")',
  });
  const common = {
    deviceId,
    transport,
    reconnect: { initialDelayInMs: 100, maxDelayInMs: 1_000 },
    offlineQueue: { maxMessages: 10_000 },
    onError: () => undefined,
  };
  const sink: ModuleClient<typeof Sink> = await connect(Sink, { ...common, moduleId: 'sink' });
  clients.push(sink);
  const received = new Set<number>();
  let deliveries = 0;
  await sink.onInput('in', async (message) => {
    deliveries++;
    received.add(message.body.n);
  });
  const sensor = await connect(Sensor, { ...common, moduleId: 'sensor' });
  clients.push(sensor);

  const total = 5_000;
  let restart: Promise<void> | undefined;
  const started = Date.now();
  for (let n = 0; n < total; n++) {
    if (n === 1_500) restart = restartRabbitMQ();
    await sensor.send('out', { n });
  }
  await restart;
  await until(() => received.size === total, 60_000, `${total} distinct messages (have ${received.size})`);
  expect([...received].sort((a, b) => a - b)).toEqual(Array.from({ length: total }, (_, n) => n));
  console.info(
    `${total} messages across a restart in ${Date.now() - started} ms; ${deliveries - total} delivered twice`,
  );
}, 120_000);
