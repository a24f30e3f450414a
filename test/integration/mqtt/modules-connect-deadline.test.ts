/**
 * `connectTimeoutInMs` bounds the whole start of a module, on a real Mosquitto behind a proxy that goes silent right
 * after the broker's CONNACK (a black-holing network: nothing is closed, nothing more arrives). `connect` must give
 * up within its budget — not wait for the keep-alive to notice the dead connection.
 */
import { describe, expect, it } from 'vitest';
import { isEdgeKitError } from '../../../src/errors.js';
import { connect, defineModule, json } from '../../../src/index.js';
import { transportFor, unique, useMosquitto, useProxies } from './support/fixtures.js';

const broker = useMosquitto();
const proxies = useProxies();

const Module = defineModule({ inputs: { in: json<number>() } });

describe('the start of a module', () => {
  it('gives up within connectTimeoutInMs when the connection goes silent after CONNACK', {
    timeout: 30_000,
  }, async () => {
    const proxy = await proxies.start(broker().port);
    proxy.stall({ afterChunksFromServer: 1 });
    const budget = 1_500;
    const started = Date.now();
    const outcome = await connect(Module, {
      deviceId: unique('dev'),
      moduleId: 'm',
      // Keep-alive 8 s: without a deadline of its own, the start ends only when it notices the dead connection (12 s).
      transport: transportFor(`mqtt://127.0.0.1:${proxy.port}`, { keepaliveInSeconds: 8 }),
      connectTimeoutInMs: budget,
      reconnect: { initialDelayInMs: 60_000, maxDelayInMs: 60_000, jitter: 0 },
      onError: () => undefined,
    }).then(
      async (client) => {
        await client.close({ drainTimeoutInMs: 0 });
        return new Error('connected through a silent connection');
      },
      (error: unknown) => error,
    );
    const took = Date.now() - started;
    expect(isEdgeKitError(outcome)).toBe(true);
    expect(took).toBeLessThan(budget + 1_500);
  });
});
