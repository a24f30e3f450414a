import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { isEdgeKitError } from '../errors.js';
import { decodeEnvelope, type EnvelopeHeader, encodeEnvelope, envelopeEncoder, NO_PROPERTIES } from './envelope.js';

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
    expect(bytes[8]).toBe(1); // first field: messageId
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
    ['truncated field', fields([1, 0, 0])],
    ['field past the header', fields([1, 0, 0, 0, 9, 0x61])],
    ['missing messageId', fields(...required.filter((f) => f[0] !== 1))],
    ['missing createdAt', fields(...required.filter((f) => f[0] !== 5))],
    ['missing source', fields(...required.filter((f) => f[0] !== 6))],
    ['createdAt of the wrong size', fields(...required.filter((f) => f[0] !== 5), [5, 0, 0, 0, 1, 0])],
    ['invalid UTF-8 text', fields(...required, [2, 0, 0, 0, 2, 0xc3, 0x28])],
    ['property too short', fields(...required, [9, 0, 0, 0, 1, 0])],
    ['property name past its field', fields(...required, [9, 0, 0, 0, 3, 0, 9, 0x61])],
    ['dead letter not JSON', fields(...required, [10, 0, 0, 0, 1, 0x7b])],
    ['tag 0', fields(...required, [0, 0, 0, 0, 0])],
  ])('rejects malformed bytes with decode-failed: %s', (_name, bytes) => {
    expect(() => decodeEnvelope(bytes)).toThrow(
      expect.objectContaining({ name: 'EdgeKitError', code: 'decode-failed' }),
    );
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
      fc.property(
        fc.array(fc.tuple(fc.nat(valid.length - 1), fc.integer({ min: 0, max: 255 })), { maxLength: 4 }),
        (edits) => {
          const bytes = valid.slice();
          for (const [i, v] of edits) bytes[i] = v;
          try {
            decodeEnvelope(bytes);
          } catch (error) {
            if (!isEdgeKitError(error, 'decode-failed')) throw error;
          }
        },
      ),
      { numRuns: 2000 },
    );
  });
});

/** The fields every envelope needs: messageId "x", createdAt 0, source device "d", module "m". */
const required: number[][] = [
  [1, 0, 0, 0, 1, 0x78],
  [5, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0],
  [6, 0, 0, 0, 1, 0x64],
  [7, 0, 0, 0, 1, 0x6d],
];

function fields(...parts: number[][]): Uint8Array {
  const head = parts.flat();
  const out = new Uint8Array(8 + head.length);
  out.set([0xee, 0x4b, 1, 0]);
  new DataView(out.buffer).setUint32(4, head.length);
  out.set(head, 8);
  return out;
}

test('the minimal valid header decodes, and fields of a later version are skipped', () => {
  expect(decodeEnvelope(fields(...required)).header).toMatchObject({
    messageId: 'x',
    createdAt: 0,
    sourceDeviceId: 'd',
    sourceModuleId: 'm',
    properties: {},
  });
  expect(decodeEnvelope(fields(...required, [200, 0, 0, 0, 2, 1, 2])).header.messageId).toBe('x');
});

test('the per-output encoder writes the same header as encodeEnvelope', () => {
  const encode = envelopeEncoder({
    contentType: 'application/json',
    contentEncoding: 'utf-8',
    sourceDeviceId: 'dev',
    sourceModuleId: 'sensor',
    sourceOutput: 'out',
  });
  const body = new Uint8Array([7]);
  const fast = decodeEnvelope(encode('m-1', 'c-1', 5, { a: '1', 'with space': 'ü' }, body));
  expect(fast.header).toEqual({ ...header, createdAt: 5 });
  expect([...fast.body]).toEqual([7]);
  expect(decodeEnvelope(encode('m-2', undefined, 6, NO_PROPERTIES, body)).header).toMatchObject({
    messageId: 'm-2',
    properties: {},
  });
});

const deadLetterHeader = {
  messageId: 'm-1',
  createdAt: 1,
  sourceDeviceId: 'gw',
  sourceModuleId: 'sensor',
  properties: {},
};

describe('decodeEnvelope (public)', () => {
  test('checks the dead-letter field member by member', () => {
    const good = { reason: 'handler-failed', error: 'boom', input: 'in', attempts: 2, at: 5 } as const;
    expect(
      decodeEnvelope(encodeEnvelope({ ...deadLetterHeader, deadLetter: good }, new Uint8Array())).header.deadLetter,
    ).toEqual(good);
    for (const [bad, why] of [
      [{ ...good, reason: 'sideways' }, /dead-letter reason "sideways"/],
      [{ ...good, attempts: -1 }, /attempts/],
      [{ ...good, at: 'now' }, /time/],
      [{ ...good, input: 3 }, /input/],
    ] as const) {
      const bytes = encodeEnvelope({ ...deadLetterHeader, deadLetter: bad as never }, new Uint8Array());
      expect(() => decodeEnvelope(bytes)).toThrow(why);
      try {
        decodeEnvelope(bytes);
      } catch (error) {
        expect(isEdgeKitError(error, 'decode-failed')).toBe(true);
      }
    }
  });
});
