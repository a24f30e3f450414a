/**
 * An averager with Protocol Buffers bodies (docs/protobuf.md): takes `edge.Reading` messages in, sends an
 * `edge.Summary` of every few out. The TypeScript types are the plain-object shapes protobufjs gives the messages.
 */
import { fileURLToPath } from 'node:url';
import { defineModule, type ModuleClient } from 'edgekit';
import { protobufFromFile } from 'edgekit/protobuf';

const proto = fileURLToPath(new URL('./reading.proto', import.meta.url));

/** `edge.Reading`: field names in camelCase, the enum by name, the int64 as a decimal string. */
export interface Reading {
  sensorId: string;
  value: number;
  unit: 'CELSIUS' | 'FAHRENHEIT';
  seq: string;
}

/** `edge.Summary`. */
export interface Summary {
  count: number;
  meanCelsius: number;
  lastSeq: string;
}

/** The codecs, loaded once from the .proto; tests and other modules encode and decode with them too. */
export const readings = await protobufFromFile<Reading>(proto, 'edge.Reading');
export const summaries = await protobufFromFile<Summary>(proto, 'edge.Summary');

export const Averager = defineModule({ inputs: { readings }, outputs: { summary: summaries } });

const celsius = (r: Reading) => (r.unit === 'FAHRENHEIT' ? ((r.value - 32) * 5) / 9 : r.value);

/** Sends a summary of every `every` readings. */
export async function startAverager(client: ModuleClient<typeof Averager>, every = 3): Promise<void> {
  let batch: Reading[] = [];
  await client.onInput('readings', async ({ body }) => {
    batch.push(body);
    if (batch.length < every) return;
    const sum = batch.reduce((total, r) => total + celsius(r), 0);
    const summary = { count: batch.length, meanCelsius: sum / batch.length, lastSeq: body.seq };
    batch = [];
    await client.send('summary', summary);
  });
}
