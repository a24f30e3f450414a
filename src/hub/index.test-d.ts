import { expectTypeOf, test } from 'vitest';
import type { EdgeKitError } from '../errors.js';
import type { Transport } from '../transport.js';
import { type Hub, type HubOptions, type HubStats, startHub } from './index.js';

declare const transport: Transport;
const tls = { cert: '-----BEGIN CERTIFICATE-----', key: '-----BEGIN PRIVATE KEY-----' };

test('startHub takes one transport or one per module (sync or async), keys as a map or a function', () => {
  expectTypeOf(startHub({ deviceId: 'gw', keys: {}, tls })).resolves.toEqualTypeOf<Hub>();
  expectTypeOf(startHub({ deviceId: 'gw', keys: {}, tls, transport })).resolves.toEqualTypeOf<Hub>();
  expectTypeOf(
    startHub({ deviceId: 'gw', keys: () => 'a2V5', tls, transport: async () => transport }),
  ).resolves.toEqualTypeOf<Hub>();
  expectTypeOf<HubOptions['onError']>().toEqualTypeOf<((error: EdgeKitError) => void) | undefined>();
  // @ts-expect-error keys are base64 strings
  void startHub({ deviceId: 'gw', keys: { a: 1 }, tls });
  // @ts-expect-error a TLS certificate and key are required
  void startHub({ deviceId: 'gw', keys: {}, tls: { cert: '' } });
  // @ts-expect-error the transport is a Transport, not a URL
  void startHub({ deviceId: 'gw', keys: {}, tls, transport: 'mqtt://127.0.0.1' });
});

test('a hub reports its ports, sessions and counters', () => {
  const hub = {} as Hub;
  expectTypeOf(hub.mqttPort).toBeNumber();
  expectTypeOf(hub.workloadSocket).toEqualTypeOf<string | undefined>();
  expectTypeOf(hub.connected()).toEqualTypeOf<string[]>();
  expectTypeOf(hub.stats()).toEqualTypeOf<HubStats>();
  expectTypeOf(hub.stats().outputsRefused).toBeNumber();
  expectTypeOf(hub.close()).resolves.toBeVoid();
});
