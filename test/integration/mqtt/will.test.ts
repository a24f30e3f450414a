/**
 * The last will on a real Mosquitto: written (retained) when a connection dies without a goodbye, never after a
 * graceful close.
 */
import { describe, expect, it } from 'vitest';
import { isEdgeKitError } from '../../../src/errors.js';
import { text, transportFor, unique, useConnections, useMosquitto, useProxies, utf8 } from './support/fixtures.js';
import { Inbox, withTimeout } from './support/wait.js';

const broker = useMosquitto();
const connections = useConnections();
const proxies = useProxies();

function presence() {
  const device = unique('dev');
  return { key: `presence/${device}/mod`, clientId: `${device}/mod` };
}

describe('last will', () => {
  it('is written as the retained value when the connection is cut abruptly', async () => {
    const { key, clientId } = presence();
    const proxy = await proxies.start(broker().port);
    const module = await connections.open(transportFor(`mqtt://127.0.0.1:${proxy.port}`), {
      clientId,
      will: { key, value: utf8('offline') },
    });
    await module.setRetained(key, utf8('online'));

    const observer = await connections.open(transportFor(broker().url), { clientId: unique('observer') });
    const seen = new Inbox<string | undefined>();
    await observer.watchRetained(key, (value) => seen.push(text(value)));
    expect(seen.items).toEqual(['online']);

    proxy.cut();
    expect(await seen.find((v) => v === 'offline', 5_000, 'the will')).toBe('offline');
    expect(isEdgeKitError(await withTimeout(module.closed, 5_000, 'closed'), 'connection-lost')).toBe(true);
    // retained: a newcomer reads it too
    const late = await connections.open(transportFor(broker().url), { clientId: unique('late') });
    expect(text(await late.getRetained(key))).toBe('offline');
  });

  it('is not written after a graceful close', async () => {
    const { key, clientId } = presence();
    const transport = transportFor(broker().url);
    const module = await connections.open(transport, { clientId, will: { key, value: utf8('offline') } });
    await module.setRetained(key, utf8('online'));
    await module.close();
    expect(await module.closed).toBeUndefined();

    // Once the same client id is connected again, the broker has finished with the old connection: had the will been
    // due, it would have been published before this CONNACK.
    const again = await connections.open(transport, { clientId });
    await again.close();
    const observer = await connections.open(transport, { clientId: unique('observer') });
    expect(text(await observer.getRetained(key))).toBe('online');
  });
});
