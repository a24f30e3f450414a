import { createTestHub } from 'edgekit/testing';
import { expect, test } from 'vitest';
import type { Reading } from '../temperature-sensor/module.js';
import { Filter, startFilter } from './module.js';

const reading = (temperature: number): Reading => ({
  machine: { temperature, pressure: 1 },
  ambient: { temperature: 21, humidity: 25 },
  timeCreated: '2026-01-01T00:00:00.000Z',
});

test('forwards readings above the threshold to $upstream, marked as alerts', async () => {
  await using hub = await createTestHub({
    routes: { up: 'FROM /messages/modules/filter/outputs/output1 INTO $upstream' },
  });
  await startFilter(await hub.connect(Filter, { moduleId: 'filter' }));

  await hub.send('filter', 'input1', reading(20));
  await hub.send('filter', 'input1', reading(30));

  const alert = await hub.upstream<Reading>().next();
  expect(alert.body.machine.temperature).toBe(30);
  expect(alert.properties).toEqual({ MessageType: 'Alert' });
  expect(hub.output('filter', 'output1').messages).toHaveLength(1);
});

test('takes TemperatureThreshold from desired properties and reports it back', async () => {
  await using hub = await createTestHub();
  await startFilter(await hub.connect(Filter, { moduleId: 'filter' }));

  await hub.setDesired('filter', { TemperatureThreshold: 50 });
  await hub.waitForReported('filter', (r) => r.TemperatureThreshold === 50);
  await hub.send('filter', 'input1', reading(40));
  await hub.send('filter', 'input1', reading(60));

  const forwarded = await hub.output<Reading>('filter', 'output1').next();
  expect(forwarded.body.machine.temperature).toBe(60);
});

test('a reading that is not valid JSON is dead-lettered and the filter keeps going', async () => {
  await using hub = await createTestHub();
  const client = await hub.connect(Filter, { moduleId: 'filter' });
  await startFilter(client);

  await hub.send('filter', 'input1', new TextEncoder().encode('{broken'), { contentType: 'application/json' });
  await hub.send('filter', 'input1', reading(99));

  expect((await hub.output<Reading>('filter', 'output1').next()).body.machine.temperature).toBe(99);
  expect((await hub.deadLetters('filter').next()).deadLetter?.reason).toBe('decode-failed');
  expect(client.stats().deadLettered).toBe(1);
});
