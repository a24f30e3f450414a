/**
 * `amqp({ urls })` without a broker: the option's checks, and the order and time budget in which one connect tries
 * the nodes (a fake amqplib that refuses or never answers, recording what was tried).
 */
import type { ChannelModel, Options } from 'amqplib';
import { describe, expect, it } from 'vitest';
import { isEdgeKitError } from '../../errors.js';
import { amqp } from './index.js';
import { resolveAmqpOptions } from './options.js';

describe('urls', () => {
  it.each([
    ['url and urls', { url: 'amqp://a', urls: ['amqp://b'] }, TypeError, /url or urls, not both/],
    ['urls not an array', { urls: 'amqp://a' }, TypeError, /urls must be an array/],
    ['urls empty', { urls: [] }, RangeError, /at least one URL/],
    ['a URL not a string', { urls: ['amqp://a', 5672] }, TypeError, /urls\[1\] must be a string/],
    [
      'a URL not a URL',
      { urls: ['amqp://a', 'b:5672'] },
      RangeError,
      /urls\[1\].*amqp: or amqps:|urls\[1\].*not a URL/,
    ],
    ['a URL of another scheme', { urls: ['amqp://a', 'mqtt://b'] }, RangeError, /urls\[1\] must start with amqp:/],
    ['amqp mixed with amqps', { urls: ['amqp://a', 'amqps://b'] }, RangeError, /urls\[1\] must use the same scheme/],
    ['a query', { urls: ['amqp://a', 'amqp://b?heartbeat=5'] }, RangeError, /urls\[1\] must not have a query/],
    ['another vhost', { urls: ['amqp://a/x', 'amqp://b/y'] }, RangeError, /urls\[1\] names another vhost/],
    ['no url at all', {}, TypeError, /url must be a string/],
    [
      'queueType unknown',
      { url: 'amqp://a', queueType: 'stream' },
      RangeError,
      /queueType must be 'classic' or 'quorum'/,
    ],
    [
      'quorum with priorities',
      { url: 'amqp://a', queueType: 'quorum', priorities: true },
      RangeError,
      /priorities need classic/,
    ],
  ])('%s', (_, options, type, message) => {
    expect(() => amqp(options as never)).toThrow(type);
    expect(() => amqp(options as never)).toThrow(message);
  });

  it('never shows a password of any URL', () => {
    for (const urls of [
      ['amqp://u:s3cret@a', 'amqp://u:s3cret@:5672'],
      ['amqp://u:s3cret@a', 'amqp://u:s3cret@b?x=1'],
      ['amqp://u:s3cret@a', 'http://u:s3cret@b'],
    ]) {
      let message = '';
      try {
        amqp({ urls });
      } catch (error) {
        message = (error as Error).message;
      }
      expect(message).not.toBe('');
      expect(message).not.toContain('s3cret');
    }
  });

  it('resolves every node with the shared credentials, vhost and heartbeat', () => {
    const resolved = resolveAmqpOptions({
      urls: ['amqp://a:5672/v', 'amqp://b:5673/v', 'amqp://[::1]/v'],
      username: 'u',
      password: 'p',
      heartbeatInSeconds: 3,
    });
    expect(resolved.nodes.map((n) => n.connect)).toEqual([
      { protocol: 'amqp', hostname: 'a', port: 5672, username: 'u', password: 'p', vhost: 'v', heartbeat: 3 },
      { protocol: 'amqp', hostname: 'b', port: 5673, username: 'u', password: 'p', vhost: 'v', heartbeat: 3 },
      { protocol: 'amqp', hostname: '::1', port: 5672, username: 'u', password: 'p', vhost: 'v', heartbeat: 3 },
    ]);
    expect(resolved.nodes.map((n) => n.target)).toEqual(['amqp://a:5672/v', 'amqp://b:5673/v', 'amqp://[::1]:5672/v']);
    expect(resolved.queueType).toBe('classic');
    expect(resolved.secrets).toEqual(['p']);
    // Passwords in the URLs are all masked in messages.
    expect(resolveAmqpOptions({ urls: ['amqp://u:one@a', 'amqp://u:two@b'] }).secrets).toEqual(['one', 'two']);
  });

  it('keeps url as a cluster of one', () => {
    expect(resolveAmqpOptions({ url: 'amqp://a' }).nodes).toHaveLength(1);
  });
});

/** A fake amqplib: each host refuses at once or never answers; records the hosts tried and each attempt's timeout. */
function fakeLib(behaviour: Record<string, 'refuse' | 'hang' | 'deny'>) {
  const tried: Array<{ host: string; timeout: number }> = [];
  return {
    tried,
    lib: {
      connect(url: Options.Connect, socket?: { timeout?: number }): Promise<ChannelModel> {
        const host = String(url.hostname);
        tried.push({ host, timeout: socket?.timeout ?? 0 });
        if (behaviour[host] === 'hang') return new Promise<never>(() => undefined);
        if (behaviour[host] === 'deny') {
          return Promise.reject(
            new Error('Handshake terminated by server: 403 (ACCESS-REFUSED) with message "login refused"'),
          );
        }
        return Promise.reject(Object.assign(new Error(`connect ECONNREFUSED ${host}:5672`), { code: 'ECONNREFUSED' }));
      },
    },
  };
}

describe('connecting to several nodes', () => {
  it('tries every node in the given order, then says what each answered', async () => {
    const { lib, tried } = fakeLib({ a: 'refuse', b: 'refuse', c: 'refuse' });
    const transport = amqp({ urls: ['amqp://a', 'amqp://b', 'amqp://c'], lib });
    const failure = await transport.connect({ clientId: 'x', timeoutInMs: 3_000 }).catch((error: unknown) => error);
    expect(tried.map((t) => t.host)).toEqual(['a', 'b', 'c']);
    expect(isEdgeKitError(failure, 'connection-failed')).toBe(true);
    const error = failure as Error & { details: { nodes: Array<{ target: string; reason: string }> } };
    expect(error.message).toMatch(/could not connect to any of 3 RabbitMQ nodes/);
    expect(error.details.nodes.map((n) => [n.target, n.reason])).toEqual([
      ['amqp://a:5672/%2F', 'refused'],
      ['amqp://b:5672/%2F', 'refused'],
      ['amqp://c:5672/%2F', 'refused'],
    ]);
    // Nothing worked: the next connect starts from the first node again.
    await transport.connect({ clientId: 'x', timeoutInMs: 3_000 }).catch(() => undefined);
    expect(tried.slice(3).map((t) => t.host)).toEqual(['a', 'b', 'c']);
  });

  it('gives a node that never answers only its share of the connect timeout', async () => {
    const { lib, tried } = fakeLib({ a: 'hang', b: 'hang', c: 'refuse' });
    const transport = amqp({ urls: ['amqp://a', 'amqp://b', 'amqp://c'], lib });
    const started = Date.now();
    const failure = await transport.connect({ clientId: 'x', timeoutInMs: 600 }).catch((error: unknown) => error);
    const took = Date.now() - started;
    expect(tried.map((t) => t.host)).toEqual(['a', 'b', 'c']);
    // a: a third of 600 ms; b: half of what is left; c: the rest.
    expect(tried[0]?.timeout).toBe(200);
    expect(tried[1]?.timeout).toBeGreaterThanOrEqual(190);
    expect(tried[1]?.timeout).toBeLessThanOrEqual(205);
    expect(took).toBeLessThan(1_500);
    // The codes differ (timeout, timeout, connection-failed): the connect fails as connection-failed.
    expect(isEdgeKitError(failure, 'connection-failed')).toBe(true);
    expect((failure as Error).message).toMatch(/a:5672.*within 200 ms/);
  });

  it('reports a refusal every node gives alike with its own code', async () => {
    const { lib } = fakeLib({ a: 'deny', b: 'deny' });
    const transport = amqp({ urls: ['amqp://u:pw-secret@a', 'amqp://u:pw-secret@b'], lib });
    const failure = (await transport.connect({ clientId: 'x' }).catch((error: unknown) => error)) as Error & {
      details: { nodes: Array<{ reason: string }> };
    };
    expect(isEdgeKitError(failure, 'connection-failed')).toBe(true);
    expect(failure.details.nodes.map((n) => n.reason)).toEqual(['authentication', 'authentication']);
    expect(failure.message).not.toContain('pw-secret');
  });

  it('stops at once when aborted', async () => {
    const { lib, tried } = fakeLib({ a: 'hang', b: 'refuse' });
    const transport = amqp({ urls: ['amqp://a', 'amqp://b'], lib });
    const abort = new AbortController();
    const connecting = transport.connect({ clientId: 'x', abortSignal: abort.signal, timeoutInMs: 10_000 });
    abort.abort();
    await expect(connecting).rejects.toMatchObject({ code: 'aborted' });
    expect(tried.map((t) => t.host)).toEqual(['a']);
  });
});
