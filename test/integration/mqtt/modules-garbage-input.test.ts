/**
 * Garbage published straight onto a module's input topic by a raw mqtt.js client, on a real Mosquitto: the module
 * never hands it to the handler; it goes to the module's dead-letter queue with reason `decode-failed` (the raw bytes
 * kept as the body), `onError` reports it, `stats().decodeErrors` counts it, and the next good message is processed.
 * Both kinds of garbage are covered: bytes that are no envelope at all, and an envelope whose JSON body is broken.
 */
import * as rawMqtt from 'mqtt';
import { afterEach, describe, expect, it } from 'vitest';
import { systemClock } from '../../../src/clock.js';
import { encodeEnvelope } from '../../../src/core/envelope.js';
import { defineModule, json } from '../../../src/index.js';
import { addresses } from '../../../src/names.js';
import { injectMessage } from '../../../src/service/operations.js';
import { DEFAULT_TOPIC_PREFIX } from '../../../src/transports/mqtt/index.js';
import { collectEnvelopes, jsonBytes, useModules } from './fixtures/module-clients.js';
import { transportFor, unique, useConnections, useMosquitto } from './support/fixtures.js';
import { Inbox } from './support/wait.js';

const broker = useMosquitto();
const connections = useConnections();
const modules = useModules();
const raw = new Set<rawMqtt.MqttClient>();
afterEach(async () => {
  await Promise.all([...raw].map((client) => client.endAsync()));
  raw.clear();
});

const Filter = defineModule({ inputs: { in: json<{ temperature: number }>() } });

describe('garbage on an input topic', () => {
  it('is dead-lettered as decode-failed, reported, counted, and the module keeps processing', async () => {
    const deviceId = unique('dev');
    const moduleId = 'filter';
    const url = broker().url;
    const operator = await connections.open(transportFor(url), { clientId: `${deviceId}/operator` });
    const deadLetters = await collectEnvelopes(operator, addresses.deadLetter(deviceId, moduleId));

    const { client, errors } = await modules.connect(Filter, { deviceId, moduleId, transport: transportFor(url) });
    const handled = new Inbox<number>();
    await client.onInput('in', (message) => handled.push(message.body.temperature));

    const publisher = await rawMqtt.connectAsync(url, { protocolVersion: 5, clientId: unique('raw') });
    raw.add(publisher);
    const topic = `${DEFAULT_TOPIC_PREFIX}${addresses.input(deviceId, moduleId, 'in')}`;

    // 1. Bytes that are not an envelope at all.
    const garbage = Buffer.from([0xde, 0xad, 0xbe, 0xef, 0x00, 0xff, 0x13, 0x37, 0x42]);
    await publisher.publishAsync(topic, garbage, { qos: 1 });
    const first = await deadLetters.take(1, 10_000, 'the first dead letter');
    expect(first[0]!.header.deadLetter).toMatchObject({ reason: 'decode-failed', input: 'in', attempts: 0 });
    expect(Buffer.from(first[0]!.body)).toEqual(garbage);
    const reported = await errors.find((e) => e.code === 'decode-failed', 5_000, 'onError to report it');
    expect(reported.message).toMatch(/dead-lettered \(decode-failed\)/);
    // Counted at once; `deadLettered` only when the broker has the dead letter (checked below, once the next
    // message — which waits for this one's acknowledgement — has been handled).
    expect(client.stats()).toMatchObject({ decodeErrors: 1, processed: 0 });

    // 2. A well-formed envelope whose JSON body is broken: its messageId is kept in the dead letter.
    const envelope = encodeEnvelope(
      {
        messageId: 'broken-body-1',
        contentType: 'application/json',
        createdAt: Date.now(),
        sourceDeviceId: deviceId,
        sourceModuleId: 'raw',
        properties: {},
      },
      new TextEncoder().encode('{"temperature": 4'),
    );
    await publisher.publishAsync(topic, Buffer.from(envelope), { qos: 1 });
    const second = (await deadLetters.take(2, 10_000, 'the second dead letter'))[1]!;
    expect(second.header.messageId).toBe('broken-body-1');
    expect(second.header.deadLetter?.reason).toBe('decode-failed');
    expect(client.stats()).toMatchObject({ decodeErrors: 2, processed: 0 });

    // 3. The module is still running: the next good message reaches the handler.
    await injectMessage(operator, systemClock, { deviceId, moduleId, input: 'in' }, jsonBytes({ temperature: 21 }), {
      contentType: 'application/json',
    });
    expect(await handled.take(1, 10_000, 'the good message')).toEqual([21]);
    expect(client.state.state).toBe('connected');
    expect(client.stats()).toMatchObject({ decodeErrors: 2, deadLettered: 2, processed: 1, handlerErrors: 0 });
    expect(errors.items.map((e) => e.code)).toEqual(['decode-failed', 'decode-failed']);
  });
});
