// Type tests: names, bodies, documents and payloads are typed from the contract; mistakes do not compile.
import { describe, expectTypeOf, test } from 'vitest';
import { z } from 'zod';
import { json } from '../codecs/codec.js';
import { typed } from '../codecs/schema.js';
import { defineModule, method, type untypedModule } from './contract.js';
import type { InboundMessage, MethodContext, MethodResult, ModuleClient, TwinSection } from './types.js';

interface Telemetry {
  temperature: number;
  unit: 'C' | 'F';
}
const Settings = z.object({ threshold: z.number(), mode: z.enum(['fast', 'slow']).optional() });

const Filter = defineModule({
  inputs: { telemetry: json<Telemetry>(), checked: json(z.object({ id: z.string() })) },
  outputs: { alerts: json<{ level: number }>() },
  desired: Settings,
  reported: typed<{ lastAlert: string; count: number }>(),
  methods: { reset: method(typed<{ hard: boolean }>(), typed<{ ok: boolean }>()) },
});
declare const client: ModuleClient<typeof Filter>;

describe('inputs', () => {
  test('handler parameter types are inferred from the codec (and from a schema)', () => {
    void client.onInput('telemetry', (msg) => {
      expectTypeOf(msg).toEqualTypeOf<InboundMessage<Telemetry>>();
      expectTypeOf(msg.body.temperature).toBeNumber();
    });
    void client.onInput('checked', (msg) => {
      expectTypeOf(msg.body).toEqualTypeOf<{ id: string }>();
    });
  });
  test('an unknown input does not compile', () => {
    // @ts-expect-error 'telemetri' is not an input
    void client.onInput('telemetri', () => undefined);
  });
  test('message iterators are typed too', () => {
    expectTypeOf(client.messages('telemetry')).toEqualTypeOf<AsyncIterableIterator<InboundMessage<Telemetry>>>();
  });
});

describe('outputs', () => {
  test('send takes the output body type', () => {
    void client.send('alerts', { level: 3 });
  });
  test('a wrong output name does not compile', () => {
    // @ts-expect-error 'alert' is not an output
    void client.send('alert', { level: 3 });
  });
  test('a wrong body type does not compile', () => {
    // @ts-expect-error level must be a number
    void client.send('alerts', { level: 'high' });
    // @ts-expect-error missing level
    void client.send('alerts', {});
  });
  test('an input name is not an output', () => {
    // @ts-expect-error telemetry is an input
    void client.send('telemetry', { temperature: 1, unit: 'C' });
  });
});

describe('twin', () => {
  test('desired handlers get the schema output type, patches and versions', () => {
    void client.onDesired((desired, patch, version) => {
      expectTypeOf(desired).toEqualTypeOf<{ threshold: number; mode?: 'fast' | 'slow' | undefined }>();
      expectTypeOf(patch.threshold).toEqualTypeOf<number | null | undefined>();
      expectTypeOf(version).toBeNumber();
    });
    expectTypeOf(client.desired()).toEqualTypeOf<
      TwinSection<{ threshold: number; mode?: 'fast' | 'slow' | undefined }>
    >();
  });
  test('report takes a merge patch of the reported type', () => {
    void client.report({ count: 1 });
    void client.report({ lastAlert: null });
    // @ts-expect-error count must be a number
    void client.report({ count: 'one' });
    // @ts-expect-error unknown reported property
    void client.report({ other: 1 });
  });
});

describe('methods', () => {
  test('handler request, context and response are typed', () => {
    void client.handle('reset', (req, ctx) => {
      expectTypeOf(req).toEqualTypeOf<{ hard: boolean }>();
      expectTypeOf(ctx).toEqualTypeOf<MethodContext>();
      return { ok: req.hard };
    });
    void client.handle('reset', () => ({ status: 202, payload: { ok: true } }));
  });
  test('a wrong response payload does not compile', () => {
    // @ts-expect-error ok must be a boolean
    void client.handle('reset', () => ({ ok: 'yes' }));
  });
  test('invoke is typed by the target contract', async () => {
    const res = await client.invoke(Filter, 'other-filter', 'reset', { hard: true });
    expectTypeOf(res).toEqualTypeOf<MethodResult<{ ok: boolean }>>();
    if (res.ok) expectTypeOf(res.payload).toEqualTypeOf<{ ok: boolean }>();
    // @ts-expect-error wrong method payload
    void client.invoke(Filter, 'other-filter', 'reset', { hard: 'yes' });
    // @ts-expect-error unknown method
    void client.invoke(Filter, 'other-filter', 'restart', {});
  });
});

describe('untyped modules', () => {
  test('any names; bodies are bytes; payloads unknown', () => {
    const raw = {} as ModuleClient<typeof untypedModule>;
    void raw.onInput('anything', (msg) => {
      expectTypeOf(msg.body).toEqualTypeOf<Uint8Array>();
    });
    void raw.send('whatever', new Uint8Array());
    // @ts-expect-error bodies are bytes
    void raw.send('whatever', { a: 1 });
  });
});
