/**
 * `observe` and `listRetained` on a real Mosquitto, beyond the conformance suite: a broker without subscription
 * identifiers (the fallback by topic), a pattern subscription a crashed connection left in its session, and the
 * pattern subscriptions a graceful close removes.
 */

import type { IPublishPacket, MqttClient } from 'mqtt';
import * as mqttLib from 'mqtt';
import { describe, expect, it } from 'vitest';
import type { TransportConnection } from '../../../src/transport.js';
import { transportFor, unique, useConnections, useMosquitto, useProxies, utf8 } from './support/fixtures.js';
import { Inbox } from './support/wait.js';

const broker = useMosquitto();
const connections = useConnections();
const proxies = useProxies();
const WAIT = 5_000;

/** The `mqtt` module, recording the clients it makes; with `withoutIdentifiers` their CONNACK denies identifiers. */
function recordingLib(withoutIdentifiers = false) {
  const clients: MqttClient[] = [];
  const lib = {
    connect(options: mqttLib.IClientOptions): MqttClient {
      const client = mqttLib.connect(options);
      if (withoutIdentifiers) {
        client.on('packetreceive', (packet) => {
          if (packet.cmd === 'connack') {
            packet.properties = { ...packet.properties, subscriptionIdentifiersAvailable: false };
          }
        });
      }
      clients.push(client);
      return client;
    },
  };
  return { lib, clients };
}

const observer = () => {
  const inbox = new Inbox<string>();
  return {
    inbox,
    onMessage: (address: string, bytes: Uint8Array) => inbox.push(`${address} ${new TextDecoder().decode(bytes)}`),
  };
};

async function consumer(connection: TransportConnection, address: string): Promise<Inbox<string>> {
  const inbox = new Inbox<string>();
  await connection.consume(address, { prefetch: 10 }, (delivery) => {
    inbox.push(new TextDecoder().decode(delivery.bytes));
    delivery.ack();
  });
  return inbox;
}

describe('observe and listRetained without subscription identifiers', () => {
  it('routes by topic: the consumer of the same connection gets each message once, the observer once', async () => {
    const { lib, clients } = recordingLib(true);
    const device = unique('dev');
    const connection = await connections.open(transportFor(broker().url, { lib }), { clientId: unique('both') });
    const sent = new Inbox<IPublishPacket>();
    clients[0]?.on('packetreceive', (packet) => {
      if (packet.cmd === 'publish') sent.push(packet);
    });
    const op = await connections.open(transportFor(broker().url), { clientId: unique('op') });
    const address = `inputs/${device}/sink/in`;
    const sink = await consumer(connection, address);
    const seen = observer();
    await connection.observe(`inputs/${device}/*/in`, seen.onMessage);
    await op.publish(address, utf8('m1'));
    await op.publish(address, utf8('m2'));
    await seen.inbox.until((items) => items.includes(`${address} m2`), WAIT, 'm2 observed');
    await sink.take(2, WAIT);
    expect(sink.items).toEqual(['m1', 'm2']);
    expect(seen.inbox.items).toEqual([`${address} m1`, `${address} m2`]);
    // Really without identifiers: the broker sent a QoS 1 copy and a QoS 0 copy of each, none with an identifier.
    const packets = await sent.take(4, WAIT);
    expect(packets.every((packet) => packet.properties?.subscriptionIdentifier === undefined)).toBe(true);
    expect(packets.map((packet) => packet.qos).sort()).toEqual([0, 0, 1, 1]);
  });

  it('lists retained values, keeps a watch of a listed key working, and observes no retained value', async () => {
    const { lib } = recordingLib(true);
    const device = unique('dev');
    const connection = await connections.open(transportFor(broker().url, { lib }), { clientId: unique('op') });
    await connection.setRetained(`presence/${device}/a`, utf8('A'));
    await connection.setRetained(`presence/${device}/b`, utf8('B'));
    const watched = new Inbox<string | undefined>();
    await connection.watchRetained(`presence/${device}/a`, (value) =>
      watched.push(value === undefined ? undefined : new TextDecoder().decode(value)),
    );
    const seen = observer();
    await connection.observe(`presence/${device}/*`, seen.onMessage);
    const listed = await connection.listRetained?.(`presence/${device}/*`);
    expect([...(listed ?? new Map()).keys()].sort()).toEqual([`presence/${device}/a`, `presence/${device}/b`]);
    await connection.setRetained(`presence/${device}/a`, utf8('A2'));
    await watched.until((items) => items.includes('A2'), WAIT, 'A2 watched');
    expect(watched.items).toEqual(['A', 'A2']);
    await connection.publish(`presence/${device}/marker`, utf8('message'));
    await seen.inbox.until((items) => items.length > 0, WAIT, 'the marker observed');
    expect(seen.inbox.items).toEqual([`presence/${device}/marker message`]);
  });
});

describe('pattern subscriptions in the persistent session', () => {
  it('a pattern subscription a crashed connection left behind feeds no input queue of the next connection', async () => {
    const device = unique('dev');
    const clientId = unique('watcher');
    const address = `inputs/${device}/sink/in`;
    const proxy = await proxies.start(broker().port);
    const crashed = await connections.open(transportFor(`mqtt://127.0.0.1:${proxy.port}`), { clientId });
    await crashed.observe(`inputs/${device}/*/*`, () => undefined);
    await crashed.observe(address, () => undefined);
    proxy.cut();
    await crashed.closed;
    const { lib, clients } = recordingLib();
    const next = await connections.open(transportFor(broker().url, { lib }), { clientId });
    const copies = new Inbox<IPublishPacket>();
    clients[0]?.on('packetreceive', (packet) => {
      if (packet.cmd === 'publish' && packet.topic.endsWith(address)) copies.push(packet);
    });
    const sink = await consumer(next, address);
    const seen = observer();
    await next.observe(`inputs/${device}/sink/*`, seen.onMessage);
    const op = await connections.open(transportFor(broker().url), { clientId: unique('op') });
    await op.publish(address, utf8('m1'));
    await op.publish(address, utf8('m2'));
    await seen.inbox.until((items) => items.includes(`${address} m2`), WAIT, 'm2 observed');
    await sink.take(2, WAIT);
    // The session still had the old pattern subscriptions. The exact pattern's plain filter is also the address's
    // filter before identities, which the consumer removes from a resumed session: three copies of each message
    // arrive (the queue's, the new observation's and the stale wildcard pattern's).
    await copies.take(6, WAIT);
    expect(sink.items).toEqual(['m1', 'm2']);
    expect(seen.inbox.items).toEqual([`${address} m1`, `${address} m2`]);
  });

  it('close() unsubscribes the pattern filters, so the session receives no more copies', async () => {
    const device = unique('dev');
    const clientId = unique('watcher');
    const address = `inputs/${device}/sink/in`;
    const first = await connections.open(transportFor(broker().url), { clientId });
    await first.observe(`inputs/${device}/*/*`, () => undefined);
    await first.observe(`upstream/${device}`, () => undefined);
    await first.close();
    const { lib, clients } = recordingLib();
    const next = await connections.open(transportFor(broker().url, { lib }), { clientId });
    const topics: string[] = [];
    clients[0]?.on('packetreceive', (packet) => {
      if (packet.cmd === 'publish') topics.push(packet.topic);
    });
    const marker = await consumer(next, `deadletter/${device}/marker`);
    const op = await connections.open(transportFor(broker().url), { clientId: unique('op') });
    await op.publish(address, utf8('m1'));
    await op.publish(`upstream/${device}`, utf8('u1'));
    await op.publish(`deadletter/${device}/marker`, utf8('marker'));
    await marker.take(1, WAIT);
    // In order on one connection: a copy of m1 or u1 would have arrived before the marker.
    expect(topics).toEqual([`edgekit/v1/deadletter/${device}/marker`]);
  });
});
