/**
 * A filter: forwards readings whose machine temperature is above the desired `TemperatureThreshold` on `output1`,
 * marked with the application property `MessageType: Alert`.
 */
import { defineModule, json, type ModuleClient, typed } from 'edgekit';
import type { Reading } from '../temperature-sensor/module.js';

export const Filter = defineModule({
  inputs: { input1: json<Reading>() },
  outputs: { output1: json<Reading>() },
  desired: typed<{ TemperatureThreshold?: number }>(),
  reported: typed<{ TemperatureThreshold: number }>(),
});

export type FilterClient = ModuleClient<typeof Filter>;

/** Wires the filter's handlers. */
export async function startFilter(client: FilterClient, options: { threshold?: number } = {}): Promise<void> {
  let threshold = options.threshold ?? 25;
  await client.onDesired(async (desired) => {
    if (typeof desired.TemperatureThreshold === 'number') threshold = desired.TemperatureThreshold;
    await client.report({ TemperatureThreshold: threshold });
  });
  await client.onInput('input1', async (message) => {
    if (message.body.machine.temperature > threshold) {
      await client.send('output1', message.body, { properties: { MessageType: 'Alert' } });
    }
  });
}
