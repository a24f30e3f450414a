import { createTestHub } from 'edgekit/testing';
import { expect, test } from 'vitest';
import { Averager, type Reading, readings, type Summary, startAverager, summaries } from './module.js';

test('averages readings in both units and sends a summary with the last 64-bit sequence number', async () => {
  await using hub = await createTestHub({
    routes: { up: 'FROM /messages/modules/averager/outputs/summary INTO $upstream' },
  });
  await startAverager(await hub.connect(Averager, { moduleId: 'averager' }));
  const send = (r: Reading) => hub.send('averager', 'readings', readings.encode(r));

  await send({ sensorId: 't1', value: 20, unit: 'CELSIUS', seq: '9007199254740993' });
  await send({ sensorId: 't1', value: 77, unit: 'FAHRENHEIT', seq: '9007199254740994' });
  await send({ sensorId: 't2', value: 30, unit: 'CELSIUS', seq: '9007199254740995' });

  const sent = await hub.upstream<Uint8Array>().next();
  const summary: Summary = await summaries.decode(sent.body);
  expect(summary).toEqual({ count: 3, meanCelsius: 25, lastSeq: '9007199254740995' });
});

test('a reading with a misspelt field is refused when it is encoded, not silently dropped', () => {
  expect(() =>
    readings.encode({ sensorId: 't1', value: 20, unit: 'CELSIUS', seq: '1', untis: 'x' } as Reading),
  ).toThrow(/edge.Reading: it has no field untis/);
});

test('bytes that are no Reading are dead-lettered, and the averager goes on', async () => {
  await using hub = await createTestHub();
  await startAverager(await hub.connect(Averager, { moduleId: 'averager' }), 1);
  await hub.send('averager', 'readings', new Uint8Array([0x0a, 0xff, 0xff]));
  const dead = await hub.deadLetters('averager').next();
  expect(dead.deadLetter).toMatchObject({ reason: 'decode-failed', input: 'readings' });
  await hub.send('averager', 'readings', readings.encode({ sensorId: 't', value: 1, unit: 'CELSIUS', seq: '7' }));
  const next = await hub.output<Uint8Array>('averager', 'summary').next();
  expect(await summaries.decode(next.body)).toEqual({ count: 1, meanCelsius: 1, lastSeq: '7' });
});
