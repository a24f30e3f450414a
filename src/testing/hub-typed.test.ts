import { describe, expect, test } from 'vitest';
import { bytes, type Codec, json } from '../codecs/codec.js';
import { typed } from '../codecs/schema.js';
import { defineModule } from '../core/contract.js';
import { isEdgeKitError } from '../errors.js';
import { createTestHub } from './hub.js';
import { ManualClock } from './manual-clock.js';

/** A codec of its own, to see the hub use a contract's codecs rather than JSON: `n` as one byte. */
const byteNumber: Codec<{ n: number }> = {
  contentType: 'application/x-byte',
  encode: ({ n }) => new Uint8Array([n]),
  decode: (data) => ({ n: data[0] ?? 0 }),
};
const Doubler = defineModule({
  inputs: { readings: byteNumber },
  outputs: { doubled: byteNumber, raw: bytes() },
  desired: typed<{ factor?: number }>(),
});

describe('a test hub that knows the modules', () => {
  test('encodes what it sends and decodes what it collects with the contract codecs', async () => {
    await using hub = await createTestHub({
      modules: { doubler: Doubler },
      routes: { up: 'FROM /messages/modules/doubler/outputs/doubled INTO $upstream' },
    });
    const doubler = await hub.connect(Doubler, { moduleId: 'doubler' });
    await doubler.onInput('readings', async ({ body }) => {
      await doubler.send('doubled', { n: body.n * 2 });
    });
    await hub.send('doubler', 'readings', { n: 21 });
    const out = await hub.output('doubler', 'doubled').next();
    expect(out.body).toEqual({ n: 42 });
    expect(out.bytes).toEqual(new Uint8Array([42]));
    expect(out.contentType).toBe('application/x-byte');
    expect((await hub.upstream().next()).body).toEqual({ n: 42 });
    // Bytes go as they are.
    await hub.send('doubler', 'readings', new Uint8Array([5]));
    expect((await hub.output('doubler', 'doubled').next()).body).toEqual({ n: 10 });
  });

  test('a module, input or output a contract does not have fails at once, naming what there is', async () => {
    await using hub = await createTestHub({ modules: { doubler: Doubler } });
    const at = (run: () => unknown) => expect(run).toThrow(TypeError);
    await expect(hub.send('doublr' as never, 'readings' as never, { n: 1 } as never)).rejects.toThrow(
      'send: the device has no module "doublr" (modules: doubler)',
    );
    await expect(hub.send('doubler', 'readingz' as never, { n: 1 } as never)).rejects.toThrow(
      'send: module doubler has no input "readingz" (inputs: readings)',
    );
    at(() => hub.output('doubler', 'doubld' as never));
    expect(() => hub.output('doubler', 'doubld' as never)).toThrow('has no output "doubld" (outputs: doubled, raw)');
    await expect(hub.setDesired('doublr' as never, { factor: 2 })).rejects.toThrow(/no module "doublr"/);
    at(() => hub.deadLetters('doublr' as never));
    await expect(hub.connect(Doubler, { moduleId: 'other' })).rejects.toThrow(
      `connect: "other" is not one of the hub's modules (doubler)`,
    );
  });

  test('a deployment manifest declares the modules too; without either, any name goes', async () => {
    const manifest = {
      modulesContent: {
        $edgeAgent: { 'properties.desired': { modules: { sensor: {}, filter: {} } } },
        $edgeHub: { 'properties.desired': { schemaVersion: '1.1', routes: {} } },
      },
    };
    await using declared = await createTestHub({ manifest });
    await expect(declared.send('filtr', 'in', {})).rejects.toThrow('(modules: sensor, filter)');
    await declared.send('filter', 'anything', { a: 1 });

    await using open = await createTestHub();
    await open.send('late', 'in', { a: 1 });
    // A module connected through the hub is known from then on: its contract checks names.
    await open.connect(Doubler, { moduleId: 'doubler' });
    await expect(open.send('doubler', 'nope', {})).rejects.toThrow(/has no input "nope"/);
  });

  test('the contract codec refusing a body rejects the send, nothing is published', async () => {
    const Strict = defineModule({ inputs: { in: json<{ n: number }>() } });
    await using hub = await createTestHub({ modules: { strict: Strict } });
    const circular: { n: number; self?: unknown } = { n: 1 };
    circular.self = circular;
    const error = await hub.send('strict', 'in', circular).catch((e: unknown) => e);
    expect(isEdgeKitError(error, 'encode-failed') || error instanceof TypeError).toBe(true);
  });
});

describe('waitUntil', () => {
  test('resolves to the first truthy value; throws and falsy values are "not yet"', async () => {
    await using hub = await createTestHub();
    let tries = 0;
    const value = await hub.waitUntil(() => {
      tries += 1;
      if (tries < 3) throw new Error('not yet');
      return tries === 4 ? { tries } : 0;
    });
    expect(value).toEqual({ tries: 4 });
  });

  test('times out with the last error as the cause', async () => {
    await using hub = await createTestHub();
    const error = await hub
      .waitUntil(
        () => {
          throw new Error('threshold is 25, want 30');
        },
        { timeoutInMs: 30 },
      )
      .catch((e: unknown) => e);
    expect(isEdgeKitError(error, 'timeout')).toBe(true);
    expect((error as Error).message).toMatch(/did not hold within 30 ms \(last: threshold is 25, want 30\)/);
    expect((error as Error).cause).toBeInstanceOf(Error);
    await expect(hub.waitUntil(() => false, { timeoutInMs: 20 })).rejects.toThrow(/it stayed false/);
    await expect(hub.waitUntil('x' as never)).rejects.toThrow(TypeError);
  });

  test('moves a manual clock, so retries due meanwhile run', async () => {
    const clock = new ManualClock();
    await using hub = await createTestHub({ clock });
    const start = clock.now();
    await hub.waitUntil(() => clock.now() - start >= 1_000);
    expect(clock.now() - start).toBeGreaterThanOrEqual(1_000);
  });
});
