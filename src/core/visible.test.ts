// Text from a broker made safe to print: nothing in it reaches a terminal as a control or formatting character.
import { describe, expect, test } from 'vitest';
import { hasInvisible, visible, visibleJson } from './visible.js';

/** Characters a terminal acts on or that hide or reorder text. */
const UNSAFE = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]/u;

describe('visible', () => {
  test('control characters, ESC sequences, C1, bidi and zero-width characters become escapes', () => {
    expect(visible('a\u001b[31mred\u001b[0m')).toBe('a\\x1b[31mred\\x1b[0m');
    expect(visible('x\u0000y\u007fz\u009b1m')).toBe('x\\x00y\\x7fz\\x9b1m');
    expect(visible('line\nnext\r\ttab')).toBe('line\\nnext\\r\\ttab');
    expect(visible('abc\u202edcba\u2066\u200b\u2028')).toBe('abc\\u202edcba\\u2066\\u200b\\u2028');
    expect(visible('tag\u{e0041}')).toBe('tag\\u{e0041}');
    expect(visible('plain text, ümlaut, 温度, back\\slash')).toBe('plain text, ümlaut, 温度, back\\slash');
  });
  test('hasInvisible tells whether visible would change the text', () => {
    expect(hasInvisible('edgekit/0.1.0')).toBe(false);
    expect(hasInvisible('edgekit/\u202e')).toBe(true);
  });
});

describe('visibleJson', () => {
  test('is JSON of the same value with nothing a terminal acts on', () => {
    const value = { 'k\u001b': ['\u007f\u0085\u202e\u2029', 'ok', { n: 1 }], tag: '\u{e0041}' };
    for (const indent of [undefined, 2]) {
      const text = visibleJson(value, indent);
      expect(JSON.parse(text)).toEqual(value);
      expect(text.replaceAll('\n', '')).not.toMatch(UNSAFE);
    }
    expect(visibleJson({ a: [1] }, 2)).toBe(JSON.stringify({ a: [1] }, null, 2));
    expect(visibleJson(undefined)).toBe('null');
  });
});
