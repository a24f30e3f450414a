import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { encodePuback, encodePublish, encodeTopic } from './packets.js';

// The reference decoder: mqtt-packet, the parser mqtt.js itself uses (resolved from mqtt's own dependencies).
const requireFromMqtt = createRequire(createRequire(import.meta.url).resolve('mqtt'));
const mqttPacket = requireFromMqtt('mqtt-packet') as {
  parser(options: { protocolVersion: number }): {
    on(event: 'packet', listener: (packet: Record<string, unknown>) => void): void;
    on(event: 'error', listener: (error: Error) => void): void;
    parse(buffer: Buffer): number;
  };
};

function parse(buffer: Buffer): Record<string, unknown> {
  const parser = mqttPacket.parser({ protocolVersion: 5 });
  const packets: Record<string, unknown>[] = [];
  parser.on('packet', (packet) => packets.push(packet));
  parser.on('error', (error) => {
    throw error;
  });
  parser.parse(buffer);
  expect(packets).toHaveLength(1);
  return packets[0]!;
}

describe('encodePublish', () => {
  it('writes a QoS 1 PUBLISH that mqtt-packet reads back field by field', () => {
    const payload = new Uint8Array([0xee, 0x4b, 1, 0, 0, 0, 0, 0, 0x7b, 0x7d]);
    const packet = parse(encodePublish(encodeTopic('edgekit/v1/inputs/dev/mod/in'), 513, payload, undefined));
    expect(packet).toMatchObject({
      cmd: 'publish',
      topic: 'edgekit/v1/inputs/dev/mod/in',
      messageId: 513,
      qos: 1,
      dup: false,
      retain: false,
    });
    expect(new Uint8Array(packet.payload as Buffer)).toEqual(payload);
    expect(packet.properties ?? {}).toEqual({});
  });

  it('writes the identity marker as a Payload Format Indicator of 0, with the other properties', () => {
    const packet = parse(
      encodePublish(encodeTopic('edgekit/v1/inputs/dev/mod/in/dev/sensor'), 9, new Uint8Array(2), {
        identified: true,
        messageExpiryInterval: 60,
      }),
    );
    expect(packet.properties).toEqual({ payloadFormatIndicator: false, messageExpiryInterval: 60 });
  });

  it('writes the message expiry and the user property', () => {
    const packet = parse(
      encodePublish(encodeTopic('a/ü/c'), 65535, new Uint8Array(3), {
        messageExpiryInterval: 7200,
        userProperty: ['edgekit-expires-at', '1764130000000'],
      }),
    );
    expect(packet).toMatchObject({ topic: 'a/ü/c', messageId: 65535 });
    expect(packet.properties).toEqual({
      messageExpiryInterval: 7200,
      userProperties: { 'edgekit-expires-at': '1764130000000' },
    });
  });

  it('writes the properties of a request and of a failed reply', () => {
    const correlationData = Buffer.from('0123456789abcdef');
    const request = parse(
      encodePublish(encodeTopic('edgekit/v1/methods/dev/mod'), 7, new Uint8Array([1]), {
        messageExpiryInterval: 5,
        responseTopic: 'edgekit/v1/@client/dev/caller/reply',
        correlationData,
      }),
    );
    expect(request.properties).toEqual({
      messageExpiryInterval: 5,
      responseTopic: 'edgekit/v1/@client/dev/caller/reply',
      correlationData,
    });
    const reply = parse(
      encodePublish(encodeTopic('edgekit/v1/@client/dev/caller/reply'), 8, new Uint8Array(0), {
        correlationData,
        userProperty: ['edgekit-error', 'handler failed: ünïcode'],
      }),
    );
    expect(reply.properties).toEqual({
      correlationData,
      userProperties: { 'edgekit-error': 'handler failed: ünïcode' },
    });
  });

  it('gets the remaining length right at every variable-byte-integer boundary', () => {
    const topic = encodeTopic('t');
    // Remaining length = 3 (topic) + 2 (id) + 1 (properties length) + 5 (expiry) + payload, so these payload sizes put
    // it on both sides of 128, 16 384 and 2 097 152, where the encoding grows by a byte.
    for (const size of [0, 116, 117, 16_372, 16_373, 262_144, 2_097_140, 2_097_141]) {
      const payload = new Uint8Array(size).fill(7);
      const packet = parse(encodePublish(topic, 1, payload, { messageExpiryInterval: 1 }));
      expect((packet.payload as Buffer).length).toBe(size);
      expect(packet.properties).toEqual({ messageExpiryInterval: 1 });
    }
  });

  it('refuses a topic longer than MQTT can carry', () => {
    expect(() => encodeTopic('x'.repeat(65_536))).toThrow(RangeError);
  });
});

describe('encodePuback', () => {
  it('writes the short form of a successful PUBACK', () => {
    const bytes = encodePuback(40_000);
    expect([...bytes]).toEqual([0x40, 0x02, 40_000 >> 8, 40_000 & 0xff]);
    expect(parse(bytes)).toMatchObject({ cmd: 'puback', messageId: 40_000 });
  });
});
