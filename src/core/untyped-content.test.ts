// An untyped module passes bytes on with the content type they came with (the Azure IoT Edge hub relies on it); a
// contract's outputs take theirs from the codec, so giving one there is a mistake caught at the call.
import { afterEach, expect, it } from 'vitest';
import { json } from '../codecs/codec.js';
import { connect } from '../connect.js';
import { MemoryBroker, memory } from '../transports/memory/index.js';
import { defineModule, untypedModule } from './contract.js';
import type { InboundMessage, ModuleClient } from './types.js';

const broker = new MemoryBroker();
const open: ModuleClient[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((c) => c.close()));
});

async function pair() {
  const deviceId = `d${Math.random().toString(36).slice(2, 8)}`;
  const { connectService } = await import('../service/client.js');
  const service = await connectService({ transport: memory({ broker }) });
  await service.applyDeployment(deviceId, {
    modulesContent: {
      $edgeAgent: { 'properties.desired': { modules: { a: {}, b: {} } } },
      $edgeHub: {
        'properties.desired': {
          schemaVersion: '1.1',
          routes: { r: 'FROM /messages/modules/a/outputs/* INTO BrokeredEndpoint("/modules/b/inputs/in")' },
        },
      },
    },
  });
  await service.close();
  const a = await connect(untypedModule, { deviceId, moduleId: 'a', transport: memory({ broker }) });
  const b = await connect(untypedModule, { deviceId, moduleId: 'b', transport: memory({ broker }) });
  open.push(a, b);
  return { a, b };
}

it('carries the content type and encoding an untyped send gives', async () => {
  const { a, b } = await pair();
  const received = new Promise<InboundMessage<Uint8Array>>((resolve) => {
    void b.onInput('in', (message) => resolve(message));
  });
  await a.send('out', new TextEncoder().encode('{"t":1}'), {
    contentType: 'application/json',
    contentEncoding: 'utf-8',
  });
  const message = await received;
  expect(message).toMatchObject({ contentType: 'application/json', contentEncoding: 'utf-8' });
  expect(new TextDecoder().decode(message.body)).toBe('{"t":1}');
});

it('refuses a content type on a contract’s output, and an invalid one anywhere', async () => {
  const { a } = await pair();
  await expect(a.send('out', new Uint8Array(1), { contentType: '' })).rejects.toThrow(RangeError);
  await expect(a.send('out', new Uint8Array(1), { contentType: 'text/plain\n' })).rejects.toThrow(RangeError);
  const Typed = defineModule({ outputs: { out: json<{ t: number }>() } });
  const typed = await connect(Typed, { deviceId: a.deviceId, moduleId: 'c', transport: memory({ broker }) });
  open.push(typed);
  await expect(typed.send('out', { t: 1 }, { contentType: 'text/plain' })).rejects.toThrow(
    /contentType and contentEncoding are for untypedModule/,
  );
});
