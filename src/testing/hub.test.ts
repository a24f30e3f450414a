import { describe, expect, test } from 'vitest';
import { json } from '../codecs/codec.js';
import { typed } from '../codecs/schema.js';
import { defineModule, method } from '../core/contract.js';
import { createTestHub } from './hub.js';
import { ManualClock } from './manual-clock.js';

const Echo = defineModule({
  inputs: { in: json<{ n: number }>() },
  outputs: { out: json<{ n: number }>() },
  methods: { slow: method(typed<Record<string, never>>(), typed<{ done: boolean }>()) },
});

describe('test hub', () => {
  test('routes from a deployment manifest, desired properties from it too', async () => {
    const manifest = {
      modulesContent: {
        $edgeHub: {
          'properties.desired': {
            schemaVersion: '1.1',
            routes: { up: 'FROM /messages/modules/echo/* INTO $upstream' },
          },
        },
        echo: { 'properties.desired': { factor: 2 } },
      },
    };
    await using hub = await createTestHub({ manifest });
    const echo = await hub.connect(Echo, { moduleId: 'echo' });
    expect(echo.desired()).toEqual({ version: 1, properties: { factor: 2 } });
    await echo.onInput('in', async (m) => {
      await echo.send('out', { n: m.body.n * 2 });
    });
    await hub.send('echo', 'in', { n: 21 });
    expect((await hub.upstream().next()).body).toEqual({ n: 42 });
  });

  test('output() sees what a module sends even with no route; next() fails with a clear timeout', async () => {
    await using hub = await createTestHub();
    const echo = await hub.connect(Echo, { moduleId: 'echo' });
    const r = await echo.send('out', { n: 1 });
    expect(r.destinations).toBe(0);
    expect((await hub.output('echo', 'out').next()).body).toEqual({ n: 1 });
    await expect(hub.output('echo', 'out').next({ timeoutInMs: 20 })).rejects.toThrow(
      /no message on output echo\/out within 20 ms/,
    );
  });

  test('takeOffline fires the last will and queues messages; bringOnline reconnects and delivers them', async () => {
    await using hub = await createTestHub();
    const echo = await hub.connect(Echo, { moduleId: 'echo' });
    const seen: number[] = [];
    await echo.onInput('in', (m) => {
      seen.push(m.body.n);
    });
    await hub.takeOffline('echo');
    expect(await hub.presence('echo')).toMatchObject({ state: 'offline', reason: 'connection-lost' });
    await hub.send('echo', 'in', { n: 1 });
    await hub.send('echo', 'in', { n: 2 });
    expect(seen).toEqual([]);
    await hub.bringOnline('echo');
    expect(await hub.presence('echo')).toMatchObject({ state: 'online' });
    await expect.poll(() => seen).toEqual([1, 2]);
  });

  test('partition: the module hears nothing and its calls stay pending; takeOffline and bringOnline end it', async () => {
    await using hub = await createTestHub();
    const echo = await hub.connect(Echo, { moduleId: 'echo' });
    const seen: number[] = [];
    await echo.onInput('in', (m) => {
      seen.push(m.body.n);
    });
    await hub.partition('echo');
    await hub.send('echo', 'in', { n: 1 });
    const twin = echo.getTwin({ timeoutInMs: 60_000 });
    let settled = false;
    void twin.then(
      () => (settled = true),
      () => (settled = true),
    );
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(seen).toEqual([]);
    expect(settled).toBe(false);
    await hub.takeOffline('echo');
    await expect(twin).rejects.toMatchObject({ code: 'connection-lost' });
    await hub.bringOnline('echo');
    await expect.poll(() => seen).toEqual([1]);
  });

  test('enforceAccess: a module that oversteps its deployment fails as on a broker with edgekit identities', async () => {
    const manifest = {
      modulesContent: {
        $edgeAgent: { 'properties.desired': { modules: { echo: {}, other: {} } } },
        $edgeHub: {
          'properties.desired': {
            schemaVersion: '1.1',
            routes: { r: 'FROM /messages/modules/other/outputs/* INTO BrokeredEndpoint("/modules/echo/inputs/in")' },
          },
        },
      },
    };
    await using hub = await createTestHub({ manifest, enforceAccess: true });
    const echo = await hub.connect(Echo, { moduleId: 'echo' });
    const seen: number[] = [];
    await echo.onInput('in', (m) => {
      seen.push(m.body.n);
    });
    await hub.send('echo', 'in', { n: 1 });
    await expect.poll(() => seen).toEqual([1]);
    // No route leads from echo anywhere: its send reaches nothing. A module not in the deployment cannot connect.
    await expect(hub.connect(Echo, { moduleId: 'stranger', connectTimeoutInMs: 200 })).rejects.toMatchObject({
      code: 'connection-failed',
    });
    const other = hub.transport();
    const rogue = await other.connect({ clientId: 'test-device/other', identity: 'test-device/other' });
    await expect(rogue.consume('inputs/test-device/echo/in', { prefetch: 1 }, () => undefined)).rejects.toMatchObject({
      code: 'not-authorized',
    });
    await rogue.close();
  });

  test('a manual clock controls TTLs: an expired message is never delivered', async () => {
    const clock = new ManualClock();
    await using hub = await createTestHub({ clock });
    await hub.send('late', 'in', { n: 1 }, { ttlInMs: 1_000 });
    await hub.send('late', 'in', { n: 2 }, { ttlInMs: 60_000 });
    await hub.advance(5_000);
    const late = await hub.connect(Echo, { moduleId: 'late' });
    const seen: number[] = [];
    await late.onInput('in', (m) => {
      seen.push(m.body.n);
    });
    await hub.advance(10);
    expect(seen).toEqual([2]);
  });

  test('a manual clock controls method timeouts: 504 without waiting', async () => {
    const clock = new ManualClock();
    await using hub = await createTestHub({ clock });
    const echo = await hub.connect(Echo, { moduleId: 'echo' });
    let aborted = false;
    await echo.handle('slow', (_req, { signal }) => {
      return new Promise((resolve) => {
        signal.addEventListener('abort', () => {
          aborted = true;
          resolve({ done: false });
        });
      });
    });
    const call = hub.invoke('echo', 'slow', {}, { timeoutInMs: 10_000 });
    await hub.advance(10_001);
    expect(await call).toMatchObject({ ok: false, status: 504 });
    expect(aborted).toBe(true);
  });

  test('setRoutes rejects an invalid table whole; errors of modules are collected', async () => {
    await using hub = await createTestHub();
    await expect(hub.setRoutes({ bad: 'FROM /messages INTO nowhere' })).rejects.toMatchObject({
      code: 'invalid-route',
    });
    const echo = await hub.connect(Echo, { moduleId: 'echo', maxAttempts: 1 });
    await echo.onInput('in', () => {
      throw new Error('nope');
    });
    await hub.send('echo', 'in', { n: 1 });
    const dead = await hub.deadLetters('echo').next();
    expect(dead.deadLetter).toMatchObject({ reason: 'handler-failed', error: 'nope', attempts: 1 });
    expect(hub.errors.map((e) => e.message)).toEqual([expect.stringContaining('dead-lettered (handler-failed)')]);
  });

  test('waitForReported resolves when the predicate holds and times out clearly otherwise', async () => {
    await using hub = await createTestHub();
    const echo = await hub.connect(Echo, { moduleId: 'echo' });
    const waiting = hub.waitForReported('echo', (r) => r.n === 2);
    await echo.report({ n: 1 });
    await echo.report({ n: 2 });
    expect((await waiting).version).toBe(2);
    await expect(hub.waitForReported('echo', (r) => r.n === 3, { timeoutInMs: 30 })).rejects.toThrow(
      /did not match within 30 ms/,
    );
  });

  test('bad arguments are rejected', async () => {
    await expect(createTestHub({ deviceId: 'a b' })).rejects.toThrow(RangeError);
    await using hub = await createTestHub();
    expect(() => hub.output('a/b', 'x')).toThrow(RangeError);
    expect(() => hub.advance(1)).toThrow(TypeError);
  });
});

describe('manual clock', () => {
  test('fires due timers in order and nothing early', async () => {
    const clock = new ManualClock(0);
    const fired: string[] = [];
    clock.setTimer(() => fired.push('b'), 20);
    clock.setTimer(() => fired.push('a'), 10);
    const c = clock.setTimer(() => fired.push('cancelled'), 15);
    c.cancel();
    await clock.advance(15);
    expect(fired).toEqual(['a']);
    await clock.advance(5);
    expect(fired).toEqual(['a', 'b']);
    expect(clock.now()).toBe(20);
    await expect(clock.advance(-1)).rejects.toThrow(RangeError);
  });
});

describe('messages() iterator', () => {
  test('yields messages in order and acknowledges each when the next is requested; break stops the subscription', async () => {
    await using hub = await createTestHub();
    const echo = await hub.connect(Echo, { moduleId: 'echo' });
    for (let n = 1; n <= 4; n++) await hub.send('echo', 'in', { n });
    const seen: number[] = [];
    for await (const msg of echo.messages('in')) {
      seen.push(msg.body.n);
      if (seen.length === 2) break;
    }
    expect(seen).toEqual([1, 2]);
    // Messages delivered to the iterator but never handed out are given back to the broker, in order, not lost.
    expect(echo.stats().processed).toBe(2);
    const rest: number[] = [];
    await echo.onInput('in', (m) => {
      rest.push(m.body.n);
    });
    await expect.poll(() => rest).toEqual([3, 4]);
    const started = Date.now();
    await echo.close();
    expect(Date.now() - started).toBeLessThan(1_000);
  });
});
