/**
 * A silent partition: the proxy stops forwarding in both directions and closes nothing, as a black-holing NAT or
 * firewall does. `close()` must still finish within its drain timeout — dropping the socket when the broker does not
 * answer — and leave nothing that keeps the process alive; with keep-alives or heartbeats on, the client notices
 * the dead link by itself and reconnects once the partition ends.
 */
import { describe, expect, it } from 'vitest';
import { connect, defineModule, json } from '../../src/index.js';
import { useBrokers, useProxies } from './support/brokers.js';
import { sendInput, uniqueDevice, useFaultModules, useOperators } from './support/modules.js';

const brokers = useBrokers();
const proxies = useProxies();
const modules = useFaultModules();
const operators = useOperators();

const Module = defineModule({ inputs: { in: json<{ n: number }>() }, outputs: { out: json<{ n: number }>() } });

/** Keep-alive / heartbeat off: nothing but close() itself can end the wait. */
const NO_KEEPALIVE = { mqtt: { keepaliveInSeconds: 0 }, amqp: { heartbeatInSeconds: 0 } } as const;
/** Short keep-alive / heartbeat, so a dead link is noticed within seconds. */
const QUICK_KEEPALIVE = { mqtt: { keepaliveInSeconds: 2 }, amqp: { heartbeatInSeconds: 2 } } as const;

describe.each(brokers.map((broker) => [broker.name, broker] as const))('%s', (_, broker) => {
  it('a module process told to stop during a partition closes within its drain timeout and exits', async () => {
    const proxy = await proxies.start(broker.port());
    const module = modules.start({
      deviceId: uniqueDevice('stop'),
      moduleId: 'm',
      url: broker.urlVia(proxy.port),
      env: { DRAIN_TIMEOUT: '1500', BUSY: '1' },
    });
    await module.event((e) => e.event === 'ready', 20_000, 'the module to be ready');
    proxy.stall();
    const stopped = Date.now();
    const exit = await module.process.stop('SIGTERM', 10_000);
    const took = Date.now() - stopped;
    expect(exit).toEqual({ code: 0, signal: null });
    expect(module.events().at(-1)).toEqual({ event: 'closed' });
    expect(module.process.stderr()).toBe('');
    // The budget, plus the time a process takes to exit.
    expect(took).toBeLessThan(1_500 + 1_500);
  });

  it('close() with keep-alive off still finishes within its drain timeout during a partition', async () => {
    const proxy = await proxies.start(broker.port());
    const client = await connect(Module, {
      deviceId: uniqueDevice('quiet'),
      moduleId: 'm',
      transport: broker.transportVia(proxy.port, NO_KEEPALIVE[broker.name]),
      onError: () => undefined,
    });
    // Work in flight when the link goes silent: a report that will never be answered.
    proxy.stall();
    const pending = client.report({ at: 1 }, { timeoutInMs: 60_000 }).catch((error: unknown) => error);
    const started = Date.now();
    await client.close({ drainTimeoutInMs: 1_000 });
    expect(Date.now() - started).toBeLessThan(1_000 + 500);
    expect(client.state).toEqual({ state: 'closed' });
    expect(await pending).toBeInstanceOf(Error);
  });

  it('a dead link is noticed by the keep-alive: disconnected, then connected again once the partition ends', async () => {
    const proxy = await proxies.start(broker.port());
    const deviceId = uniqueDevice('noticed');
    const client = await connect(Module, {
      deviceId,
      moduleId: 'm',
      transport: broker.transportVia(proxy.port, QUICK_KEEPALIVE[broker.name]),
      reconnect: { initialDelayInMs: 50, maxDelayInMs: 500 },
      onError: () => undefined,
    });
    try {
      const statuses = client.status();
      await statuses.next(); // connected
      proxy.stall();
      const lost = await statuses.next();
      expect(lost.value?.state).toBe('disconnected');
      proxy.cut(); // what the partition held is gone; new connections go through
      for (;;) {
        const next = await statuses.next();
        if (next.value?.state === 'connected') break;
      }
      const inputs: number[] = [];
      await client.onInput('in', (message) => {
        inputs.push(message.body.n);
      });
      const operator = await operators.open(broker.transportVia(broker.port()));
      await sendInput(operator, deviceId, 'm', 5);
      for (const deadline = Date.now() + 10_000; !inputs.includes(5); ) {
        if (Date.now() > deadline) throw new Error('the input did not arrive after the partition');
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    } finally {
      await client.close({ drainTimeoutInMs: 2_000 });
    }
  });
});
