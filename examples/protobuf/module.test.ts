import { createTestHub } from 'edgekit/testing';
import { expect, test } from 'vitest';
import { Averager, readings, type Summary, startAverager } from './module.js';

test('averages readings in both units and sends a summary with the last 64-bit sequence number', async () => {
  // Declaring the modules types the hub: it encodes what it sends, and decodes what it collects, with their codecs.
  await using hub = await createTestHub({
    modules: { averager: Averager },
    routes: { up: 'FROM /messages/modules/averager/outputs/summary INTO $upstream' },
  });
  await startAverager(await hub.connect(Averager, { moduleId: 'averager' }));

  await hub.send('averager', 'readings', { sensorId: 't1', value: 20, unit: 'CELSIUS', seq: '9007199254740993' });
  await hub.send('averager', 'readings', { sensorId: 't1', value: 77, unit: 'FAHRENHEIT', seq: '9007199254740994' });
  await hub.send('averager', 'readings', { sensorId: 't2', value: 30, unit: 'CELSIUS', seq: '9007199254740995' });

  const summary = await hub.output('averager', 'summary').next();
  expect(summary.contentType).toBe('application/x-protobuf');
  expect(summary.body).toEqual({ count: 3, meanCelsius: 25, lastSeq: '9007199254740995' } satisfies Summary);
  expect((await hub.upstream<Summary>().next()).body).toEqual(summary.body);
});

test('a reading with a misspelt field is refused when it is encoded, not silently dropped', async () => {
  await using hub = await createTestHub({ modules: { averager: Averager } });
  const misspelt = { sensorId: 't1', value: 20, unit: 'CELSIUS', seq: '1', untis: 'x' } as never;
  await expect(hub.send('averager', 'readings', misspelt)).rejects.toThrow(/edge.Reading: it has no field untis/);
  expect(() => readings.encode(misspelt)).toThrow(/edge.Reading: it has no field untis/);
});

test('bytes that are no Reading are dead-lettered, and the averager goes on', async () => {
  await using hub = await createTestHub({ modules: { averager: Averager } });
  await startAverager(await hub.connect(Averager, { moduleId: 'averager' }), 1);
  await hub.send('averager', 'readings', new Uint8Array([0x0a, 0xff, 0xff]));
  const dead = await hub.deadLetters('averager').next();
  expect(dead.deadLetter).toMatchObject({ reason: 'decode-failed', input: 'readings' });
  await hub.send('averager', 'readings', { sensorId: 't', value: 1, unit: 'CELSIUS', seq: '7' });
  expect((await hub.output('averager', 'summary').next()).body).toEqual({ count: 1, meanCelsius: 1, lastSeq: '7' });
});
