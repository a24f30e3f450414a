/**
 * The identity levels of the topic layout on a real Mosquitto (no ACL here: what the transport does by itself; the
 * broker's side is authorization.test.ts): a connection with an identity publishes to `<topic>/<identity>`,
 * receivers learn the publisher from those levels, anything else below an address is dropped and counted, a server
 * replies only to a reply topic of the layout, and a session subscribed by a version before identities gets no
 * duplicates.
 */
import * as realMqtt from 'mqtt';
import { describe, expect, it } from 'vitest';
import type { Delivery, TransportConnection } from '../../../src/transport.js';
import type { MqttConnection } from '../../../src/transports/mqtt/connection.js';
import { text, transportFor, unique, useConnections, useMosquitto, utf8 } from './support/fixtures.js';
import { Inbox } from './support/wait.js';

const broker = useMosquitto();
const connections = useConnections();
const WAIT = 5_000;

const diagnostics = (connection: TransportConnection) => (connection as MqttConnection).diagnostics();

async function raw(clientId = unique('raw'), clean = true): Promise<realMqtt.MqttClient> {
  return realMqtt.connectAsync(broker().url, {
    protocolVersion: 5,
    clientId,
    clean,
    reconnectPeriod: 0,
    ...(clean ? {} : { properties: { sessionExpiryInterval: 300 } }),
  });
}

function deliveries(): { inbox: Inbox<string>; onDelivery: (delivery: Delivery) => void } {
  const inbox = new Inbox<string>();
  return {
    inbox,
    onDelivery: (delivery) => {
      inbox.push(`${text(delivery.bytes)} from ${delivery.publisher ?? '-'}`);
      delivery.ack();
    },
  };
}

describe('identities in the topic layout', () => {
  it('publishes and requests under <topic>/<identity>; consumers, servers and observers learn the publisher', async () => {
    const device = unique('dev');
    const transport = transportFor(broker().url);
    const sink = await connections.open(transport, { clientId: `${device}/sink` });
    const watcher = await connections.open(transport, { clientId: unique('watcher') });
    const sensor = await connections.open(transport, { clientId: `${device}/sensor`, identity: `${device}/sensor` });
    const operator = await connections.open(transport, { clientId: unique('op'), identity: '$operator/alice' });
    const anonymous = await connections.open(transport, { clientId: unique('anon') });
    const topics = new Inbox<string>();
    const spy = await raw();
    spy.on('message', (topic) => topics.push(topic));
    await spy.subscribeAsync(`edgekit/v1/inputs/${device}/#`, { qos: 1 });

    const input = `inputs/${device}/sink/in`;
    const got = deliveries();
    await sink.consume(input, { prefetch: 10 }, got.onDelivery);
    const observed = new Inbox<string>();
    await watcher.observe(`inputs/${device}/*/*`, (address, bytes, publisher) =>
      observed.push(`${address} ${text(bytes)} from ${publisher ?? '-'}`),
    );
    await sensor.publish(input, utf8('m1'));
    await operator.publish(input, utf8('m2'), { ttlInMs: 10_000 });
    await anonymous.publish(input, utf8('m3'));

    await got.inbox.take(3, WAIT);
    expect(got.inbox.items).toEqual([`m1 from ${device}/sensor`, 'm2 from $operator/alice', 'm3 from -']);
    await observed.take(3, WAIT);
    expect(observed.items).toEqual([
      `${input} m1 from ${device}/sensor`,
      `${input} m2 from $operator/alice`,
      `${input} m3 from -`,
    ]);
    await topics.take(3, WAIT);
    expect(topics.items).toEqual([
      `edgekit/v1/${input}/${device}/sensor`,
      `edgekit/v1/${input}/$operator/alice`,
      `edgekit/v1/${input}`,
    ]);

    const callers: Array<string | undefined> = [];
    await sink.serve(`methods/${device}/sink`, async (request, context) => {
      callers.push(context.publisher);
      return request;
    });
    expect(text(await sensor.request(`methods/${device}/sink`, utf8('a'), { timeoutInMs: WAIT }))).toBe('a');
    expect(text(await anonymous.request(`methods/${device}/sink`, utf8('b'), { timeoutInMs: WAIT }))).toBe('b');
    expect(callers).toEqual([`${device}/sensor`, undefined]);
    await spy.endAsync();
  });

  it('refuses an identity that is not <device>/<module> or $operator/<name>', async () => {
    const transport = transportFor(broker().url);
    for (const identity of ['sensor', 'a/b/c', '$admin/x', 'a/+', '']) {
      await expect(transport.connect({ clientId: unique('bad'), identity })).rejects.toThrow(RangeError);
    }
    await expect(transport.connect({ clientId: unique('bad'), identity: 42 as never })).rejects.toThrow(TypeError);
  });

  it('drops and counts a message below an address that is not <address>/<identity>; the next one arrives', async () => {
    const device = unique('dev');
    const sink = await connections.open(transportFor(broker().url), { clientId: `${device}/sink` });
    const got = deliveries();
    const input = `inputs/${device}/sink/in`;
    await sink.consume(input, { prefetch: 10 }, got.onDelivery);
    const attacker = await raw();
    const topic = `edgekit/v1/${input}`;
    for (const below of ['x', 'a/b/c', 'gw/$bad', '$operator/a:b/c', 'a/b c']) {
      await attacker.publishAsync(`${topic}/${below}`, 'invalid', { qos: 1 });
    }
    await attacker.publishAsync(`${topic}/${device}/sensor`, 'valid', { qos: 1 });
    await got.inbox.take(1, WAIT);
    expect(got.inbox.items).toEqual([`valid from ${device}/sensor`]);
    expect(diagnostics(sink).invalidTopics).toBe(5);
    await attacker.endAsync();
  });

  it('does not run a request whose reply would go anywhere but a reply topic: another module cannot be fed', async () => {
    const device = unique('dev');
    const transport = transportFor(broker().url);
    const server = await connections.open(transport, { clientId: `${device}/server`, identity: `${device}/server` });
    const victim = await connections.open(transport, { clientId: `${device}/victim` });
    const victimInput = `inputs/${device}/victim/in`;
    const got = deliveries();
    await victim.consume(victimInput, { prefetch: 10 }, got.onDelivery);
    const runs: string[] = [];
    await server.serve(`methods/${device}/server`, async (request) => {
      runs.push(text(request) ?? '');
      return utf8('{"status":200,"payload":"injected"}');
    });
    const caller = await raw();
    const requestTopic = `edgekit/v1/methods/${device}/server/${device}/caller`;
    for (const responseTopic of [
      `edgekit/v1/${victimInput}`,
      `edgekit/v1/${victimInput}/${device}/server`,
      `edgekit/v1/twin/${device}/victim/desired`,
      'edgekit/v1/@client/reply',
      `edgekit/v1/@client/${device}/victim/sync`,
      'elsewhere/@client/x/reply',
    ]) {
      await caller.publishAsync(requestTopic, 'hostile', {
        qos: 1,
        properties: { responseTopic, correlationData: Buffer.from('c') },
      });
    }
    // A request with a reply topic of the layout is answered: it comes after the others on the same connection.
    const replies = new Inbox<string>();
    const replyTopic = `edgekit/v1/@client/${unique('caller')}/reply`;
    caller.on('message', (topic, payload) => {
      if (topic === replyTopic) replies.push(payload.toString());
    });
    await caller.subscribeAsync(replyTopic, { qos: 1 });
    await caller.publishAsync(requestTopic, 'honest', {
      qos: 1,
      properties: { responseTopic: replyTopic, correlationData: Buffer.from('d') },
    });
    await replies.take(1, WAIT);
    expect(runs).toEqual(['honest']);
    expect(diagnostics(server).refusedReplyTopics).toBe(6);
    // The victim's input got nothing: a marker sent after everything is the first thing it sees.
    await server.publish(victimInput, utf8('marker'));
    await got.inbox.take(1, WAIT);
    expect(got.inbox.items).toEqual([`marker from ${device}/server`]);
    await caller.endAsync();
  });

  it('a session subscribed by a version before identities gets each message once, not once per filter', async () => {
    const device = unique('dev');
    const clientId = `${device}/sink`;
    const input = `inputs/${device}/sink/in`;
    // What the version before identities left in the session: the address's plain filter.
    const old = await raw(clientId, false);
    await old.subscribeAsync(`edgekit/v1/${input}`, { qos: 1, properties: { subscriptionIdentifier: 1 } });
    await old.endAsync();
    const sink = await connections.open(transportFor(broker().url), { clientId });
    const got = deliveries();
    await sink.consume(input, { prefetch: 10 }, got.onDelivery);
    const sender = await connections.open(transportFor(broker().url), { clientId: unique('old-sender') });
    await sender.publish(input, utf8('plain-1'));
    await sender.publish(input, utf8('plain-2'));
    const marker = await connections.open(transportFor(broker().url), {
      clientId: unique('marker'),
      identity: `${device}/marker`,
    });
    await marker.publish(input, utf8('marker'));
    await got.inbox.until((items) => items.some((item) => item.startsWith('marker')), WAIT, 'the marker');
    expect(got.inbox.items).toEqual(['plain-1 from -', 'plain-2 from -', `marker from ${device}/marker`]);
  });
});
