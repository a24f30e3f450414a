/**
 * What the broker may send a connection is bounded, so the memory held by inputs not yet handled is too: the CONNECT
 * announces a Receive Maximum (unacknowledged QoS 1 messages at once) and a Maximum Packet Size. A module returning
 * to a backlog of 300 messages used to get all of them at once (300 × 1 MB held 393 MB of RSS).
 */
import type { IPublishPacket, MqttClient } from 'mqtt';
import * as mqttLib from 'mqtt';
import { describe, expect, it } from 'vitest';
import type { TransportConnection } from '../../../src/transport.js';
import { mqtt } from '../../../src/transports/mqtt/index.js';
import type { MqttLibrary } from '../../../src/transports/mqtt/options.js';
import { unique, useConnections, useMosquitto } from './support/fixtures.js';
import { withTimeout } from './support/wait.js';

const broker = useMosquitto();
const connections = useConnections();

/** The mqtt module, counting the queue messages each client it makes receives (at the packet level). */
function countingLib(topicSuffix: string): { lib: MqttLibrary; received(): number } {
  let received = 0;
  const lib: MqttLibrary = {
    connect(options) {
      const client: MqttClient = mqttLib.connect(options);
      client.on('packetreceive', (packet) => {
        if (packet.cmd === 'publish' && (packet as IPublishPacket).topic.endsWith(topicSuffix)) received += 1;
      });
      return client;
    },
  };
  return { lib, received: () => received };
}

/** A backlog of `count` messages of `bytes` each for the queue `address` of client `clientId`, then a reconnect. */
async function returnToBacklog(options: {
  clientId: string;
  address: string;
  count: number;
  bytes: number;
  receiveMaximum?: number;
}): Promise<{ consumer: TransportConnection; received(): number }> {
  const url = broker().url;
  const counter = countingLib(options.address.split('/').at(-1) as string);
  const settings = {
    url,
    lib: counter.lib,
    ...(options.receiveMaximum === undefined ? {} : { receiveMaximum: options.receiveMaximum }),
  };
  // The session subscribes once, then goes away; the backlog waits in it.
  const first = await mqtt(settings).connect({ clientId: options.clientId });
  await first.consume(options.address, { prefetch: 1 }, () => undefined);
  await first.close();
  const sender = await connections.open(mqtt({ url }), { clientId: `${options.clientId}-sender` });
  const body = new Uint8Array(options.bytes);
  await Promise.all(Array.from({ length: options.count }, () => sender.publish(options.address, body)));
  const consumer = await connections.open(mqtt(settings), { clientId: options.clientId });
  // Nothing is acknowledged: the handler never acks.
  await consumer.consume(options.address, { prefetch: 1 }, () => undefined);
  // A retained read syncs with the broker (a sentinel through it): whatever it sent before has arrived by now.
  await consumer.getRetained(`sync/${options.clientId.replaceAll('/', '-')}`);
  return { consumer, received: counter.received };
}

describe('bounded receiving', () => {
  it('a returning module gets at most receiveMaximum unacknowledged messages of its backlog (default 128)', async () => {
    const device = unique('dev');
    const { received } = await returnToBacklog({
      clientId: `${device}/m`,
      address: `inputs/${device}/m/in`,
      count: 300,
      bytes: 20_000,
    });
    expect(received()).toBe(128);
  });

  it('receiveMaximum is an option', async () => {
    const device = unique('dev');
    const { consumer, received } = await returnToBacklog({
      clientId: `${device}/m`,
      address: `inputs/${device}/m/in`,
      count: 50,
      bytes: 1_000,
      receiveMaximum: 10,
    });
    expect(received()).toBe(10);
    expect(consumer).toBeDefined();
  });

  it('a message over the packet limit is not sent to the module (the broker drops it for this client)', async () => {
    const device = unique('dev');
    const url = broker().url;
    const address = `inputs/${device}/m/in`;
    const receiver = await connections.open(mqtt({ url, maxPacketBytes: 100_000 }), { clientId: `${device}/m` });
    const got: number[] = [];
    await receiver.consume(address, { prefetch: 10 }, (delivery) => {
      got.push(delivery.bytes.length);
      delivery.ack();
    });
    const sender = await connections.open(mqtt({ url }), { clientId: `${device}/sender` });
    await sender.publish(address, new Uint8Array(150_000));
    await sender.publish(address, new Uint8Array(10));
    await withTimeout(
      (async () => {
        while (got.length === 0) await new Promise((resolve) => setTimeout(resolve, 10));
      })(),
      5_000,
      'the small message',
    );
    expect(got).toEqual([10]);
    expect(broker().log()).toMatch(/too large/i);
  });
});
