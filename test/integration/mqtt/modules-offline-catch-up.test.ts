/**
 * A module that is away for a while, on a real Mosquitto: its inputs wait in its persistent session and its desired
 * properties move on without it. When it returns it gets every queued input, in order, and the latest desired
 * document — after an abrupt cut (the same client reconnects by itself) as one catch-up patch from what it last saw,
 * and after a graceful close (a new client with the same identity) as the current document at registration.
 */
import { describe, expect, it } from 'vitest';
import { systemClock } from '../../../src/clock.js';
import type { ConnectionStatus } from '../../../src/core/types.js';
import { decodePresence, type Presence } from '../../../src/core/wire.js';
import { defineModule, json, typed } from '../../../src/index.js';
import { addresses } from '../../../src/names.js';
import { injectMessage, updateDesired } from '../../../src/service/operations.js';
import type { TransportConnection } from '../../../src/transport.js';
import { jsonBytes, useModules } from './fixtures/module-clients.js';
import { transportFor, unique, useConnections, useMosquitto, useProxies } from './support/fixtures.js';
import { Inbox } from './support/wait.js';

const broker = useMosquitto();
const connections = useConnections();
const proxies = useProxies();
const modules = useModules();

interface Settings {
  threshold?: number;
  mode?: string;
  extra?: boolean | { nested: number };
}
const Counter = defineModule({ inputs: { in: json<{ n: number }>() }, desired: typed<Settings>() });

interface DesiredCall {
  readonly desired: Settings;
  readonly patch: unknown;
  readonly version: number;
}

async function operatorFor(deviceId: string): Promise<TransportConnection> {
  return connections.open(transportFor(broker().url), { clientId: `${deviceId}/operator` });
}

function injector(operator: TransportConnection, deviceId: string, moduleId: string) {
  return (n: number) =>
    injectMessage(operator, systemClock, { deviceId, moduleId, input: 'in' }, jsonBytes({ n }), {
      contentType: 'application/json',
    });
}

describe('a module that was away', () => {
  it('after an abrupt cut: gets its queued inputs and one catch-up patch to the latest desired', async () => {
    const deviceId = unique('dev');
    const moduleId = 'counter';
    const operator = await operatorFor(deviceId);
    const inject = injector(operator, deviceId, moduleId);
    await updateDesired(operator, deviceId, moduleId, { threshold: 10, mode: 'a', extra: true });

    const proxy = await proxies.start(broker().port);
    const { client } = await modules.connect(Counter, {
      deviceId,
      moduleId,
      transport: transportFor(`mqtt://127.0.0.1:${proxy.port}`),
    });
    const statuses = new Inbox<ConnectionStatus>();
    void (async () => {
      for await (const status of client.status()) statuses.push(status);
    })();
    const desired = new Inbox<DesiredCall>();
    await client.onDesired((d, patch, version) => desired.push({ desired: d, patch, version }));
    const inputs = new Inbox<number>();
    await client.onInput('in', (message) => inputs.push(message.body.n));
    const presence = new Inbox<Presence | undefined>();
    await operator.watchRetained(addresses.presence(deviceId, moduleId), (v) => presence.push(decodePresence(v)));

    await inject(0);
    await inputs.take(1, 5_000, 'the first input');
    // A round trip on the module's own connection: the broker has then seen the PUBACK of input 0, written before it.
    await client.getTwin();
    expect(desired.items.map((c) => c.version)).toEqual([1]);

    // Cut the cable and keep it cut: the broker fires the last will, the client retries with backoff.
    proxy.cut({ refuse: true });
    await presence.find((p) => p?.state === 'offline', 10_000, 'the module to be marked offline');
    await statuses.find((s) => s.state === 'reconnecting' && s.attempt >= 3, 10_000, 'three failed reconnect attempts');

    // Meanwhile: 20 inputs and three desired changes.
    for (let n = 1; n <= 20; n++) await inject(n);
    await updateDesired(operator, deviceId, moduleId, { threshold: 20 });
    await updateDesired(operator, deviceId, moduleId, { mode: null });
    const latest = await updateDesired(operator, deviceId, moduleId, { threshold: 30, extra: { nested: 1 } });
    expect(latest.version).toBe(4);
    expect(inputs.items).toEqual([0]);

    proxy.heal();
    await statuses.until((all) => all.slice(1).some((s) => s.state === 'connected'), 10_000, 'the reconnection');
    expect(await inputs.take(21, 10_000, 'the 20 queued inputs')).toEqual(Array.from({ length: 21 }, (_, n) => n));
    const catchUp = await desired.find((c) => c.version === 4, 10_000, 'the catch-up patch');
    expect(catchUp.patch).toEqual({ threshold: 30, mode: null, extra: { nested: 1 } });
    expect(catchUp.desired).toEqual({ threshold: 30, extra: { nested: 1 } });
    // One patch from version 1 to 4: the versions in between were never seen and are not replayed.
    expect(desired.items.map((c) => c.version)).toEqual([1, 4]);
    expect(client.desired()).toEqual({ version: 4, properties: { threshold: 30, extra: { nested: 1 } } });
    await presence.until(
      (all) => all.at(-1)?.state === 'online' && all.some((p) => p?.state === 'offline'),
      10_000,
      'the module to be online again',
    );
    expect(client.stats()).toMatchObject({ reconnects: 1, processed: 21, redelivered: 0 });
    expect(statuses.items.map((s) => s.state).slice(0, 3)).toEqual(['connected', 'disconnected', 'reconnecting']);
  });

  it('after a graceful close: a new client with the same identity gets the queued inputs and the latest desired', async () => {
    const deviceId = unique('dev');
    const moduleId = 'counter';
    const operator = await operatorFor(deviceId);
    const inject = injector(operator, deviceId, moduleId);
    await updateDesired(operator, deviceId, moduleId, { threshold: 10 });
    const transport = transportFor(broker().url);

    const before = await modules.connect(Counter, { deviceId, moduleId, transport });
    await before.client.onInput('in', () => undefined);
    await before.client.close();

    for (let n = 0; n < 10; n++) await inject(n);
    await updateDesired(operator, deviceId, moduleId, { threshold: 15, mode: 'b' });
    await updateDesired(operator, deviceId, moduleId, { threshold: 25 });

    const after = await modules.connect(Counter, { deviceId, moduleId, transport });
    const desired = new Inbox<DesiredCall>();
    await after.client.onDesired((d, patch, version) => desired.push({ desired: d, patch, version }));
    expect(desired.items).toEqual([
      { desired: { threshold: 25, mode: 'b' }, patch: { threshold: 25, mode: 'b' }, version: 3 },
    ]);
    const inputs = new Inbox<number>();
    await after.client.onInput('in', (message) => inputs.push(message.body.n));
    expect(await inputs.take(10, 10_000, 'the 10 queued inputs')).toEqual(Array.from({ length: 10 }, (_, n) => n));
  });

  it('with a backlog larger than the broker’s in-flight window: connects, then drains it all', async () => {
    // The broker sends at most max_inflight_messages (1000 here; Mosquitto's default is 20) unacknowledged messages
    // to a client. A returning module holds that many inputs unacknowledged until its handler is registered — which
    // happens only after connect() has read its twin and route table. Those reads must not queue behind the inputs.
    const deviceId = unique('dev');
    const moduleId = 'counter';
    const backlog = 1_500;
    const operator = await operatorFor(deviceId);
    const transport = transportFor(broker().url);
    const before = await modules.connect(Counter, { deviceId, moduleId, transport });
    await before.client.onInput('in', () => undefined);
    await before.client.close();

    const sent = Array.from({ length: backlog }, (_, n) => n);
    const target = { deviceId, moduleId, input: 'in' };
    for (let i = 0; i < backlog; i += 100) {
      await Promise.all(
        sent
          .slice(i, i + 100)
          .map((n) =>
            injectMessage(operator, systemClock, target, jsonBytes({ n }), { contentType: 'application/json' }),
          ),
      );
    }
    await updateDesired(operator, deviceId, moduleId, { threshold: 99 });

    const after = await modules.connect(Counter, { deviceId, moduleId, transport, connectTimeoutInMs: 10_000 });
    expect(after.client.desired()).toEqual({ version: 1, properties: { threshold: 99 } });
    const inputs = new Set<number>();
    const all = new Inbox<number>();
    await after.client.onInput('in', (message) => {
      inputs.add(message.body.n);
      all.push(message.body.n);
    });
    await all.until(() => inputs.size === backlog, 20_000, `all ${backlog} queued inputs`);
    // While the backlog drains, the module can still read its twin (the same kind of read connect() makes).
    expect((await after.client.getTwin()).desired.version).toBe(1);
  });
});
