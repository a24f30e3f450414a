/**
 * Request/response on a real Mosquitto (MQTT 5 response topic + correlation data + message expiry): round trips,
 * correlation of concurrent requests, timeout, abort, handler failures, expiry of requests that waited too long in an
 * offline server's session, and round-trip latency with TCP_NODELAY.
 */
import { describe, expect, it } from 'vitest';
import { isEdgeKitError } from '../../../src/errors.js';
import { text, transportFor, unique, useConnections, useMosquitto, useProxies, utf8 } from './support/fixtures.js';
import { Inbox, withTimeout } from './support/wait.js';

const broker = useMosquitto();
const connections = useConnections();
const proxies = useProxies();

async function setup() {
  const transport = transportFor(broker().url);
  const device = unique('dev');
  const server = await connections.open(transport, { clientId: `${device}/server` });
  const caller = await connections.open(transport, { clientId: `${device}/caller` });
  return { transport, server, caller, address: `methods/${device}/server`, serverId: `${device}/server` };
}

describe('request/serve', () => {
  it('returns the bytes the handler resolved to', async () => {
    const { server, caller, address } = await setup();
    await server.serve(address, async (request) => utf8(`echo:${text(request)}`));
    const reply = await caller.request(address, utf8('hello'), { timeoutInMs: 5_000 });
    expect(text(reply)).toBe('echo:hello');
  });

  it('matches concurrent replies to their requests, whatever order they finish in', async () => {
    const { server, caller, address } = await setup();
    await server.serve(address, async (request) => {
      const n = Number(text(request));
      await new Promise((resolve) => setTimeout(resolve, (n * 7) % 20));
      return utf8(`reply-${n}`);
    });
    const replies = await Promise.all(
      Array.from({ length: 30 }, (_, n) => caller.request(address, utf8(String(n)), { timeoutInMs: 5_000 })),
    );
    expect(replies.map(text)).toEqual(Array.from({ length: 30 }, (_, n) => `reply-${n}`));
  });

  it('rejects with timeout when no reply comes in time (also when nobody serves)', async () => {
    const { server, caller, address } = await setup();
    await server.serve(address, () => new Promise<Uint8Array>(() => {}));
    const started = Date.now();
    const error = await caller.request(address, utf8('x'), { timeoutInMs: 300 }).catch((e: unknown) => e);
    const elapsed = Date.now() - started;
    expect(isEdgeKitError(error, 'timeout')).toBe(true);
    expect(elapsed).toBeGreaterThanOrEqual(290);
    expect(elapsed).toBeLessThan(2_000);

    const nobody = await caller
      .request(`methods/${unique('dev')}/none`, utf8('x'), { timeoutInMs: 200 })
      .catch((e) => e);
    expect(isEdgeKitError(nobody, 'timeout')).toBe(true);
  });

  it('rejects with aborted when the abort signal fires', async () => {
    const { server, caller, address } = await setup();
    await server.serve(address, () => new Promise<Uint8Array>(() => {}));
    const controller = new AbortController();
    const pending = caller.request(address, utf8('x'), { timeoutInMs: 10_000, abortSignal: controller.signal });
    controller.abort(new Error('user gave up'));
    const error = await pending.catch((e: unknown) => e);
    expect(isEdgeKitError(error, 'aborted')).toBe(true);
    const already = await caller
      .request(address, utf8('x'), { timeoutInMs: 10_000, abortSignal: controller.signal })
      .catch((e: unknown) => e);
    expect(isEdgeKitError(already, 'aborted')).toBe(true);
  });

  it('reports a failing handler to the caller at once as transport-error', async () => {
    const { server, caller, address } = await setup();
    await server.serve(address, async () => {
      throw new Error('disk on fire');
    });
    const error = await caller.request(address, utf8('x'), { timeoutInMs: 5_000 }).catch((e: unknown) => e);
    expect(isEdgeKitError(error, 'transport-error')).toBe(true);
    expect((error as Error).message).toContain('disk on fire');
  });

  it('serves a request that waited in the session of a server cut off briefly, within its deadline', async () => {
    const { transport, caller, address, serverId } = await setup();
    const proxy = await proxies.start(broker().port);
    const server = await connections.open(transportFor(`mqtt://127.0.0.1:${proxy.port}`), { clientId: serverId });
    await server.serve(address, async (request) => utf8(`first:${text(request)}`));
    await server.getRetained(`barrier/${unique('b')}`); // the SUBSCRIBE is through before the cut
    proxy.cut();
    await withTimeout(server.closed, 5_000, 'the cut');
    const pending = caller.request(address, utf8('queued'), { timeoutInMs: 10_000 });
    // The request reaches the broker, and so the server's session, before the server returns.
    await caller.getRetained(`barrier/${unique('b')}`);
    const back = await connections.open(transport, { clientId: serverId });
    await back.serve(address, async (request) => utf8(`back:${text(request)}`));
    expect(text(await pending)).toBe('back:queued');
  });

  it('does not execute a request whose expiry passed while the server was cut off', async () => {
    const { transport, caller, address, serverId } = await setup();
    const proxy = await proxies.start(broker().port);
    const server = await connections.open(transportFor(`mqtt://127.0.0.1:${proxy.port}`), { clientId: serverId });
    await server.serve(address, async () => utf8('ok'));
    await server.getRetained(`barrier/${unique('b')}`);
    proxy.cut();
    await withTimeout(server.closed, 5_000, 'the cut');
    const expired = caller.request(address, utf8('stale'), { timeoutInMs: 1_000 }).catch((e: unknown) => e);
    // The expiry is what is under test, so time has to pass: MQTT counts it in whole seconds.
    await new Promise((resolve) => setTimeout(resolve, 2_100));
    expect(isEdgeKitError(await expired, 'timeout')).toBe(true);

    const back = await connections.open(transport, { clientId: serverId });
    const handled = new Inbox<string>();
    await back.serve(address, async (request) => {
      handled.push(text(request)!);
      return utf8('ok');
    });
    // A fresh request travels behind the stale one: once it is answered, the stale one would have been seen.
    expect(text(await caller.request(address, utf8('fresh'), { timeoutInMs: 5_000 }))).toBe('ok');
    expect(handled.items).toEqual(['fresh']);
  });

  it('stops receiving requests after a graceful close (the served address is unsubscribed)', async () => {
    const { transport, server, caller, address, serverId } = await setup();
    await server.serve(address, async () => utf8('ok'));
    await server.close();
    const error = await caller.request(address, utf8('nobody'), { timeoutInMs: 300 }).catch((e: unknown) => e);
    expect(isEdgeKitError(error, 'timeout')).toBe(true);
    // Nothing waited in the closed server's session for it.
    const back = await connections.open(transport, { clientId: serverId });
    const handled = new Inbox<string>();
    await back.serve(address, async (request) => {
      handled.push(text(request)!);
      return utf8('ok');
    });
    expect(text(await caller.request(address, utf8('fresh'), { timeoutInMs: 5_000 }))).toBe('ok');
    expect(handled.items).toEqual(['fresh']);
  });

  it('refuses to serve one address twice on a connection', async () => {
    const { server, address } = await setup();
    const first = await server.serve(address, async () => utf8('1'));
    await expect(server.serve(address, async () => utf8('2'))).rejects.toThrow(/already served/);
    await first.close();
    await server.serve(address, async () => utf8('3'));
  });

  it('answers in well under a Nagle delay (TCP_NODELAY on both ends)', async () => {
    const { server, caller, address } = await setup();
    await server.serve(address, async (request) => request);
    await caller.request(address, utf8('warm-up'), { timeoutInMs: 5_000 });
    const times: number[] = [];
    for (let i = 0; i < 60; i++) {
      const started = performance.now();
      await caller.request(address, utf8(`ping-${i}`), { timeoutInMs: 5_000 });
      times.push(performance.now() - started);
    }
    times.sort((a, b) => a - b);
    const p50 = times[Math.floor(times.length / 2)]!;
    // With Nagle on, a QoS 1 request/response round trip takes ~40 ms here; with TCP_NODELAY well under 1 ms.
    expect(p50).toBeLessThan(15);
  });
});
