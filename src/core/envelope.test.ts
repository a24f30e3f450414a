import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { isEdgeKitError } from '../errors.js';
import { decodeEnvelope, type EnvelopeHeader, encodeEnvelope } from './envelope.js';

const header: EnvelopeHeader = {
  messageId: 'm-1',
  correlationId: 'c-1',
  contentType: 'application/json',
  contentEncoding: 'utf-8',
  createdAt: 1_700_000_000_000,
  sourceDeviceId: 'dev',
  sourceModuleId: 'sensor',
  sourceOutput: 'out',
  properties: { a: '1', 'with space': 'ü' },
};

describe('envelope', () => {
  test('round-trips header and body', () => {
    const body = new Uint8Array([0, 1, 2, 255]);
    const bytes = encodeEnvelope(header, body);
    expect([...bytes.subarray(0, 4)]).toEqual([0xee, 0x4b, 1, 0]);
    const decoded = decodeEnvelope(bytes);
    expect(decoded.header).toEqual(header);
    expect([...decoded.body]).toEqual([0, 1, 2, 255]);
  });

  test.each([
    ['empty', new Uint8Array()],
    ['short', new Uint8Array([0xee, 0x4b, 1])],
    ['bad magic', new Uint8Array([1, 2, 1, 0, 0, 0, 0, 2, 0x7b, 0x7d])],
    ['unknown version', new Uint8Array([0xee, 0x4b, 9, 0, 0, 0, 0, 2, 0x7b, 0x7d])],
    ['flags set', new Uint8Array([0xee, 0x4b, 1, 1, 0, 0, 0, 2, 0x7b, 0x7d])],
    ['header past the end', new Uint8Array([0xee, 0x4b, 1, 0, 0, 0, 1, 0, 0x7b, 0x7d])],
    ['header not JSON', new Uint8Array([0xee, 0x4b, 1, 0, 0, 0, 0, 2, 0x7b, 0x7b])],
    ['header not an object', encodeRaw('[1]')],
    ['missing messageId', encodeRaw('{"createdAt":1,"sourceDeviceId":"d","sourceModuleId":"m","properties":{}}')],
    ['non-string property', encodeRaw('{"messageId":"x","createdAt":1,"sourceDeviceId":"d","sourceModuleId":"m","properties":{"a":1}}')],
    ['invalid UTF-8 header', new Uint8Array([0xee, 0x4b, 1, 0, 0, 0, 0, 2, 0xc3, 0x28])],
  ])('rejects malformed bytes with decode-failed: %s', (_name, bytes) => {
    expect(() => decodeEnvelope(bytes)).toThrow(expect.objectContaining({ name: 'EdgeKitError', code: 'decode-failed' }));
  });

  test('fuzz: arbitrary bytes never throw anything but decode-failed', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
        try {
          decodeEnvelope(bytes);
        } catch (error) {
          if (!isEdgeKitError(error, 'decode-failed')) throw error;
        }
      }),
      { numRuns: 2000 },
    );
  });

  test('fuzz: mutations of a valid envelope decode or fail with decode-failed', () => {
    const valid = encodeEnvelope(header, new TextEncoder().encode('{"n":1}'));
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.nat(valid.length - 1), fc.integer({ min: 0, max: 255 })), { maxLength: 4 }), (edits) => {
        const bytes = valid.slice();
        for (const [i, v] of edits) bytes[i] = v;
        try {
          decodeEnvelope(bytes);
        } catch (error) {
          if (!isEdgeKitError(error, 'decode-failed')) throw error;
        }
      }),
      { numRuns: 2000 },
    );
  });
});

function encodeRaw(json: string): Uint8Array {
  const head = new TextEncoder().encode(json);
  const out = new Uint8Array(8 + head.length);
  out.set([0xee, 0x4b, 1, 0]);
  new DataView(out.buffer).setUint32(4, head.length);
  out.set(head, 8);
  return out;
}
