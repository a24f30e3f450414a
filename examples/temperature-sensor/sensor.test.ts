import { createTestHub } from 'edgekit/testing';
import { expect, test } from 'vitest';
import { Machine, type Reading, startSensor, TemperatureSensor } from './module.js';

test('sends readings at the desired SendInterval and reports it', async () => {
  await using hub = await createTestHub();
  await hub.setDesired('sensor', { SendInterval: 0.01 });
  const stop = await startSensor(await hub.connect(TemperatureSensor, { moduleId: 'sensor' }));

  const readings = await hub.output<Reading>('sensor', 'temperatureOutput').waitFor(3);
  stop();
  for (const r of readings) {
    expect(r.body.machine.temperature).toBeGreaterThan(21);
    expect(r.body.ambient.humidity).toBeGreaterThan(20);
  }
  expect((await hub.reported('sensor')).properties).toMatchObject({ SendInterval: 0.01 });
});

test('the reset method cools the machine down and answers with the time', async () => {
  await using hub = await createTestHub();
  const machine = new Machine(() => 1);
  for (let i = 0; i < 20; i++) machine.read(new Date());
  const stop = await startSensor(await hub.connect(TemperatureSensor, { moduleId: 'sensor' }), machine);

  const result = await hub.invoke('sensor', 'reset', {});
  stop();
  expect(result).toMatchObject({ ok: true, status: 200, payload: { resetAt: expect.any(String) } });
  expect(machine.read(new Date()).machine.temperature).toBe(23);
  expect(await hub.invoke('sensor', 'nonexistent')).toMatchObject({ status: 501 });
});

test('the pipeline from the deployment manifest: sensor → filter → $upstream', async () => {
  const manifest = (await import('../deployment.json', { with: { type: 'json' } })).default;
  const { Filter, startFilter } = await import('../filter/module.js');
  await using hub = await createTestHub({ manifest });
  await hub.setDesired('SimulatedTemperatureSensor', { SendInterval: 0.01 });
  await startFilter(await hub.connect(Filter, { moduleId: 'filter' }));
  const stop = await startSensor(await hub.connect(TemperatureSensor, { moduleId: 'SimulatedTemperatureSensor' }));

  const alert = await hub.upstream<Reading>().next({ timeoutInMs: 5_000 });
  stop();
  expect(alert.body.machine.temperature).toBeGreaterThan(25);
  expect(alert.properties.MessageType).toBe('Alert');
});
