/**
 * The last will: when a connection dies without close(), RabbitMQ itself writes the will value to the will key
 * (the held will message expires on requeue and is dead-lettered to the key's last-value queue). A graceful close
 * never fires it; a client id can hold one will at a time.
 */
import { afterEach, expect, it } from 'vitest';
import { isEdgeKitError } from '../../../src/errors.js';
import type { TransportConnection } from '../../../src/transport.js';
import { startTcpProxy, type TcpProxy } from '../support/tcp-proxy.js';
import {
  bytes,
  closeAll,
  Inbox,
  open,
  rawConnection,
  readyCount,
  sharedRabbitMQ,
  testTransport,
  text,
  uniquePrefix,
  within,
} from './support.js';

const opened: TransportConnection[] = [];
let proxy: TcpProxy | undefined;
afterEach(async () => {
  await closeAll(opened);
  await proxy?.close();
  proxy = undefined;
});

const key = 'presence/d1/m1';
const will = { key, value: bytes('offline') };

it('shows a connection cut abruptly as offline, to watchers and readers', async () => {
  proxy = await startTcpProxy(sharedRabbitMQ().port);
  const prefix = uniquePrefix();
  const module = await open(
    testTransport({ prefix, url: `amqp://guest:guest@127.0.0.1:${proxy.port}` }),
    { clientId: 'd1/m1', will },
    opened,
  );
  await module.setRetained(key, bytes('online'));
  const observer = await open(testTransport({ prefix }), {}, opened);
  const seen = new Inbox<string | undefined>();
  await observer.watchRetained(key, (v) => seen.push(text(v)));
  expect(await seen.next()).toBe('online');

  const started = Date.now();
  proxy.cut();
  expect(await seen.next(5_000, 'the will')).toBe('offline');
  const latency = Date.now() - started;
  expect(text(await observer.getRetained(key))).toBe('offline');
  expect(isEdgeKitError(await module.closed, 'connection-lost')).toBe(true);
  console.info(`will seen ${latency} ms after the cut`);

  // The module comes back with the same client id: online again, will re-armed, and it fires again.
  proxy.heal();
  const again = await open(
    testTransport({ prefix, url: `amqp://guest:guest@127.0.0.1:${proxy.port}` }),
    { clientId: 'd1/m1', will },
    opened,
  );
  await again.setRetained(key, bytes('online'));
  expect(await seen.next()).toBe('online');
  proxy.cut();
  expect(await seen.next(5_000, 'the second will')).toBe('offline');
});

it('does not fire on a graceful close, and removes the will queue', async () => {
  const prefix = uniquePrefix();
  const module = await open(testTransport({ prefix }), { clientId: 'd1/m1', will }, opened);
  await module.setRetained(key, bytes('online'));
  const observer = await open(testTransport({ prefix }), {}, opened);
  const seen = new Inbox<string | undefined>();
  await observer.watchRetained(key, (v) => seen.push(text(v)));
  expect(await seen.next()).toBe('online');
  const raw = await rawConnection();
  try {
    expect(await readyCount(raw, `${prefix}.will.d1/m1`)).toBe(0); // exists, its message held by the module
    await module.close();
    expect(await module.closed).toBeUndefined();
    expect(await readyCount(raw, `${prefix}.will.d1/m1`)).toBeUndefined(); // gone: nothing left that could fire
  } finally {
    await raw.close();
  }
  // A later write is the next thing the watcher sees: no will came in between.
  await observer.setRetained(key, bytes('sentinel'));
  expect(await seen.next()).toBe('sentinel');
  expect(text(await observer.getRetained(key))).toBe('sentinel');
});

it('refuses a second live connection with the same client id, and accepts it after the first closed', async () => {
  const prefix = uniquePrefix();
  const transport = testTransport({ prefix });
  const first = await open(transport, { clientId: 'd1/m1', will }, opened);
  const error = await transport.connect({ clientId: 'd1/m1', will }).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(isEdgeKitError(error, 'connection-failed')).toBe(true);
  expect(isEdgeKitError(error) && error.details.reason).toBe('client-id-in-use');
  await first.close();
  const second = await within(open(transport, { clientId: 'd1/m1', will }, opened), 5_000, 'the second connect');
  await second.close();
});

it('moves a client id to another will key', async () => {
  proxy = await startTcpProxy(sharedRabbitMQ().port);
  const prefix = uniquePrefix();
  const transport = testTransport({ prefix, url: `amqp://guest:guest@127.0.0.1:${proxy.port}` });
  const first = await open(
    transport,
    { clientId: 'mover', will: { key: 'presence/d1/old', value: bytes('x') } },
    opened,
  );
  await first.close();
  const second = await open(
    transport,
    { clientId: 'mover', will: { key: 'presence/d1/new', value: bytes('gone') } },
    opened,
  );
  const observer = await open(testTransport({ prefix }), {}, opened);
  const seen = new Inbox<string | undefined>();
  await observer.watchRetained('presence/d1/new', (v) => seen.push(text(v)));
  expect(await seen.next()).toBeUndefined();
  proxy.cut();
  expect(await seen.next()).toBe('gone');
  expect(await observer.getRetained('presence/d1/old')).toBeUndefined();
  expect(isEdgeKitError(await second.closed, 'connection-lost')).toBe(true);
});
