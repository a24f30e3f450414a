/**
 * At-least-once with concurrent handlers on RabbitMQ: when later messages of an input finish (and are acknowledged)
 * while an earlier one is still in its handler, and the module's connection then dies, the unfinished message comes
 * again on the next connection — the acknowledgements of the others never cover it. (The transport batches acks into
 * one `multiple` ack only over deliveries that are all settled; this is the case that would break if it did not.)
 */
import { afterEach, expect, it } from 'vitest';
import { json } from '../../../src/codecs/codec.js';
import { typed } from '../../../src/codecs/schema.js';
import { connect } from '../../../src/connect.js';
import { deferred } from '../../../src/core/async.js';
import { defineModule } from '../../../src/core/contract.js';
import type { InboundMessage } from '../../../src/core/types.js';
import { deployRoutes } from '../../../src/service/operations.js';
import type { TransportConnection } from '../../../src/transport.js';
import { startTcpProxy, type TcpProxy } from '../support/tcp-proxy.js';
import { closeAll, Inbox, open, sharedRabbitMQ, testTransport, uniquePrefix, until } from './support.js';

const Sensor = defineModule({ outputs: { out: json<{ n: number }>() } });
const Worker = defineModule({
  inputs: { in: json<{ n: number }>() },
  reported: typed<{ checkpoint?: number }>(),
});

const opened: TransportConnection[] = [];
const clients: Array<{ close(): Promise<void> }> = [];
let proxy: TcpProxy | undefined;
/** Releases the handler that hangs, so closing never waits for it. */
const stuck = deferred<void>();
afterEach(async () => {
  stuck.resolve();
  await Promise.all(clients.splice(0).map((c) => c.close()));
  await closeAll(opened);
  await proxy?.close();
});

it('redelivers a message still in its handler after later ones were acknowledged and the connection was cut', async () => {
  proxy = await startTcpProxy(sharedRabbitMQ().port);
  const prefix = uniquePrefix();
  const direct = testTransport({ prefix });
  const viaProxy = testTransport({ prefix, url: `amqp://guest:guest@127.0.0.1:${proxy.port}` });
  const deviceId = 'gw-unfinished';
  const operator = await open(direct, { clientId: '$operator' }, opened);
  await deployRoutes(operator, deviceId, {
    r: 'FROM /messages/modules/sensor/outputs/out INTO BrokeredEndpoint("/modules/worker/inputs/in")',
  });

  const worker = await connect(Worker, {
    deviceId,
    moduleId: 'worker',
    transport: viaProxy,
    reconnect: { initialDelayInMs: 50, maxDelayInMs: 500 },
    onError: () => undefined,
  });
  clients.push(worker);
  const handled = new Inbox<InboundMessage<{ n: number }>>();
  await worker.onInput(
    'in',
    async (message) => {
      // The first delivery of message 0 hangs until the end of the test, like a handler on a dying process.
      if (message.body.n === 0 && !message.redelivered) await stuck.promise;
      handled.push(message);
    },
    { concurrency: 4 },
  );

  const sensor = await connect(Sensor, { deviceId, moduleId: 'sensor', transport: direct });
  clients.push(sensor);
  for (let n = 0; n < 8; n++) await sensor.send('out', { n });
  const firstRun = await handled.count(7, 10_000, 'messages 1…7 while message 0 hangs');
  expect(firstRun.map((m) => m.body.n).sort()).toEqual([1, 2, 3, 4, 5, 6, 7]);
  // A round trip on the same connection after the acks: they are at the broker before the cut.
  await worker.report({ checkpoint: 1 });

  proxy.cut();

  await until(() => handled.items.some((m) => m.body.n === 0), 10_000, 'message 0 to come again after the cut');
  const again = handled.items.find((m) => m.body.n === 0);
  expect(again?.redelivered).toBe(true);
  // Deliveries start while the new connection is still being set up; the reconnect is counted once it is complete.
  await until(() => worker.stats().reconnects === 1, 10_000, 'the reconnect to complete');
  stuck.resolve();
  // Every message was handled at least once; 1…7 may come again only if their acks were lost with the connection.
  expect(new Set(handled.items.map((m) => m.body.n))).toEqual(new Set([0, 1, 2, 3, 4, 5, 6, 7]));
});
