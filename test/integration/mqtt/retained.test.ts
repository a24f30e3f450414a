/**
 * Retained values on a real Mosquitto: get reports "none" reliably (MQTT has no GET), set/overwrite/delete, watch
 * delivers the current value first and then every change, and watchers and readers of one key on one connection do
 * not disturb each other.
 */
import { describe, expect, it } from 'vitest';
import { text, transportFor, unique, useConnections, useMosquitto, utf8 } from './support/fixtures.js';
import { Inbox } from './support/wait.js';

const broker = useMosquitto();
const connections = useConnections();

function key(): string {
  return `twin/${unique('dev')}/mod/desired`;
}

async function pair(options: Parameters<typeof transportFor>[1] = {}) {
  const transport = transportFor(broker().url, options);
  const device = unique('dev');
  const writer = await connections.open(transport, { clientId: `${device}/writer` });
  const reader = await connections.open(transport, { clientId: `${device}/reader` });
  return { writer, reader };
}

describe('retained values', () => {
  it('reports "none" for a key that was never set', async () => {
    const { reader } = await pair();
    expect(await reader.getRetained(key())).toBeUndefined();
  });

  it('reads what another connection set, the newest value after an overwrite, and none after a delete', async () => {
    const { writer, reader } = await pair();
    const k = key();
    await writer.setRetained(k, utf8('v1'));
    expect(text(await reader.getRetained(k))).toBe('v1');
    await writer.setRetained(k, utf8('v2'));
    expect(text(await reader.getRetained(k))).toBe('v2');
    await writer.setRetained(k, null);
    expect(await reader.getRetained(k)).toBeUndefined();
    // and the writer sees its own value too
    await writer.setRetained(k, utf8('v3'));
    expect(text(await writer.getRetained(k))).toBe('v3');
  });

  it('waits for a large retained value that arrives in many TCP segments after the SUBACK', async () => {
    // 2 MiB: over the default packet limit, which both sides raise here.
    const { writer, reader } = await pair({ maxPacketBytes: 4 * 1024 * 1024 });
    const k = key();
    const big = new Uint8Array(2 * 1024 * 1024).map((_, i) => i % 251);
    await writer.setRetained(k, big);
    const value = await reader.getRetained(k);
    expect(value?.byteLength).toBe(big.byteLength);
    expect(Buffer.from(value!).equals(Buffer.from(big))).toBe(true);
  });

  it('refuses a value over the packet limit with message-too-large, and the connection keeps working', async () => {
    const { writer, reader } = await pair();
    const k = key();
    await expect(writer.setRetained(k, new Uint8Array(600 * 1024))).rejects.toMatchObject({
      code: 'message-too-large',
    });
    await writer.setRetained(k, utf8('small'));
    expect(text(await reader.getRetained(k))).toBe('small');
  });

  it('reads many keys concurrently, each with its own answer', async () => {
    const { writer, reader } = await pair();
    const keys = Array.from({ length: 20 }, () => key());
    await Promise.all(keys.map((k, i) => (i % 2 === 0 ? writer.setRetained(k, utf8(`value-${i}`)) : undefined)));
    const values = await Promise.all(keys.map((k) => reader.getRetained(k)));
    expect(values.map(text)).toEqual(keys.map((_, i) => (i % 2 === 0 ? `value-${i}` : undefined)));
  });

  it('watches: undefined first when there is none, then every change, deletes as undefined', async () => {
    const { writer, reader } = await pair();
    const k = key();
    const inbox = new Inbox<string | undefined>();
    await reader.watchRetained(k, (value) => inbox.push(text(value)));
    expect(inbox.items).toEqual([undefined]); // delivered before watchRetained resolved
    await writer.setRetained(k, utf8('a'));
    await writer.setRetained(k, utf8('b'));
    await writer.setRetained(k, null);
    await writer.setRetained(k, utf8('c'));
    expect(await inbox.take(5, 5_000)).toEqual([undefined, 'a', 'b', undefined, 'c']);
  });

  it('watches: the current value first when there is one', async () => {
    const { writer, reader } = await pair();
    const k = key();
    await writer.setRetained(k, utf8('current'));
    const inbox = new Inbox<string | undefined>();
    await reader.watchRetained(k, (value) => inbox.push(text(value)));
    expect(inbox.items).toEqual(['current']);
  });

  it('keeps a watcher intact while the same connection reads the key, and stops a closed watcher', async () => {
    const { writer, reader } = await pair();
    const k = key();
    await writer.setRetained(k, utf8('v1'));
    const watched = new Inbox<string | undefined>();
    const watch = await reader.watchRetained(k, (value) => watched.push(text(value)));
    // A read re-subscribes (the broker re-sends the retained copy) and then unsubscribes its reference.
    expect(text(await reader.getRetained(k))).toBe('v1');
    expect(text(await reader.getRetained(k))).toBe('v1');
    await writer.setRetained(k, utf8('v2'));
    await watched.take(2, 5_000);

    await watch.close();
    await watch.close(); // idempotent
    const witness = new Inbox<string | undefined>();
    await reader.watchRetained(k, (value) => witness.push(text(value)));
    await writer.setRetained(k, utf8('v3'));
    await witness.find((v) => v === 'v3', 5_000, 'the witness to see v3');
    // No copies from the re-subscriptions, nothing after close.
    expect(watched.items).toEqual(['v1', 'v2']);
  });

  it('rejects an empty value (it would delete) and bad keys', async () => {
    const { writer } = await pair();
    await expect(writer.setRetained(key(), new Uint8Array(0))).rejects.toThrow(RangeError);
    await expect(writer.getRetained('twin/#')).rejects.toThrow(RangeError);
    await expect(writer.watchRetained('', () => {})).rejects.toThrow(RangeError);
  });
});

describe('retained values across a broker restart', () => {
  const persistent = useMosquitto({ persistence: true });

  it('survive a restart of a broker with persistence', async () => {
    const transport = transportFor(persistent().url);
    const k = key();
    const writer = await connections.open(transport, { clientId: unique('writer') });
    await writer.setRetained(k, utf8('kept'));
    await persistent().restart();
    await writer.closed;
    const reader = await connections.open(transport, { clientId: unique('reader') });
    expect(text(await reader.getRetained(k))).toBe('kept');
  });
});
