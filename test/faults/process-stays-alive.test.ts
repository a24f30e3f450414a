/**
 * A module process stays alive while its client is open or reconnecting: through a link outage, a broker restart,
 * and a start while the broker is down — and when it finally gives up at the start, it says so and exits non-zero
 * instead of vanishing with code 0. Module processes are configured only by their environment, as in a container.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { systemClock } from '../../src/clock.js';
import { routesFromManifest } from '../../src/routing/index.js';
import { deployRoutes, injectMessage } from '../../src/service/operations.js';
import { REPO_ROOT } from '../integration/mqtt/fixtures/child-process.js';
import { collectEnvelopes } from '../integration/mqtt/fixtures/module-clients.js';
import { useBrokers, useProxies } from './support/brokers.js';
import { sendInput, uniqueDevice, useFaultModules, useOperators } from './support/modules.js';

const brokers = useBrokers();
const proxies = useProxies();
const modules = useFaultModules();
const operators = useOperators();

describe.each(brokers.map((broker) => [broker.name, broker] as const))('%s', (_, broker) => {
  it('stays alive through a link outage, reconnects and processes later input', async () => {
    const proxy = await proxies.start(broker.port());
    const deviceId = uniqueDevice('outage');
    const module = modules.start({ deviceId, moduleId: 'm', url: broker.urlVia(proxy.port) });
    await module.event((e) => e.event === 'ready', 20_000, 'the module to be ready');

    proxy.cut({ refuse: true });
    // Many refused attempts, spread over more than a second: a process held only by its socket is long gone by now.
    await module.event(
      (e) => e.event === 'status' && e.state === 'reconnecting' && module.events().filter(isReconnecting).length >= 6,
      20_000,
      'six reconnect attempts while the link is down',
    );
    proxy.heal();
    await module.event(
      (e) => e.event === 'status' && e.state === 'connected' && afterOutage(module.events()),
      20_000,
      'connected again',
    );

    const operator = await operators.open(broker.transportVia(broker.port()));
    await sendInput(operator, deviceId, 'm', 7);
    await module.event((e) => e.event === 'input' && e.n === 7, 15_000, 'the input sent after the outage');
    await module.stopCleanly();
  });

  it('stays alive through a broker restart', { timeout: 90_000 }, async () => {
    const deviceId = uniqueDevice('restart');
    const module = modules.start({ deviceId, moduleId: 'm', url: broker.urlVia(broker.port()) });
    await module.event((e) => e.event === 'ready', 20_000, 'the module to be ready');
    await broker.restart();
    await module.event(
      (e) => e.event === 'status' && e.state === 'connected' && afterOutage(module.events()),
      30_000,
      'connected again',
    );
    const operator = await operators.open(broker.transportVia(broker.port()));
    await sendInput(operator, deviceId, 'm', 8);
    await module.event((e) => e.event === 'input' && e.n === 8, 15_000, 'the input sent after the restart');
    await module.stopCleanly();
  });

  it('started while the broker is unreachable: keeps trying until it is reachable', async () => {
    const proxy = await proxies.start(broker.port());
    proxy.cut({ refuse: true });
    const deviceId = uniqueDevice('late');
    const module = modules.start({
      deviceId,
      moduleId: 'm',
      url: broker.urlVia(proxy.port),
      env: { CONNECT_TIMEOUT: '30000' },
    });
    // Attempt after refused attempt, and the process is still there.
    await waitFor(() => proxy.refused >= 5, 15_000, 'five refused connection attempts');
    expect(module.process.lines.items, 'nothing printed: still starting').toEqual([]);
    proxy.heal();
    await module.event((e) => e.event === 'ready', 20_000, 'the module to connect once the broker is reachable');
    await module.stopCleanly();
  });

  it('gives up at connectTimeoutInMs: says why and exits non-zero, never silently with 0', async () => {
    const proxy = await proxies.start(broker.port());
    proxy.cut({ refuse: true });
    const module = modules.start({
      deviceId: uniqueDevice('never'),
      moduleId: 'm',
      url: broker.urlVia(proxy.port),
      env: { CONNECT_TIMEOUT: '1500' },
    });
    const gaveUp = await module.event((e) => e.event === 'gave-up', 20_000, 'the module to give up');
    expect(String(gaveUp.message)).toMatch(/connect|refused|reset/i);
    const exit = await module.process.exited;
    expect(exit.code).not.toBe(0);
  });

  it('the filter example survives a broker restart', { timeout: 90_000 }, async () => {
    const deviceId = uniqueDevice('example');
    const operator = await operators.open(broker.transportVia(broker.port()));
    const manifest = JSON.parse(readFileSync(path.join(REPO_ROOT, 'examples/deployment.json'), 'utf8'));
    await deployRoutes(operator, deviceId, routesFromManifest(manifest));
    const upstream = await collectEnvelopes(operator, `upstream/${deviceId}`);
    const filter = modules.startScript(path.join(REPO_ROOT, 'examples/filter/main.ts'), {
      deviceId,
      moduleId: 'filter',
      url: broker.urlVia(broker.port()),
    });
    await filter.process.line((l) => l === `filter ${deviceId}/filter running`, 20_000, 'the filter to run');
    await operator.close();
    await broker.restart();
    // Still running, and still taking input: a reading over the threshold comes out as an alert on $upstream.
    const after = await operators.open(broker.transportVia(broker.port()));
    const alerts = await collectEnvelopes(after, `upstream/${deviceId}`);
    const reading = { machine: { temperature: 99, pressure: 1 }, ambient: { temperature: 20, humidity: 30 } };
    await injectMessage(
      after,
      systemClock,
      { deviceId, moduleId: 'filter', input: 'input1' },
      new TextEncoder().encode(JSON.stringify(reading)),
      { contentType: 'application/json' },
    );
    const alert = await alerts.find(() => true, 30_000, 'the alert for the reading sent after the restart');
    expect(alert.header.properties).toEqual({ MessageType: 'Alert' });
    expect(upstream.items).toEqual([]);
    const exit = await filter.process.stop('SIGTERM', 20_000);
    expect(exit).toEqual({ code: 0, signal: null });
    expect(filter.process.stderr()).toBe('');
  });
});

const isReconnecting = (e: Record<string, unknown>) => e.event === 'status' && e.state === 'reconnecting';

/** True when the events so far contain a reconnect (a `reconnecting` status followed by `connected`). */
function afterOutage(events: readonly Record<string, unknown>[]): boolean {
  const lost = events.findIndex(
    (e) => e.event === 'status' && (e.state === 'disconnected' || e.state === 'reconnecting'),
  );
  return lost >= 0 && events.slice(lost).some((e) => e.event === 'status' && e.state === 'connected');
}

async function waitFor(condition: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
