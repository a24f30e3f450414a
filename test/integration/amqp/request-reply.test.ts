/**
 * Requests and replies: a round trip over direct reply-to with a correlation id; handlers run concurrently;
 * `timeout` when no reply comes in time; `not-found` at once when nobody serves the address; `aborted` on abort.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { isEdgeKitError } from '../../../src/errors.js';
import type { TransportConnection } from '../../../src/transport.js';
import { bytes, closeAll, open, testTransport, text, uniquePrefix, within } from './support.js';

const opened: TransportConnection[] = [];
afterEach(() => closeAll(opened));

async function pair(): Promise<[TransportConnection, TransportConnection]> {
  const prefix = uniquePrefix();
  return [await open(testTransport({ prefix }), {}, opened), await open(testTransport({ prefix }), {}, opened)];
}

describe('request and serve', () => {
  it('answers a request from another connection', async () => {
    const [server, caller] = await pair();
    await server.serve('methods/d1/m1', async (request) => bytes(`echo ${text(request)}`));
    const reply = await caller.request('methods/d1/m1', bytes('hello'), { timeoutInMs: 5_000 });
    expect(text(reply)).toBe('echo hello');
    expect(reply).toBeInstanceOf(Uint8Array);
  });

  it('matches concurrent replies to their requests and runs handlers concurrently', async () => {
    const [server, caller] = await pair();
    let running = 0;
    let peak = 0;
    let release: () => void = () => undefined;
    const gate = { promise: new Promise<void>((resolve) => (release = resolve)), resolve: () => release() };
    await server.serve('methods/d1/m1', async (request) => {
      running++;
      peak = Math.max(peak, running);
      if (running === 5) gate.resolve();
      await gate.promise;
      running--;
      return bytes(`re:${text(request)}`);
    });
    const replies = await Promise.all(
      [0, 1, 2, 3, 4].map((i) => caller.request('methods/d1/m1', bytes(String(i)), { timeoutInMs: 5_000 })),
    );
    expect(replies.map(text)).toEqual(['re:0', 're:1', 're:2', 're:3', 're:4']);
    expect(peak).toBe(5);
  });

  it('rejects with timeout when the server does not answer in time', async () => {
    const [server, caller] = await pair();
    await server.serve('methods/d1/m1', () => new Promise<Uint8Array>(() => undefined));
    const started = Date.now();
    const error = await caller.request('methods/d1/m1', bytes('?'), { timeoutInMs: 300 }).catch((e: unknown) => e);
    const elapsed = Date.now() - started;
    expect(isEdgeKitError(error, 'timeout')).toBe(true);
    expect(elapsed).toBeGreaterThanOrEqual(295);
    expect(elapsed).toBeLessThan(2_000);
  });

  it('rejects with not-found at once when nobody serves the address', async () => {
    const [server, caller] = await pair();
    const started = Date.now();
    const error = await caller
      .request('methods/d1/nobody', bytes('?'), { timeoutInMs: 10_000 })
      .catch((e: unknown) => e);
    expect(isEdgeKitError(error, 'not-found')).toBe(true);
    expect(Date.now() - started).toBeLessThan(1_000);

    // Served, then no longer served.
    const subscription = await server.serve('methods/d1/nobody', async () => bytes('here'));
    expect(text(await caller.request('methods/d1/nobody', bytes('?'), { timeoutInMs: 5_000 }))).toBe('here');
    await subscription.close();
    const after = await caller
      .request('methods/d1/nobody', bytes('?'), { timeoutInMs: 10_000 })
      .catch((e: unknown) => e);
    expect(isEdgeKitError(after, 'not-found')).toBe(true);
  });

  it('rejects with aborted when the signal fires, and at once when it already has', async () => {
    const [server, caller] = await pair();
    await server.serve('methods/d1/m1', () => new Promise<Uint8Array>(() => undefined));
    const controller = new AbortController();
    const pending = caller.request('methods/d1/m1', bytes('?'), {
      timeoutInMs: 10_000,
      abortSignal: controller.signal,
    });
    controller.abort(new Error('user gave up'));
    await expect(within(pending, 1_000, 'abort')).rejects.toSatisfy((e) => isEdgeKitError(e, 'aborted'));
    await expect(
      caller.request('methods/d1/m1', bytes('?'), { timeoutInMs: 10_000, abortSignal: controller.signal }),
    ).rejects.toSatisfy((e) => isEdgeKitError(e, 'aborted'));
  });

  it('answers a handler that throws with transport-error at once, and keeps serving', async () => {
    const [server, caller] = await pair();
    await server.serve('methods/d1/m1', async (request) => {
      if (text(request) === 'boom') throw new Error('handler failed');
      return bytes('fine');
    });
    // Long timeout: the rejection must come from the reply, not from the caller's timer.
    const error = await within(
      caller.request('methods/d1/m1', bytes('boom'), { timeoutInMs: 30_000 }).catch((e: unknown) => e),
      5_000,
      'the failure reply',
    );
    expect(isEdgeKitError(error, 'transport-error')).toBe(true);
    expect((error as Error).message).toMatch(/failed where it was served: handler failed/);
    expect(text(await caller.request('methods/d1/m1', bytes('ok'), { timeoutInMs: 5_000 }))).toBe('fine');
  });

  it('shares one address between two servers', async () => {
    const prefix = uniquePrefix();
    const servers = [
      await open(testTransport({ prefix }), {}, opened),
      await open(testTransport({ prefix }), {}, opened),
    ];
    const caller = await open(testTransport({ prefix }), {}, opened);
    for (const [i, server] of servers.entries()) await server.serve('methods/d1/m1', async () => bytes(`s${i}`));
    const replies = new Set<string | undefined>();
    for (let i = 0; i < 20; i++)
      replies.add(text(await caller.request('methods/d1/m1', bytes('?'), { timeoutInMs: 5_000 })));
    expect(replies).toEqual(new Set(['s0', 's1']));
  });
});
