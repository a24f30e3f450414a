import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { checkTwin, decodeTwin, diffPatch, encodeTwin, type JsonObject, MAX_TWIN_VERSION, mergePatch } from './twin.js';

describe('merge patches', () => {
  test('merges nested objects, replaces values, null deletes, arrays replace whole', () => {
    const doc = { a: 1, b: { c: 2, d: 3 }, e: [1, 2] };
    expect(mergePatch(doc, { a: null, b: { c: null, x: 1 }, e: [3] })).toEqual({ b: { d: 3, x: 1 }, e: [3] });
    expect(doc).toEqual({ a: 1, b: { c: 2, d: 3 }, e: [1, 2] });
  });

  test('diff then merge reproduces the target (property)', () => {
    const json: fc.Arbitrary<JsonObject> = fc.letrec((tie) => ({
      obj: fc.dictionary(
        fc.constantFrom('a', 'b', 'c', 'd'),
        fc.oneof(fc.integer(), fc.string(), fc.boolean(), tie('obj')),
        { maxKeys: 4 },
      ),
    })).obj as fc.Arbitrary<JsonObject>;
    fc.assert(
      fc.property(json, json, (from, to) => {
        expect(mergePatch(from, diffPatch(from, to))).toEqual(to);
      }),
      { numRuns: 500 },
    );
  });

  test('diff of equal documents is empty', () => {
    expect(diffPatch({ a: { b: [1] } }, { a: { b: [1] } })).toEqual({});
  });
});

describe('twin rules', () => {
  test('accepts a normal patch', () => {
    expect(() => checkTwin({ a: 1, b: { c: 'x', d: null } }, 'patch', { allowNull: true })).not.toThrow();
  });
  test.each([
    ['a name with a dot', { 'a.b': 1 }],
    ['a name with $', { $a: 1 }],
    ['a name with a space', { 'a b': 1 }],
    ['an empty name', { '': 1 }],
    ['a non-finite number', { a: Number.NaN }],
    ['a function', { a: () => 1 }],
  ])('rejects %s', (_n, value) => {
    expect(() => checkTwin(value, 'patch', { allowNull: true })).toThrow(
      expect.objectContaining({ code: 'twin-limit' }),
    );
  });
  test('rejects nesting deeper than 10', () => {
    let deep: JsonObject = { x: 1 };
    for (let i = 0; i < 10; i++) deep = { d: deep };
    expect(() => checkTwin(deep, 'patch', { allowNull: true })).toThrow(
      expect.objectContaining({ code: 'twin-limit' }),
    );
  });
  test('rejects a non-object with TypeError', () => {
    expect(() => checkTwin([1], 'patch', { allowNull: true })).toThrow(TypeError);
    expect(() => checkTwin('x', 'patch', { allowNull: true })).toThrow(TypeError);
  });
  test('encodes with a 32 KB limit and decodes strictly', () => {
    expect(() => encodeTwin({ version: 1, properties: { a: 'x'.repeat(33_000) } }, 'doc')).toThrow(
      expect.objectContaining({ code: 'twin-limit' }),
    );
    const bytes = encodeTwin({ version: 3, properties: { a: 1 } }, 'doc');
    expect(decodeTwin(bytes, 'doc')).toEqual({ version: 3, properties: { a: 1 } });
    expect(decodeTwin(undefined, 'doc')).toEqual({ version: 0, properties: {} });
    expect(() => decodeTwin(new TextEncoder().encode('{"version":"1"}'), 'doc')).toThrow(
      expect.objectContaining({ code: 'decode-failed' }),
    );
    expect(() => decodeTwin(new Uint8Array([0xff]), 'doc')).toThrow(expect.objectContaining({ code: 'decode-failed' }));
  });

  test('a version is an integer from 0 to MAX_TWIN_VERSION, so version + 1 is always exact and larger', () => {
    const doc = (version: unknown, properties: unknown = { a: 1 }) =>
      new TextEncoder().encode(JSON.stringify({ version, properties }));
    expect(MAX_TWIN_VERSION + 1).toBeGreaterThan(MAX_TWIN_VERSION);
    expect(Number.isSafeInteger(MAX_TWIN_VERSION + 1)).toBe(true);
    expect(decodeTwin(doc(MAX_TWIN_VERSION), 'doc').version).toBe(MAX_TWIN_VERSION);
    // 2^53 + 1 === 2^53 in a double: a module that took it would ignore every later version.
    for (const version of [2 ** 53, MAX_TWIN_VERSION + 1, -1, 1.5, 1e300]) {
      expect(() => decodeTwin(doc(version), 'doc'), String(version)).toThrow(
        expect.objectContaining({ code: 'decode-failed', message: expect.stringMatching(/version/) }),
      );
    }
    expect(() => encodeTwin({ version: MAX_TWIN_VERSION + 1, properties: {} }, 'doc')).toThrow(
      expect.objectContaining({ code: 'twin-limit' }),
    );
  });

  test('what is read back obeys the twin rules a writer is held to', () => {
    const raw = (text: string) => new TextEncoder().encode(text);
    for (const text of [
      '{"version":1,"properties":{"a.b":1}}',
      '{"version":1,"properties":{"bad\\u001bname":1}}',
      '{"version":1,"properties":{"a":null}}',
      `{"version":1,"properties":${'{"a":'.repeat(11)}1${'}'.repeat(11)}}`,
      `{"version":1,"properties":{"a":"${'x'.repeat(33_000)}"}}`,
    ]) {
      expect(() => decodeTwin(raw(text), 'doc'), text.slice(0, 60)).toThrow(
        expect.objectContaining({ code: 'decode-failed' }),
      );
    }
  });
});
