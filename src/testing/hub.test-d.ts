import { describe, expectTypeOf, test } from 'vitest';
import { json } from '../codecs/codec.js';
import { defineModule } from '../core/contract.js';
import { createTestHub, type MessageCollector } from './index.js';

interface Reading {
  t: number;
}
const Filter = defineModule({ inputs: { input1: json<Reading>() }, outputs: { alerts: json<{ level: string }>() } });
const Sensor = defineModule({ outputs: { temperature: json<Reading>() } });

describe('the test hub types', () => {
  test('with modules: only their ids, inputs and outputs, bodies typed from the contracts', async () => {
    const hub = await createTestHub({ modules: { filter: Filter, sensor: Sensor } });
    await hub.send('filter', 'input1', { t: 1 });
    await hub.send('filter', 'input1', new Uint8Array([1]));
    // @ts-expect-error a module the hub does not have
    await hub.send('filtr', 'input1', { t: 1 });
    // @ts-expect-error an input the contract does not declare
    await hub.send('filter', 'inputl', { t: 1 });
    // @ts-expect-error a body of the wrong shape
    await hub.send('filter', 'input1', { temperature: 1 });
    // @ts-expect-error sensor has no inputs
    await hub.send('sensor', 'input1', { t: 1 });
    expectTypeOf(hub.output('filter', 'alerts')).toEqualTypeOf<MessageCollector<{ level: string }>>();
    expectTypeOf(hub.output('sensor', 'temperature')).toEqualTypeOf<MessageCollector<Reading>>();
    // @ts-expect-error an output the contract does not declare
    hub.output('sensor', 'temprature');
    // @ts-expect-error a module the hub does not have
    await hub.setDesired('sensr', {});
  });

  test('without modules: any names, bodies unknown, a body type can be given', async () => {
    const hub = await createTestHub();
    await hub.send('anything', 'goes', { a: 1 });
    expectTypeOf(hub.output('a', 'b')).toEqualTypeOf<MessageCollector<unknown>>();
    expectTypeOf(hub.output<Reading>('a', 'b')).toEqualTypeOf<MessageCollector<Reading>>();
  });

  test('waitUntil resolves to the truthy value', async () => {
    const hub = await createTestHub();
    expectTypeOf(await hub.waitUntil(() => ({ ok: true }) as { ok: boolean } | undefined)).toEqualTypeOf<{
      ok: boolean;
    }>();
  });
});
