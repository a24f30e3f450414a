/**
 * The bridge's user on the cloud with only the permissions `rabbitmqBridge` renders (`cloudPermissions`), on two
 * RabbitMQ nodes of this file's own: the cloud loads the rendered cloud definitions at boot, the device imports its
 * definitions with `rabbitmqctl import_definitions`. Every shovel runs and every flow crosses — a message up, a
 * reported value up, a desired value down, a request down and its reply up — and the same user, logged in by hand,
 * can do nothing else on the cloud.
 */
import { randomUUID } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import * as amqplib from 'amqplib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addresses, operatorIdentity } from '../../../src/names.js';
import type { TransportConnection } from '../../../src/transport.js';
import { amqp, rabbitmqBridge } from '../../../src/transports/amqp/index.js';
import { type RabbitMQ, startRabbitMQ } from '../brokers/rabbitmq.js';
import { Inbox } from '../mqtt/support/wait.js';
import { bytes, text, until } from './support.js';

const deviceId = `gw-${randomUUID().slice(0, 8)}`;
const BRIDGE_USER = `bridge-${deviceId}`;
const BRIDGE_PASSWORD = randomUUID();
const bridge = rabbitmqBridge({
  deviceId,
  modules: ['filter'],
  cloudUrl: 'amqp://127.0.0.1:1', // the port is set once the cloud runs
  username: BRIDGE_USER,
  password: BRIDGE_PASSWORD,
});

let cloud: RabbitMQ;
let device: RabbitMQ;
const opened: TransportConnection[] = [];

async function open(url: string, identity: string, clientId = `c-${randomUUID().slice(0, 8)}`) {
  const connection = await amqp({ url }).connect({ clientId, identity });
  opened.push(connection);
  return connection;
}

beforeAll(async () => {
  const { configure, write, read, topic } = bridge.cloudPermissions;
  cloud = await startRabbitMQ({
    users: { [BRIDGE_USER]: BRIDGE_PASSWORD },
    permissions: { [BRIDGE_USER]: { configure, write, read, topics: [topic] } },
    definitionsFile: JSON.stringify(bridge.cloud),
  });
  device = await startRabbitMQ({ plugins: ['rabbitmq_shovel'] });
  const rendered = rabbitmqBridge({
    deviceId,
    modules: ['filter'],
    cloudUrl: `amqp://127.0.0.1:${cloud.port}`,
    username: BRIDGE_USER,
    password: BRIDGE_PASSWORD,
    reconnectDelayInSeconds: 1,
  });
  const file = path.join(device.dir, 'bridge-device.json');
  await writeFile(file, JSON.stringify(rendered.device), { mode: 0o600 });
  await device.rabbitmqctl(['import_definitions', file]);
}, 120_000);

afterAll(async () => {
  await Promise.allSettled(opened.map((c) => c.close()));
  await device?.stop();
  await cloud?.stop();
});

describe("the bridge's cloud user with the rendered permissions only", () => {
  it('runs every shovel', async () => {
    const names = bridge.flows.map((f) => f.shovel);
    let status = '';
    await until(
      async () => {
        status = await device.rabbitmqctl(['shovel_status']);
        return names.every((name) => status.split('\n').some((l) => l.includes(name) && l.includes('running')));
      },
      60_000,
      `the shovels ${names.join(', ')} to run`,
    );
  }, 70_000);

  it('carries every flow: a message and a reported value up, a desired value and a request down, the reply up', async () => {
    const module = await open(device.url, `${deviceId}/filter`);
    const operator = await open(cloud.url, operatorIdentity('operator'));

    const up = new Inbox<string | undefined>();
    await operator.consume(addresses.upstream(deviceId), { prefetch: 10 }, (delivery) => {
      up.push(text(delivery.bytes));
      delivery.ack();
    });
    await module.publish(addresses.upstream(deviceId), bytes('hello cloud'));
    await up.until((m) => m.includes('hello cloud'), 10_000, 'the upstream message in the cloud');

    await module.setRetained(addresses.reported(deviceId, 'filter'), bytes('{"r":1}'));
    await expect
      .poll(async () => text(await operator.getRetained(addresses.reported(deviceId, 'filter'))), { timeout: 10_000 })
      .toBe('{"r":1}');

    await operator.setRetained(addresses.desired(deviceId, 'filter'), bytes('{"d":1}'));
    await expect
      .poll(async () => text(await module.getRetained(addresses.desired(deviceId, 'filter'))), { timeout: 10_000 })
      .toBe('{"d":1}');

    await module.serve(addresses.methods(deviceId, 'filter'), async (request) => bytes(`re: ${text(request)}`));
    const reply = await operator.request(addresses.methods(deviceId, 'filter'), bytes('ping'), { timeoutInMs: 10_000 });
    expect(text(reply)).toBe('re: ping');
  });

  it('can do nothing else on the cloud', async () => {
    const connection = await amqplib.connect(`amqp://${BRIDGE_USER}:${BRIDGE_PASSWORD}@127.0.0.1:${cloud.port}`);
    connection.on('error', () => undefined);
    try {
      const refused = async (what: (channel: amqplib.Channel) => Promise<unknown>) => {
        const channel = await connection.createChannel();
        channel.on('error', () => undefined);
        await expect(what(channel)).rejects.toThrow(/403|ACCESS_REFUSED/);
      };
      // Read another key's queue, or the device's own last-value queue (its get + ack would empty it).
      await refused((c) => c.get(`edgekit.retained.twin.${deviceId}.filter.desired`));
      await refused((c) => c.consume(`edgekit.msg.upstream.${deviceId}`, () => undefined));
      // Publish as a module or an operator, or into the observe exchange.
      await refused(async (c) => {
        c.publish(`edgekit.from.${deviceId}.filter`, 'x', Buffer.from('x'));
        await c.checkExchange('edgekit.replies'); // the refusal closes the channel before this answers
      });
      await refused(async (c) => {
        c.publish('edgekit.observe', `edgekit.msg.upstream.${deviceId}`, Buffer.from('x'));
        await c.checkExchange('edgekit.replies');
      });
      // A reply key that is no operator's.
      await refused(async (c) => {
        c.publish('edgekit.replies', `${deviceId}.filter.${randomUUID()}`, Buffer.from('x'));
        await c.checkExchange('edgekit.replies');
      });
      // Declare a queue of its choosing, or read another device's bridge queue.
      await refused((c) => c.assertQueue('edgekit.bridge.gw-other.down'));
    } finally {
      await connection.close();
    }
  });
});
