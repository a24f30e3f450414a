/**
 * A broker restart keeps what must be kept: retained values (and deletions), messages queued for a module that never
 * connected, and the will of a module whose connection the restart ended. Live connections end with
 * `connection-lost` (the core reconnects).
 *
 * This suite restarts the shared broker: it must not run beside other AMQP suites (one worker, or its own group).
 */
import { afterEach, expect, it } from 'vitest';
import { isEdgeKitError } from '../../../src/errors.js';
import type { Delivery, TransportConnection } from '../../../src/transport.js';
import { bytes, closeAll, Inbox, open, restartRabbitMQ, testTransport, text, uniquePrefix, within } from './support.js';

const opened: TransportConnection[] = [];
afterEach(() => closeAll(opened));

it('keeps retained values, queued messages and fires wills across a restart', async () => {
  const prefix = uniquePrefix();
  const transport = testTransport({ prefix });
  const writer = await open(transport, {}, opened);
  await writer.setRetained('twin/d1/m1/desired', bytes('{"$version":3}'));
  await writer.setRetained('twin/d1/m1/reported', bytes('old'));
  await writer.setRetained('twin/d1/m1/reported', null);
  for (let i = 0; i < 10; i++) await writer.publish('inputs/d1/never/in', bytes(`m${i}`));
  const module = await open(
    transport,
    { clientId: 'd1/m1', will: { key: 'presence/d1/m1', value: bytes('offline') } },
    opened,
  );
  await module.setRetained('presence/d1/m1', bytes('online'));

  await restartRabbitMQ();

  expect(isEdgeKitError(await within(writer.closed, 10_000, 'writer closed'), 'connection-lost')).toBe(true);
  expect(isEdgeKitError(await within(module.closed, 10_000, 'module closed'), 'connection-lost')).toBe(true);
  await expect(writer.publish('inputs/d1/never/in', bytes('x'))).rejects.toSatisfy((e) =>
    isEdgeKitError(e, 'connection-lost'),
  );

  const after = await open(transport, {}, opened);
  expect(text(await after.getRetained('twin/d1/m1/desired'))).toBe('{"$version":3}');
  expect(await after.getRetained('twin/d1/m1/reported')).toBeUndefined();
  expect(text(await after.getRetained('presence/d1/m1'))).toBe('offline');
  const watched = new Inbox<string | undefined>();
  await after.watchRetained('twin/d1/m1/desired', (v) => watched.push(text(v)));
  expect(watched.items).toEqual(['{"$version":3}']);

  const inbox = new Inbox<Delivery>();
  await after.consume('inputs/d1/never/in', { prefetch: 10 }, (d) => {
    inbox.push(d);
    d.ack();
  });
  expect((await inbox.count(10)).map((d) => text(d.bytes))).toEqual(Array.from({ length: 10 }, (_, i) => `m${i}`));

  // The module's client id is free again: it reconnects with its will.
  const back = await open(
    transport,
    { clientId: 'd1/m1', will: { key: 'presence/d1/m1', value: bytes('offline') } },
    opened,
  );
  await back.setRetained('presence/d1/m1', bytes('online'));
  expect(text(await after.getRetained('presence/d1/m1'))).toBe('online');
}, 60_000);
