/**
 * A flapping link: every connection is reset a random 1–50 ms after it opens — during the handshake, the twin read,
 * the subscriptions, or just after — hundreds of times, while the module keeps reading its twin and reporting. The
 * process must never crash (no unhandled rejection, no uncaught exception: Node's default ends the process on
 * either, and anything on stderr fails the test), and once the link heals it must end up connected and process
 * later input.
 */
import { describe, expect, it } from 'vitest';
import { useBrokers, useProxies } from './support/brokers.js';
import { sendInput, uniqueDevice, useFaultModules, useOperators } from './support/modules.js';

const brokers = useBrokers();
const proxies = useProxies();
const modules = useFaultModules();
const operators = useOperators();

const RESETS = 300;

describe.each(brokers.map((broker) => [broker.name, broker] as const))('%s', (_, broker) => {
  it(`survives ${RESETS} resets at random 1–50 ms after connect, then connects and processes input`, {
    timeout: 180_000,
  }, async () => {
    const proxy = await proxies.start(broker.port());
    const deviceId = uniqueDevice('flap');
    const module = modules.start({
      deviceId,
      moduleId: 'm',
      url: broker.urlVia(proxy.port),
      // Twin reads and reports in a loop, so resets hit operations in flight; quick reconnects, so resets are many.
      env: { BUSY: '1', MAX_RECONNECT_DELAY: '40' },
    });
    await module.event((e) => e.event === 'ready', 20_000, 'the module to be ready');
    proxy.flap({ minMs: 1, maxMs: 50 });
    const deadline = Date.now() + 150_000;
    while (proxy.flapped < RESETS) {
      if (Date.now() > deadline) throw new Error(`only ${proxy.flapped} resets in time`);
      const exited = await Promise.race([module.process.exited, sleep(200).then(() => undefined)]);
      expect(exited, `the module process ended during the flapping; stderr: ${module.process.stderr()}`).toBe(
        undefined,
      );
    }
    proxy.heal();
    const operator = await operators.open(broker.transportVia(broker.port()));
    await sendInput(operator, deviceId, 'm', 42);
    await module.event((e) => e.event === 'input' && e.n === 42, 30_000, 'the input sent after the flapping');
    expect(module.events().filter((e) => e.event === 'status' && e.state === 'connected').length).toBeGreaterThan(1);
    expect(module.process.stderr()).toBe('');
    await module.stopCleanly();
  });
});

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
