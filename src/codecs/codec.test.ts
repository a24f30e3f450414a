import { describe, expect, test } from 'vitest';
import { z } from 'zod';
import { bytes, json, text } from './codec.js';
import { typed, validate } from './schema.js';

describe('json codec', () => {
  test('encodes and decodes JSON with content type and encoding', () => {
    const c = json<{ a: number }>();
    expect(c.contentType).toBe('application/json');
    expect(c.contentEncoding).toBe('utf-8');
    expect(c.decode(c.encode({ a: 1 }))).toEqual({ a: 1 });
  });
  test('validates incoming bodies with any Standard Schema (zod here)', async () => {
    const c = json(z.object({ temperature: z.number() }));
    expect(await c.decode(new TextEncoder().encode('{"temperature":3}'))).toEqual({ temperature: 3 });
    await expect(async () => c.decode(new TextEncoder().encode('{"temperature":"hot"}'))).rejects.toMatchObject({
      code: 'validation-failed',
      message: expect.stringContaining('temperature'),
    });
  });
  test('malformed bytes fail with decode-failed, unencodable values with encode-failed', () => {
    const c = json();
    expect(() => c.decode(new TextEncoder().encode('{'))).toThrow(expect.objectContaining({ code: 'decode-failed' }));
    expect(() => c.decode(new Uint8Array([0xff]))).toThrow(expect.objectContaining({ code: 'decode-failed' }));
    expect(() => c.encode(1n)).toThrow(expect.objectContaining({ code: 'encode-failed' }));
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    expect(() => c.encode(cyclic)).toThrow(expect.objectContaining({ code: 'encode-failed' }));
    expect(() => c.encode(undefined)).toThrow(expect.objectContaining({ code: 'encode-failed' }));
  });
});

describe('bytes and text codecs', () => {
  test('bytes pass through and only accept Uint8Array', () => {
    const c = bytes('image/jpeg');
    expect(c.contentType).toBe('image/jpeg');
    expect([...(c.decode(new Uint8Array([1, 2])) as Uint8Array)]).toEqual([1, 2]);
    expect(() => c.encode('x' as never)).toThrow(expect.objectContaining({ code: 'encode-failed' }));
    expect(() => bytes('')).toThrow(TypeError);
  });
  test('text is strict UTF-8', () => {
    const c = text();
    expect(c.decode(c.encode('grüße'))).toBe('grüße');
    expect(() => c.decode(new Uint8Array([0xc3, 0x28]))).toThrow(expect.objectContaining({ code: 'decode-failed' }));
  });
});

test('typed() validates nothing and returns the value synchronously', () => {
  expect(validate(typed<number>(), 'anything', 'x')).toBe('anything');
});
