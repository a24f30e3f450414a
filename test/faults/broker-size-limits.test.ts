/**
 * A send over the broker's size limit is refused — that one send, with `message-too-large` — and the module keeps
 * going: later sends are delivered, the connection is not lost over and over. On Mosquitto the limit is announced in
 * the CONNACK (`max_packet_size`) or not at all (`message_size_limit`: the broker answers the publish with a PUBACK
 * reason mqtt.js cannot read, which used to wedge the connection until the keep-alive ended it, every 45 s, with
 * the same message sent again each time). RabbitMQ's `max_message_size` is covered at the transport level
 * (test/integration/amqp): it is above edgekit's 256 KiB in the documented configuration.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { connect, defineModule, json } from '../../src/index.js';
import { deployRoutes } from '../../src/service/operations.js';
import type { Transport } from '../../src/transport.js';
import { mqtt } from '../../src/transports/mqtt/index.js';
import { type Mosquitto, startMosquitto } from '../integration/brokers/mosquitto.js';
import { uniqueDevice } from './support/modules.js';

const Sender = defineModule({ outputs: { out: json<{ n: number; pad: string }>() } });
const Receiver = defineModule({ inputs: { in: json<{ n: number; pad: string }>() } });

const started: Mosquitto[] = [];
afterEach(async () => {
  await Promise.all(started.splice(0).map((broker) => broker.stop()));
});

async function mosquittoWith(config: string[]): Promise<Mosquitto> {
  const broker = await startMosquitto({ config });
  started.push(broker);
  return broker;
}

/** Sender and receiver modules on `transport`, routed sender/out → receiver/in. */
async function pipeline(transport: Transport) {
  const deviceId = uniqueDevice('size');
  const operator = await transport.connect({ clientId: `${deviceId}/operator` });
  await deployRoutes(operator, deviceId, {
    r: 'FROM /messages/modules/sender/outputs/out INTO BrokeredEndpoint("/modules/receiver/inputs/in")',
  });
  await operator.close();
  const options = { deviceId, transport, reconnect: { initialDelayInMs: 20, maxDelayInMs: 200 }, onError: () => {} };
  const receiver = await connect(Receiver, { ...options, moduleId: 'receiver' });
  const received: number[] = [];
  await receiver.onInput('in', (message) => {
    received.push(message.body.n);
  });
  const sender = await connect(Sender, { ...options, moduleId: 'sender' });
  return { sender, receiver, received };
}

async function until(condition: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

const message = (n: number, bytes: number) => ({ n, pad: 'x'.repeat(bytes) });

describe('mqtt: a send over the broker limit', () => {
  it('announced (max_packet_size): refused before it is sent; the connection stays; later sends arrive', async () => {
    const broker = await mosquittoWith(['max_packet_size 100000']);
    const { sender, receiver, received } = await pipeline(mqtt({ url: broker.url }));
    try {
      await sender.send('out', message(1, 100));
      await expect(sender.send('out', message(2, 150_000))).rejects.toMatchObject({ code: 'message-too-large' });
      await sender.send('out', message(3, 100));
      await until(() => received.length === 2, 10_000, 'the two small messages');
      expect(received).toEqual([1, 3]);
      expect(sender.stats().reconnects).toBe(0);
      expect(broker.log()).not.toMatch(/oversize/);
    } finally {
      await Promise.all([sender.close(), receiver.close()]);
    }
  });

  it('not announced (message_size_limit): that send is refused once, and never sent again; later sends arrive', async () => {
    const broker = await mosquittoWith(['message_size_limit 100000']);
    const { sender, receiver, received } = await pipeline(mqtt({ url: broker.url }));
    try {
      await sender.send('out', message(1, 100));
      const refused = await sender.send('out', message(2, 150_000)).catch((error: unknown) => error);
      expect(refused).toMatchObject({ code: 'message-too-large' });
      // The unreadable acknowledgement ended the connection once; the client is back at once, not after 45 s.
      await until(() => sender.state.state === 'connected', 10_000, 'the sender to be connected again');
      await sender.send('out', message(3, 100));
      // A size the broker refused is not sent again: refused at once, no new connection.
      const reconnects = sender.stats().reconnects;
      await expect(sender.send('out', message(4, 150_000))).rejects.toMatchObject({ code: 'message-too-large' });
      await sender.send('out', message(5, 100));
      await until(() => received.length === 3, 10_000, 'the three small messages');
      expect(received).toEqual([1, 3, 5]);
      expect(sender.stats().reconnects).toBe(reconnects);
      expect(reconnects).toBeLessThanOrEqual(1);
    } finally {
      await Promise.all([sender.close(), receiver.close()]);
    }
  });
});
