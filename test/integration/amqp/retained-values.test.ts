/**
 * Retained values: set, get, overwrite, delete; "none" for a key never set; several readers at once never see a
 * value vanish; a watch gets the current value first, then every change, once each.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { TransportConnection } from '../../../src/transport.js';
import { bytes, closeAll, Inbox, open, testTransport, text, uniquePrefix, until } from './support.js';

const opened: TransportConnection[] = [];
afterEach(() => closeAll(opened));

describe('retained values', () => {
  it('reads none for a key never set, then the last value set, then none after delete', async () => {
    const connection = await open(testTransport(), {}, opened);
    const key = 'twin/d1/m1/reported';
    expect(await connection.getRetained(key)).toBeUndefined();
    await connection.setRetained(key, bytes('v1'));
    expect(text(await connection.getRetained(key))).toBe('v1');
    await connection.setRetained(key, bytes('v2'));
    await connection.setRetained(key, bytes('v3'));
    expect(text(await connection.getRetained(key))).toBe('v3');
    expect(text(await connection.getRetained(key))).toBe('v3'); // reading does not consume
    await connection.setRetained(key, null);
    expect(await connection.getRetained(key)).toBeUndefined();
    await connection.setRetained(key, null); // deleting twice is fine
    expect(await connection.getRetained(key)).toBeUndefined();
    await connection.setRetained(key, new Uint8Array(0));
    expect(await connection.getRetained(key)).toEqual(new Uint8Array(0)); // empty is a value, not a delete
  });

  it('keeps a value after its writer left, for other connections', async () => {
    const prefix = uniquePrefix();
    const writer = await open(testTransport({ prefix }), {}, opened);
    await writer.setRetained('routes/d1', bytes('FROM /* INTO $upstream'));
    await writer.close();
    const reader = await open(testTransport({ prefix }), {}, opened);
    expect(text(await reader.getRetained('routes/d1'))).toBe('FROM /* INTO $upstream');
    expect(await reader.getRetained('routes/d2')).toBeUndefined();
  });

  it('never reports none while several connections read and one writes', async () => {
    const prefix = uniquePrefix();
    const transport = testTransport({ prefix });
    const key = 'presence/d1/busy';
    const writer = await open(transport, {}, opened);
    await writer.setRetained(key, bytes('w0'));
    const readers = await Promise.all([
      open(transport, {}, opened),
      open(transport, {}, opened),
      open(transport, {}, opened),
    ]);
    const seen: Array<string | undefined> = [];
    const reads = readers.map(async (reader) => {
      for (let i = 0; i < 40; i++) seen.push(text(await reader.getRetained(key)));
    });
    const writes = (async () => {
      for (let i = 1; i <= 40; i++) await writer.setRetained(key, bytes(`w${i}`));
    })();
    await Promise.all([...reads, writes]);
    expect(seen).toHaveLength(120);
    expect(seen.filter((v) => v === undefined)).toEqual([]);
    expect(text(await readers[0]?.getRetained(key))).toBe('w40');
  });

  it('watches: the current value first, then each change once, including delete', async () => {
    const prefix = uniquePrefix();
    const transport = testTransport({ prefix });
    const writer = await open(transport, {}, opened);
    const watcher = await open(transport, {}, opened);
    const key = 'twin/d1/m1/desired';

    const none = new Inbox<string | undefined>();
    const first = await watcher.watchRetained(key, (v) => none.push(text(v)));
    expect(none.items).toEqual([undefined]); // delivered before watchRetained resolved

    await writer.setRetained(key, bytes('a'));
    expect(await none.next()).toBeUndefined();
    expect(await none.next()).toBe('a');

    const current = new Inbox<string | undefined>();
    const second = await watcher.watchRetained(key, (v) => current.push(text(v)));
    expect(current.items).toEqual(['a']);

    await writer.setRetained(key, bytes('b'));
    await writer.setRetained(key, null);
    await writer.setRetained(key, bytes('c'));
    expect([await current.next(), await current.next(), await current.next(), await current.next()]).toEqual([
      'a',
      'b',
      undefined,
      'c',
    ]);
    await first.close();
    await first.close(); // idempotent
    await writer.setRetained(key, bytes('d'));
    expect(await current.next()).toBe('d');
    // The closed watch got nothing after 'c' (it saw the same stream up to there).
    expect(none.items).toEqual([undefined, 'a', 'b', undefined, 'c']);
    await second.close();
  });

  it('ends a watch that raced a burst of writes on the last value, without repeating one in a row', async () => {
    const prefix = uniquePrefix();
    const transport = testTransport({ prefix });
    const writer = await open(transport, {}, opened);
    const watcher = await open(transport, {}, opened);
    const key = 'presence/d1/racer';
    await writer.setRetained(key, bytes('0'));
    const values: Array<string | undefined> = [];
    const burst = (async () => {
      for (let i = 1; i <= 100; i++) await writer.setRetained(key, bytes(String(i)));
    })();
    const subscription = await watcher.watchRetained(key, (v) => values.push(text(v)));
    await burst;
    await until(() => values.at(-1) === '100', 5_000, 'the last value');
    for (let i = 1; i < values.length; i++) expect(values[i]).not.toBe(values[i - 1]);
    // Every value after the first one seen increases: no stale value reappears.
    const numbers = values.map(Number);
    expect(numbers).toEqual([...numbers].sort((a, b) => a - b));
    await subscription.close();
  });

  it('rejects bad keys and values at the call', async () => {
    const connection = await open(testTransport(), {}, opened);
    expect(() => connection.setRetained('twin/d#/m', bytes('x'))).toThrow(RangeError);
    expect(() => connection.setRetained('twin/d/m', 'x' as unknown as Uint8Array)).toThrow(TypeError);
    expect(() => connection.getRetained('')).toThrow(RangeError);
    expect(() => connection.watchRetained('a/*', () => undefined)).toThrow(RangeError);
  });
});
