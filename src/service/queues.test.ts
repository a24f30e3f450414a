import { afterEach, describe, expect, test } from 'vitest';
import { encodeEnvelope } from '../core/envelope.js';
import { EdgeKitError, isEdgeKitError } from '../errors.js';
import { MemoryBroker, memory } from '../transports/memory/index.js';
import { connectService, type ServiceClient } from './client.js';

let broker: MemoryBroker;
let service: ServiceClient;
afterEach(async () => {
  await service?.close();
});

async function start(): Promise<ServiceClient> {
  broker = new MemoryBroker();
  service = await connectService({ transport: memory({ broker }) });
  return service;
}

const header = {
  messageId: 'm-1',
  createdAt: 1,
  sourceDeviceId: 'gw',
  sourceModuleId: 'sensor',
  properties: {},
};

describe('ServiceClient.upstream and deadLetters arguments', () => {
  test('bad arguments are refused at the call with TypeError/RangeError; "*" with unsupported', async () => {
    const s = await start();
    await expect(s.upstream('bad/device')).rejects.toThrow(RangeError);
    await expect(s.upstream(42 as never)).rejects.toThrow(TypeError);
    await expect(s.upstream('gw', { prefetch: 0 })).rejects.toThrow(/prefetch must be an integer from 1 to 1000/);
    await expect(s.upstream('gw', { prefetch: 1.5 })).rejects.toThrow(RangeError);
    await expect(s.upstream('gw', { abortSignal: 'no' as never })).rejects.toThrow(TypeError);
    await expect(s.upstream('gw', null as never)).rejects.toThrow(TypeError);
    const star = await s.upstream('*').catch((error: unknown) => error);
    expect(star).toBeInstanceOf(EdgeKitError);
    expect(isEdgeKitError(star, 'unsupported')).toBe(true);
    expect((star as Error).message).toMatch(/consume each device/);

    expect(() => s.deadLetters('gw', 'a b')).toThrow(RangeError);
    expect(() => s.deadLetters('', 'filter')).toThrow(RangeError);
    const dead = s.deadLetters('gw', 'filter');
    await expect(dead.list({ limit: 0 })).rejects.toThrow(/limit must be an integer from 1 to 1000,/);
    await expect(dead.list({ limit: 1001 })).rejects.toThrow(RangeError);
    await expect(dead.purge({ limit: 10_001 })).rejects.toThrow(/limit must be an integer from 1 to 10000/);
    await expect(dead.purge({ idleInMs: 5 })).rejects.toThrow(/idleInMs must be an integer from 10 to 60000/);
    await expect(dead.replay({ abortSignal: {} as never })).rejects.toThrow(TypeError);
  });

  test('an abort ends an upstream consumer and gives its message back; an aborted listing rejects with aborted', async () => {
    const s = await start();
    const raw = await memory({ broker }).connect({ clientId: 'raw' });
    await raw.publish('upstream/gw', encodeEnvelope(header, new Uint8Array([1])));
    const stop = new AbortController();
    const consumer = await s.upstream('gw', { abortSignal: stop.signal });
    const first = await consumer.next();
    expect(first.value).toMatchObject({ type: 'message', messageId: 'm-1' });
    stop.abort();
    expect(await consumer.next()).toEqual({ value: undefined, done: true });
    const again = await s.upstream('gw');
    expect((await again.next()).value).toMatchObject({ messageId: 'm-1', redelivered: true });
    await again.close();

    const aborted = new AbortController();
    aborted.abort();
    await expect(s.deadLetters('gw', 'filter').list({ abortSignal: aborted.signal })).rejects.toSatisfy((e) =>
      isEdgeKitError(e, 'aborted'),
    );
    await raw.close();
  });

  test('closing the client ends its consumers; a lost connection rejects the iteration with connection-lost', async () => {
    const s = await start();
    const consumer = await s.upstream('gw');
    const waiting = consumer.next();
    broker.disconnect((s as unknown as { clientId: string }).clientId);
    await expect(waiting).rejects.toSatisfy((e) => isEdgeKitError(e, 'connection-lost'));
    const other = await s.upstream('gw');
    const pending = other.next();
    await s.close();
    expect(await pending).toEqual({ value: undefined, done: true });
  });
});
