import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { typed } from '../codecs/schema.js';
import { connect } from '../connect.js';
import { defineModule, method } from '../core/contract.js';
import { addresses } from '../names.js';
import type { TransportConnection } from '../transport.js';
import { MemoryBroker, memory } from '../transports/memory/index.js';
import { connectService, type ServiceClient } from './client.js';
import { decodeLink } from './operations.js';

const Pinger = defineModule({ methods: { ping: method(typed<null>(), typed<string>()) } });
const bytes = (text: string) => new TextEncoder().encode(text);

let broker: MemoryBroker;
let service: ServiceClient;
/** Stands for the brokers that write the link state: a plain connection. */
let writer: TransportConnection;
const open: Array<{ close(): Promise<void> }> = [];

beforeEach(async () => {
  broker = new MemoryBroker();
  service = await connectService({ transport: memory({ broker }) });
  writer = await memory({ broker }).connect({ clientId: 'bridge' });
  open.push(service, writer);
});
afterEach(async () => {
  await Promise.all(open.splice(0).map((c) => c.close()));
});

describe('the link state of a bridged device', () => {
  test('decodeLink reads "1" and "0", nothing as no bridge, and refuses anything else', () => {
    expect(decodeLink(bytes('1'))).toBe('connected');
    expect(decodeLink(bytes('0'))).toBe('disconnected');
    expect(decodeLink(undefined)).toBeUndefined();
    for (const other of ['2', '10', 'true', '']) {
      expect(() => decodeLink(bytes(other))).toThrow(/a link state is "1" or "0"/);
    }
  });

  test('ServiceClient.link gives connected, disconnected, invalid with why, or undefined', async () => {
    expect(await service.link('gw')).toBeUndefined();
    await writer.setRetained(addresses.link('gw'), bytes('1'));
    expect(await service.link('gw')).toEqual({ state: 'connected' });
    await writer.setRetained(addresses.link('gw'), bytes('0'));
    expect(await service.link('gw')).toEqual({ state: 'disconnected' });
    await writer.setRetained(addresses.link('gw'), bytes('up'));
    expect(await service.link('gw')).toEqual({ state: 'invalid', problem: expect.stringMatching(/got 2 bytes/) });
    await expect(service.link('g w')).rejects.toThrow(RangeError);
  });

  test('a device known only by its link is listed among the devices', async () => {
    await writer.setRetained(addresses.link('bridged-only'), bytes('0'));
    expect(await service.devices()).toEqual(['bridged-only']);
  });

  test('a call to a device whose link is down answers 404 at once, without reaching the module', async () => {
    const pinger = await connect(Pinger, { deviceId: 'gw', moduleId: 'pinger', transport: memory({ broker }) });
    open.push(pinger);
    let calls = 0;
    await pinger.handle('ping', () => {
      calls += 1;
      return 'pong';
    });
    await writer.setRetained(addresses.link('gw'), bytes('1'));
    expect(await service.invoke('gw', 'pinger', 'ping', null)).toMatchObject({ ok: true, payload: 'pong' });
    await writer.setRetained(addresses.link('gw'), bytes('0'));
    // A call that waited for its timeout would outlast the test's.
    const answer = await service.invoke('gw', 'pinger', 'ping', null, { timeoutInMs: 60_000 });
    expect(answer).toMatchObject({ ok: false, status: 404 });
    expect(answer.ok ? '' : answer.message).toMatch(/device gw is not connected to the cloud/);
    expect(calls).toBe(1);
    // An invalid link state is an invalid record on the broker: 502, as for an invalid presence.
    await writer.setRetained(addresses.link('gw'), bytes('?'));
    expect(await service.invoke('gw', 'pinger', 'ping', null)).toMatchObject({ ok: false, status: 502 });
  });

  test('a dead-letter replay for a device whose link is down is refused, and leaves every dead letter', async () => {
    await writer.setRetained(addresses.link('gw'), bytes('0'));
    const letters = service.deadLetters('gw', 'pinger');
    await expect(letters.replay({ idleInMs: 10 })).rejects.toMatchObject({
      code: 'not-found',
      message: expect.stringContaining('device gw is not connected to the cloud'),
    });
    await writer.setRetained(addresses.link('gw'), bytes('1'));
    expect(await letters.replay({ idleInMs: 10 })).toMatchObject({ replayed: [], skipped: [] });
  });
});
