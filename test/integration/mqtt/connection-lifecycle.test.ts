/**
 * Connection lifecycle on a real Mosquitto: connect failures translated to edgekit codes (refused, timeout, aborted),
 * `closed` resolving once (undefined after close, `connection-lost` after a cut, a takeover or a broker crash),
 * operations in flight rejected when the connection drops, and no reconnect by mqtt.js itself.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { isEdgeKitError } from '../../../src/errors.js';
import { freePort, listenOnLoopback } from '../support/loopback.js';
import { text, transportFor, unique, useConnections, useMosquitto, useProxies, utf8 } from './support/fixtures.js';
import { withTimeout } from './support/wait.js';

const broker = useMosquitto();
const connections = useConnections();
const proxies = useProxies();

/** A TCP server that accepts and never answers: a broker that hangs. */
const silentServer = () => listenOnLoopback((socket, track) => track(socket));

const servers: Array<{ close(): Promise<void> }> = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

describe('connecting', () => {
  it('fails with connection-failed when nothing listens', async () => {
    const port = await freePort();
    const error = await transportFor(`mqtt://127.0.0.1:${port}`)
      .connect({ clientId: unique('c') })
      .catch((e: unknown) => e);
    expect(isEdgeKitError(error, 'connection-failed')).toBe(true);
    expect((error as Error).message).toMatch(/ECONNREFUSED/);
    expect((error as Error).cause).toBeInstanceOf(Error);
  });

  it('fails with timeout when the broker never answers', async () => {
    const silent = await silentServer();
    servers.push(silent);
    const started = Date.now();
    const error = await transportFor(`mqtt://127.0.0.1:${silent.port}`)
      .connect({ clientId: unique('c'), timeoutInMs: 300 })
      .catch((e: unknown) => e);
    expect(isEdgeKitError(error, 'timeout')).toBe(true);
    expect(Date.now() - started).toBeLessThan(3_000);
  });

  it('fails with aborted when the abort signal fires', async () => {
    const silent = await silentServer();
    servers.push(silent);
    const controller = new AbortController();
    const pending = transportFor(`mqtt://127.0.0.1:${silent.port}`).connect({
      clientId: unique('c'),
      abortSignal: controller.signal,
    });
    controller.abort();
    expect(isEdgeKitError(await pending.catch((e: unknown) => e), 'aborted')).toBe(true);
    const already = await transportFor(broker().url)
      .connect({ clientId: unique('c'), abortSignal: controller.signal })
      .catch((e: unknown) => e);
    expect(isEdgeKitError(already, 'aborted')).toBe(true);
  });

  it('rejects invalid connect options', async () => {
    const transport = transportFor(broker().url);
    await expect(transport.connect({ clientId: '' })).rejects.toThrow(RangeError);
    await expect(transport.connect({ clientId: 'a/+/b' })).rejects.toThrow(RangeError);
    await expect(transport.connect({ clientId: 'ok', timeoutInMs: -1 })).rejects.toThrow(RangeError);
    await expect(transport.connect({ clientId: 'ok', will: { key: 'presence/#', value: utf8('x') } })).rejects.toThrow(
      RangeError,
    );
  });
});

describe('closing', () => {
  it('close() resolves closed with undefined, is idempotent, and later calls reject with closed', async () => {
    const connection = await connections.open(transportFor(broker().url), { clientId: unique('c') });
    await Promise.all([connection.close(), connection.close()]);
    expect(await connection.closed).toBeUndefined();
    const error = await connection.publish(`inputs/${unique('d')}/m/i`, utf8('x')).catch((e: unknown) => e);
    expect(isEdgeKitError(error, 'closed')).toBe(true);
    await expect(connection.getRetained('twin/d/m/desired')).rejects.toSatisfy((e) => isEdgeKitError(e, 'closed'));
  });

  it('an abrupt cut resolves closed with connection-lost and rejects operations in flight', async () => {
    const proxy = await proxies.start(broker().port);
    const connection = await connections.open(transportFor(`mqtt://127.0.0.1:${proxy.port}`), {
      clientId: unique('c'),
    });
    const device = unique('d');
    await connection.serve(`methods/${device}/m`, () => new Promise<Uint8Array>(() => {}));
    const request = connection.request(`methods/${device}/m`, utf8('x'), { timeoutInMs: 60_000 });
    // Let the request reach the wire, then cut before any answer could come.
    await connection.getRetained(`barrier/${device}`);
    proxy.cut({ refuse: true });
    const publish = connection.publish(`inputs/${device}/m/i`, utf8('x')); // written into a dying socket
    const cause = await withTimeout(connection.closed, 5_000, 'closed');
    expect(isEdgeKitError(cause, 'connection-lost')).toBe(true);
    expect(isEdgeKitError(await request.catch((e: unknown) => e), 'connection-lost')).toBe(true);
    expect(isEdgeKitError(await publish.catch((e: unknown) => e), 'connection-lost')).toBe(true);
    const later = await connection.publish(`inputs/${device}/m/i`, utf8('x')).catch((e: unknown) => e);
    expect(isEdgeKitError(later, 'connection-lost')).toBe(true);

    // mqtt.js does not reconnect on its own: the proxy refuses, and after healing nothing connects until asked.
    proxy.heal();
    const again = await connections.open(transportFor(`mqtt://127.0.0.1:${proxy.port}`), { clientId: unique('c') });
    expect(text(await again.getRetained(`barrier/${device}`))).toBeUndefined();
  });

  it('a second connection with the same client id takes the session over; the first ends with connection-lost', async () => {
    const clientId = unique('c');
    const transport = transportFor(broker().url);
    const first = await connections.open(transport, { clientId });
    const second = await connections.open(transport, { clientId });
    const cause = await withTimeout(first.closed, 5_000, 'the takeover');
    expect(isEdgeKitError(cause, 'connection-lost')).toBe(true);
    // Mosquitto 2.0 closes the old socket without a DISCONNECT (142, session taken over): nothing more to learn.
    await second.setRetained(`twin/${unique('d')}/m/reported`, utf8('still fine'));
  });
});

describe('broker faults', () => {
  const crashing = useMosquitto({ persistence: true });

  it('a broker crash resolves closed with connection-lost; a restarted broker still has the session queue', async () => {
    const transport = transportFor(crashing().url);
    const device = unique('d');
    const address = `inputs/${device}/m/in`;
    const clientId = `${device}/m`;
    const module = await connections.open(transport, { clientId });
    await module.consume(address, { prefetch: 1 }, (d) => d.ack());
    await module.close();
    const producer = await connections.open(transport, { clientId: `${device}/producer` });
    for (let i = 0; i < 5; i++) await producer.publish(address, utf8(`m${i}`));

    await crashing().restart(); // SIGTERM: Mosquitto writes its persistence file on the way out
    expect(isEdgeKitError(await withTimeout(producer.closed, 5_000, 'closed'), 'connection-lost')).toBe(true);

    const back = await connections.open(transport, { clientId });
    const got: string[] = [];
    const done = new Promise<void>((resolve) => {
      void back.consume(address, { prefetch: 1 }, (d) => {
        got.push(text(d.bytes)!);
        d.ack();
        if (got.length === 5) resolve();
      });
    });
    await withTimeout(done, 5_000, 'the queued messages');
    expect(got).toEqual(['m0', 'm1', 'm2', 'm3', 'm4']);

    await crashing().kill();
    expect(isEdgeKitError(await withTimeout(back.closed, 5_000, 'closed after SIGKILL'), 'connection-lost')).toBe(true);
    await crashing().start();
  });
});
