/**
 * `edgekit identities` on RabbitMQ, as an operator sets it up: the definitions it writes are imported with
 * `rabbitmqctl import_definitions`; the example modules then work with their own credentials and nothing more; and
 * with `--broker`, the command applies a changed plan's bindings at once (a new route's destination reachable, a
 * dropped one no longer). A node of its own: the shared one must not get these users.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect } from '../../../src/connect.js';
import { defineModule, json } from '../../../src/index.js';
import type { Transport } from '../../../src/transport.js';
import { amqp } from '../../../src/transports/amqp/index.js';
import { cli } from '../../cli/scenarios.js';
import { tempFolder } from '../../support/openssl-ca.js';
import { type RabbitMQ, startRabbitMQ } from '../brokers/rabbitmq.js';

const MANIFEST = path.join(import.meta.dirname, '../../../examples/deployment.json');
const DEVICE = 'gw-1';
const SENSOR = 'SimulatedTemperatureSensor';
const folder = tempFolder('edgekit-amqp-identities-');
const out = folder.dir;
let broker: RabbitMQ;

const passwordOf = (username: string) =>
  readFileSync(path.join(out, 'credentials', ...username.split('/'), 'password'), 'utf8').trim();
const as = (username: string): Transport =>
  amqp({ url: `amqp://127.0.0.1:${broker.port}`, username, password: passwordOf(username), connectTimeoutInMs: 5_000 });
const operatorArgs = () => [
  '--broker',
  `amqp://127.0.0.1:${broker.port}`,
  '--username',
  '$operator/operator',
  '--password-file',
  path.join(out, 'credentials', '$operator', 'operator', 'password'),
];

async function until(condition: () => Promise<boolean>, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

beforeAll(async () => {
  const made = await cli(['identities', MANIFEST, '--device', DEVICE, '--out', out]);
  expect(made.code).toBe(0);
  broker = await startRabbitMQ();
  await broker.rabbitmqctl(['import_definitions', path.join(out, 'rabbitmq', 'definitions.json')]);
  // The import is asynchronous: wait until the operator can log in.
  await until(
    async () =>
      as('$operator/operator')
        .connect({ clientId: 'probe', identity: '$operator/operator' })
        .then(
          async (c) => {
            await c.close();
            return true;
          },
          () => false,
        ),
    30_000,
    'the imported users',
  );
}, 120_000);

afterAll(async () => {
  await broker?.stop();
  folder.remove();
});

type Reading = { machine: { temperature: number } };
const Sensor = defineModule({ outputs: { temperatureOutput: json<Reading>() } });
const Filter = defineModule({ inputs: { input1: json<Reading>() }, outputs: { output1: json<Reading>() } });

describe('edgekit identities on RabbitMQ', () => {
  it('imported definitions: the modules work with their own credentials, and no further', async () => {
    const operator = await cli(['deploy', MANIFEST, '--device', DEVICE, ...operatorArgs()]);
    expect(operator.stderr).toBe('');
    const filter = await connect(Filter, { deviceId: DEVICE, moduleId: 'filter', transport: as(`${DEVICE}/filter`) });
    const sensor = await connect(Sensor, { deviceId: DEVICE, moduleId: SENSOR, transport: as(`${DEVICE}/${SENSOR}`) });
    try {
      const seen: number[] = [];
      await filter.onInput('input1', (m) => {
        seen.push(m.body.machine.temperature);
      });
      await sensor.send('temperatureOutput', { machine: { temperature: 30 } });
      await until(async () => seen.length === 1, 10_000, 'the routed reading');
      // The sensor's credential is not the filter's: it cannot log in as the filter.
      await expect(
        connect(Filter, {
          deviceId: DEVICE,
          moduleId: 'filter',
          transport: amqp({
            url: `amqp://127.0.0.1:${broker.port}`,
            username: `${DEVICE}/filter`,
            password: passwordOf(`${DEVICE}/${SENSOR}`),
          }),
          connectTimeoutInMs: 5_000,
        }),
      ).rejects.toMatchObject({ code: 'connection-failed', details: { reason: 'authentication' } });
      // Nor consume the filter's input with its own.
      const raw = await as(`${DEVICE}/${SENSOR}`).connect({ clientId: 'rogue', identity: `${DEVICE}/${SENSOR}` });
      try {
        await expect(
          raw.consume(`inputs/${DEVICE}/filter/input1`, { prefetch: 1 }, () => undefined),
        ).rejects.toMatchObject({ code: 'not-authorized' });
      } finally {
        await raw.close();
      }
    } finally {
      await Promise.all([filter.close(), sensor.close()]);
    }
  });

  it('--broker applies a changed plan: a new route is reachable at once, a dropped one no longer', async () => {
    const manifest = JSON.parse(readFileSync(MANIFEST, 'utf8'));
    const hub = manifest.modulesContent.$edgeHub['properties.desired'];
    // The sensor now also sends straight upstream, and no longer to the filter.
    hub.routes = { sensorUp: `FROM /messages/modules/${SENSOR}/outputs/* INTO $upstream` };
    const changed = path.join(out, 'changed.json');
    writeFileSync(changed, JSON.stringify(manifest));
    const run = await cli(['identities', changed, '--device', DEVICE, '--out', out, ...operatorArgs()]);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/applied to amqp:\/\/127\.0\.0\.1:\d+: \d+ bindings, [1-9]\d* removed/);
    const raw = await as(`${DEVICE}/${SENSOR}`).connect({
      clientId: `${DEVICE}/${SENSOR}`,
      identity: `${DEVICE}/${SENSOR}`,
    });
    try {
      await raw.publish(`upstream/${DEVICE}`, new TextEncoder().encode('{}'));
      await expect(raw.publish(`inputs/${DEVICE}/filter/input1`, new TextEncoder().encode('{}'))).rejects.toMatchObject(
        {
          code: 'not-authorized',
        },
      );
    } finally {
      await raw.close();
    }
  });
});
