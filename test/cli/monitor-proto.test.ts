// `edgekit monitor --proto <file>:<type>` on the memory broker: protobuf bodies decoded by the given message type,
// with the readable and the JSON output, and what it says of a body that is no such message.
import { fileURLToPath } from 'node:url';
import { afterEach, expect, test } from 'vitest';
import { readings } from '../../examples/protobuf/module.js';
import { connect, defineModule, type ModuleClient, untypedModule } from '../../src/index.js';
import { deployRoutes } from '../../src/service/operations.js';
import { memory } from '../../src/transports/memory/index.js';
import { cli, cliInBackground } from './scenarios.js';

const PROTO = fileURLToPath(new URL('../../examples/protobuf/reading.proto', import.meta.url));
const Sensor = defineModule({ outputs: { reading: readings } });
const closing: ModuleClient[] = [];
afterEach(async () => {
  await Promise.all(closing.splice(0).map((c) => c.close()));
});

/** Routes everything the device's modules send to `$upstream`, so the monitor sees it. */
async function routeUp(deviceId: string): Promise<void> {
  const operator = await memory().connect({ clientId: `${deviceId}/operator` });
  try {
    await deployRoutes(operator, deviceId, { up: 'FROM /messages/* INTO $upstream' });
  } finally {
    await operator.close();
  }
}

async function watchOne(deviceId: string, extra: readonly string[]) {
  const run = cliInBackground(['monitor', deviceId, '--broker', 'memory:', '--count', '1', ...extra]);
  await run.err.until((lines) => lines.some((l) => l.startsWith('watching')), 5_000, 'the monitor to start');
  return run;
}

test('decodes protobuf bodies with the given type, in the readable and the JSON output', async () => {
  const deviceId = 'proto-monitor';
  await routeUp(deviceId);
  const sensor = await connect(Sensor, { deviceId, moduleId: 'sensor', transport: memory() });
  closing.push(sensor);
  const reading = { sensorId: 't1', value: 21.5, unit: 'CELSIUS', seq: '9007199254740993' } as const;

  const text = await watchOne(deviceId, ['--proto', `${PROTO}:edge.Reading`]);
  await sensor.send('reading', reading);
  expect(await text.done).toBe(0);
  expect(text.out.items.join('\n')).toContain(
    '{"sensorId":"t1","value":21.5,"unit":"CELSIUS","seq":"9007199254740993"}',
  );

  const json = await watchOne(deviceId, ['--proto', `${PROTO}:edge.Reading`, '--json']);
  await sensor.send('reading', reading);
  expect(await json.done).toBe(0);
  expect(JSON.parse(json.out.items[0] ?? '')).toMatchObject({ contentType: 'application/x-protobuf', body: reading });

  // Without --proto the body is its size, as before.
  const plain = await watchOne(deviceId, []);
  await sensor.send('reading', reading);
  expect(await plain.done).toBe(0);
  expect(plain.out.items.join('\n')).toMatch(/<\d+ bytes>/);
});

test('a body that is no such message stays bytes and stderr says why; watching goes on', async () => {
  const deviceId = 'proto-monitor-bad';
  await routeUp(deviceId);
  const raw = await connect(untypedModule, { deviceId, moduleId: 'raw', transport: memory() });
  closing.push(raw);
  const run = await watchOne(deviceId, ['--proto', `${PROTO}:edge.Reading`]);
  await raw.send('out', new Uint8Array([0x0a, 0xff, 0xff]), { contentType: 'application/x-protobuf' });
  expect(await run.done).toBe(0);
  expect(run.out.items.join('\n')).toContain('<3 bytes>');
  expect(run.err.items.join('\n')).toMatch(/edgekit monitor: message .*: body is not a valid edge\.Reading/);
});

test.each([
  [['--proto', 'reading.proto'], /--proto must be <file.proto>:<message type>/],
  [['--proto', 'reading.proto:'], /--proto must be/],
])('%j is a usage error', async (args, message) => {
  const run = await cli(['monitor', 'gw', '--broker', 'memory:', ...args]);
  expect(run.code).toBe(2);
  expect(run.stderr).toMatch(message);
});

test('a .proto or type that cannot be loaded fails with exit 1', async () => {
  const missing = await cli(['monitor', 'gw', '--broker', 'memory:', '--proto', '/nonexistent/x.proto:edge.Reading']);
  expect(missing.code).toBe(1);
  expect(missing.stderr).toMatch(/cannot load \/nonexistent\/x.proto/);
  const type = await cli(['monitor', 'gw', '--broker', 'memory:', '--proto', `${PROTO}:edge.Nope`]);
  expect(type.code).toBe(1);
  expect(type.stderr).toMatch(/has no message type edge.Nope/);
});
