/**
 * The operator's queues — `ServiceClient.upstream`, `deadLetters` and the `edgekit upstream` / `edgekit deadletter`
 * commands — run unchanged on each broker: memory in-process (test/cli/queues.test.ts), a real Mosquitto and a real
 * RabbitMQ (test/integration/{mqtt,amqp}/upstream-deadletters.test.ts). Every scenario deploys first: on MQTT that is
 * what makes the queues keep messages before any consumer.
 */
import { randomUUID } from 'node:crypto';
import { afterEach, describe, expect, test } from 'vitest';
import { json } from '../../src/codecs/codec.js';
import { connect } from '../../src/connect.js';
import { defineModule } from '../../src/core/contract.js';
import { isEdgeKitError } from '../../src/errors.js';
import { connectService, type ServiceClient } from '../../src/service/client.js';
import type { UpstreamConsumer, UpstreamEvent } from '../../src/service/queues.js';
import type { Transport } from '../../src/transport.js';
import { Inbox, withTimeout } from '../integration/mqtt/support/wait.js';
import { cli, cliInBackground } from './scenarios.js';

/** A broker the scenarios run against. */
export interface QueueTarget {
  readonly name: string;
  /** The `--broker` URL the CLI is given. */
  brokerUrl(): Promise<string>;
  transport(): Promise<Transport>;
  /**
   * Whether consumers in two service clients compete for one queue. Not on MQTT, where a queue's messages wait in
   * one session that one client at a time holds (docs/transports/mqtt.md): there, two consumers of one client.
   */
  readonly competingClients: boolean;
}

const Sensor = defineModule({ outputs: { out: json<{ n: number }>() } });
const Filter = defineModule({ inputs: { input1: json<{ n: number }>() }, outputs: { alerts: json<{ n: number }>() } });

/** Sensor `out` → `$upstream`, and with `n ≥ 100` → filter `input1`. */
export const manifest = {
  modulesContent: {
    $edgeAgent: { 'properties.desired': { modules: { sensor: {}, filter: {} } } },
    $edgeHub: {
      'properties.desired': {
        schemaVersion: '1.1',
        routes: {
          up: 'FROM /messages/modules/sensor/outputs/out INTO $upstream',
          toFilter:
            'FROM /messages/modules/sensor/outputs/out WHERE $body.n >= 100 INTO BrokeredEndpoint("/modules/filter/inputs/input1")',
        },
      },
    },
  },
};

// Long enough for a loaded machine: a broker hands a queue's backlog out at once, so this is only a bound.
const IDLE = { idleInMs: 1_000 };
const WAIT = 10_000;

/** The next event of a consumer, or a clear failure. */
async function next(consumer: UpstreamConsumer, what = 'an upstream message'): Promise<UpstreamEvent> {
  const result = await withTimeout(consumer.next(), WAIT, what);
  if (result.done) throw new Error(`the consumer ended waiting for ${what}`);
  return result.value;
}

const bodyOf = async (event: UpstreamEvent) => {
  if (event.type !== 'message') throw new Error(`undecodable: ${event.error.message}`);
  return (await event.decode(json<{ n: number }>())).n;
};

/** Registers the scenarios for `target`. */
export function runQueueScenarios(target: QueueTarget): void {
  describe(`upstream and dead letters on ${target.name}`, () => {
    const closing: Array<{ close(): Promise<void> }> = [];
    afterEach(async () => {
      await Promise.all(closing.splice(0).map((c) => c.close().catch(() => undefined)));
    });
    const newDevice = () => `q-${randomUUID().slice(0, 8)}`;

    async function service(): Promise<ServiceClient> {
      const s = await connectService({ transport: await target.transport() });
      closing.push(s);
      return s;
    }

    /** A deployed device with a sensor (routed to $upstream, and n ≥ 100 to the filter) and a filter whose handler fails while `failing`. */
    async function deployed(operator: ServiceClient) {
      const deviceId = newDevice();
      await operator.applyDeployment(deviceId, manifest);
      const transport = await target.transport();
      const sensor = await connect(Sensor, { deviceId, moduleId: 'sensor', transport });
      closing.push(sensor);
      const state = { failing: true };
      const handled = new Inbox<{ n: number; publisher: string | undefined; source: string }>();
      const filter = await connect(Filter, {
        deviceId,
        moduleId: 'filter',
        transport,
        maxAttempts: 1,
        onError: () => undefined,
      });
      closing.push(filter);
      await filter.onInput('input1', async (m) => {
        if (state.failing) throw new Error(`refused ${m.body.n}`);
        handled.push({ n: m.body.n, publisher: m.publisher, source: `${m.source.deviceId}/${m.source.moduleId}` });
      });
      return { deviceId, sensor, filter, state, handled };
    }

    /** Sends to the failing filter and waits until `count` dead letters are in its queue (seen by a monitor). */
    async function deadLetters(operator: ServiceClient, device: Awaited<ReturnType<typeof deployed>>, ns: number[]) {
      const seen = new Inbox<string>();
      const monitor = await operator.monitor({ deviceId: device.deviceId, kinds: ['deadletter'] });
      const reading = (async () => {
        for await (const e of monitor) if (e.type === 'message') seen.push(e.messageId);
      })();
      for (const n of ns) await device.sensor.send('out', { n });
      await seen.take(ns.length, WAIT, 'the dead letters');
      await monitor.close();
      await reading;
    }

    test('upstream messages sent before any consumer are delivered; one the loop broke out of comes again', async () => {
      const operator = await service();
      const { deviceId, sensor } = await deployed(operator);
      for (const n of [1, 2, 3]) await sensor.send('out', { n });

      const first = await operator.upstream(deviceId, { prefetch: 1 });
      const event = await next(first);
      expect(await bodyOf(event)).toBe(1);
      expect(event).toMatchObject({ source: { deviceId, moduleId: 'sensor', output: 'out' }, redelivered: false });
      if (event.type === 'message') {
        expect(event.publisher).toBe(`${deviceId}/sensor`);
        expect(event.contentType).toBe('application/json');
      }
      // The loop body did not finish: break gives the message back.
      await first.return?.();

      const again = await operator.upstream(deviceId, { prefetch: 2 });
      closing.push(again);
      const redelivered = await next(again, 'message 1 again');
      expect(await bodyOf(redelivered)).toBe(1);
      expect(redelivered.redelivered).toBe(true);
      expect(await bodyOf(await next(again))).toBe(2);
      expect(await bodyOf(await next(again))).toBe(3);
      expect(again.stats()).toMatchObject({ delivered: 3, acknowledged: 2, undecodable: 0 });
      again.ack();
      await again.close();

      // Everything was acknowledged: a new message is the next one delivered.
      await sensor.send('out', { n: 4 });
      const after = await operator.upstream(deviceId);
      closing.push(after);
      expect(await bodyOf(await next(after, 'message 4'))).toBe(4);
    });

    test('competing consumers share a device upstream: each message to one of them, none lost', async () => {
      const operator = await service();
      const { deviceId, sensor } = await deployed(operator);
      const other = target.competingClients ? await service() : operator;
      const consumers = [
        await operator.upstream(deviceId, { prefetch: 1 }),
        await other.upstream(deviceId, { prefetch: 1 }),
      ];
      closing.push(...consumers);
      const got = new Inbox<{ consumer: number; n: number }>();
      const loops = consumers.map(async (consumer, index) => {
        for await (const event of consumer) got.push({ consumer: index, n: await bodyOf(event) });
      });
      const count = 20;
      for (let n = 0; n < count; n++) await sensor.send('out', { n });
      const items = await got.take(count, WAIT, 'every message');
      expect(items.map((i) => i.n).sort((a, b) => a - b)).toEqual([...Array(count).keys()]);
      expect(new Set(items.map((i) => i.consumer))).toEqual(new Set([0, 1]));
      await Promise.all(consumers.map((c) => c.close()));
      await Promise.all(loops);
      expect(got.items).toHaveLength(count);
    });

    test('bytes that are no edgekit message are yielded as undecodable, counted, and do not stop the consumer', async () => {
      const operator = await service();
      const { deviceId, sensor } = await deployed(operator);
      const raw = await (await target.transport()).connect({ clientId: `raw-${randomUUID()}` });
      closing.push(raw);
      await raw.publish(`upstream/${deviceId}`, new TextEncoder().encode('not an envelope'));
      await sensor.send('out', { n: 7 });
      const consumer = await operator.upstream(deviceId);
      closing.push(consumer);
      const bad = await next(consumer, 'the undecodable bytes');
      expect(bad.type).toBe('undecodable');
      if (bad.type === 'undecodable') expect(isEdgeKitError(bad.error, 'decode-failed')).toBe(true);
      expect(await bodyOf(await next(consumer, 'the message after it'))).toBe(7);
      expect(consumer.stats()).toMatchObject({ delivered: 2, undecodable: 1 });
    });

    test('dead letters: list leaves them, replay reaches the input handler and removes them, purge empties', async () => {
      const operator = await service();
      const device = await deployed(operator);
      const dead = operator.deadLetters(device.deviceId, 'filter');
      await deadLetters(operator, device, [100, 101]);

      const listed = await dead.list(IDLE);
      expect(listed.entries.map((e) => (e.type === 'message' ? e.deadLetter : e.type))).toEqual([
        expect.objectContaining({ reason: 'handler-failed', input: 'input1', attempts: 1, error: 'refused 100' }),
        expect.objectContaining({ reason: 'handler-failed', input: 'input1', attempts: 1, error: 'refused 101' }),
      ]);
      expect(listed).toMatchObject({ undecodable: 0, limited: false });
      // Non-destructive: the same dead letters, in the same order, again.
      const again = await dead.list(IDLE);
      expect(again.entries.map((e) => (e.type === 'message' ? e.messageId : ''))).toEqual(
        listed.entries.map((e) => (e.type === 'message' ? e.messageId : '')),
      );
      expect((await dead.list({ ...IDLE, limit: 1 })).limited).toBe(true);

      device.state.failing = false;
      const replay = await dead.replay(IDLE);
      expect(replay).toMatchObject({ skipped: [], cameBack: false });
      expect(replay.replayed.map((r) => r.input)).toEqual(['input1', 'input1']);
      const handled = await device.handled.take(2, WAIT, 'the replayed messages');
      expect(handled.map((h) => h.n)).toEqual([100, 101]);
      // The envelope keeps the original sender; the broker knows the operator published it.
      expect(handled[0]).toMatchObject({ source: `${device.deviceId}/sensor`, publisher: '$operator/operator' });
      expect((await dead.list(IDLE)).entries).toEqual([]);

      device.state.failing = true;
      await deadLetters(operator, device, [102, 103, 104]);
      expect(await dead.purge(IDLE)).toEqual({ purged: 3, undecodable: 0 });
      expect((await dead.list(IDLE)).entries).toEqual([]);
    });

    test('replay leaves what it cannot replay and stops at a message that comes back; malformed entries are reported', async () => {
      const operator = await service();
      const device = await deployed(operator);
      const dead = operator.deadLetters(device.deviceId, 'filter');
      const raw = await (await target.transport()).connect({ clientId: `raw-${randomUUID()}` });
      closing.push(raw);
      await raw.publish(`deadletter/${device.deviceId}/filter`, new Uint8Array([0xee, 0x4b, 1, 0, 0, 0, 0, 99]));
      await deadLetters(operator, device, [100]);

      const listed = await dead.list(IDLE);
      expect(listed.entries.map((e) => e.type)).toEqual(['undecodable', 'message']);
      expect(listed.undecodable).toBe(1);

      // Still failing: the replayed message is dead-lettered again, and replay stops when it sees it come back.
      const replay = await dead.replay({ idleInMs: 2_000 });
      expect(replay.skipped.map((s) => s.entry.type)).toEqual(['undecodable']);
      expect(replay.replayed).toHaveLength(1);
      expect(replay.cameBack).toBe(true);
      const left = await dead.list(IDLE);
      expect(left.entries.map((e) => e.type)).toEqual(['undecodable', 'message']);
      expect(await dead.purge(IDLE)).toEqual({ purged: 2, undecodable: 1 });
    });

    test('edgekit upstream prints messages and acknowledges each once printed; --count stops', async () => {
      const operator = await service();
      const { deviceId, sensor } = await deployed(operator);
      const broker = ['--broker', await target.brokerUrl()];
      for (const n of [1, 2, 3]) await sensor.send('out', { n });
      const run = await cli(['upstream', deviceId, '--count', '2', '--json', ...broker]);
      expect(run.stderr).toBe(`consuming the upstream of ${deviceId}; Ctrl-C to stop\n`);
      expect(run.code).toBe(0);
      const lines = run.stdout
        .trimEnd()
        .split('\n')
        .map((l) => JSON.parse(l));
      expect(lines).toMatchObject([
        { type: 'message', body: { n: 1 }, source: { deviceId, moduleId: 'sensor', output: 'out' } },
        { type: 'message', body: { n: 2 }, publisher: `${deviceId}/sensor`, redelivered: false },
      ]);
      const text = await cli(['upstream', deviceId, '--count', '1', ...broker]);
      expect(text.code).toBe(0);
      // The first run had taken message 3 ahead (prefetch 10) and gave it back unprinted.
      expect(text.stdout).toMatch(new RegExp(`^\\S+ \\S+ ${deviceId}/sensor/out  \\{"n":3\\} \\(redelivered\\)\\n$`));

      const usage = await cli(['upstream', deviceId, '--prefetch', '0', ...broker]);
      expect(usage.code).toBe(2);
      expect(usage.stderr).toContain('--prefetch must be an integer from 1 to 1000');
      expect((await cli(['upstream', '*', ...broker])).code).toBe(2);
    });

    test('edgekit upstream stops cleanly on a signal; what it printed was acknowledged', async () => {
      const operator = await service();
      const { deviceId, sensor } = await deployed(operator);
      const running = cliInBackground(['upstream', deviceId, '--prefetch', '1', '--broker', await target.brokerUrl()]);
      await running.err.until((l) => l.some((x) => x.startsWith('consuming')), WAIT, 'the CLI to start consuming');
      await sensor.send('out', { n: 1 });
      await running.out.until((l) => l.some((x) => x.includes('{"n":1}')), WAIT, 'the CLI to print message 1');
      running.stop();
      expect(await withTimeout(running.done, WAIT, 'the CLI to stop')).toBe(0);
      await sensor.send('out', { n: 2 });
      const consumer = await operator.upstream(deviceId, { prefetch: 1 });
      closing.push(consumer);
      expect(await bodyOf(await next(consumer, 'message 2'))).toBe(2);
    });

    test('edgekit deadletter list, replay and purge, with --json; bad arguments exit 2', async () => {
      const operator = await service();
      const device = await deployed(operator);
      const broker = ['--broker', await target.brokerUrl(), '--idle', '1'];
      const target_ = `${device.deviceId}/filter`;
      await deadLetters(operator, device, [100]);

      const listed = await cli(['deadletter', 'list', target_, '--json', ...broker]);
      expect(listed.code).toBe(0);
      expect(JSON.parse(listed.stdout)).toMatchObject({
        type: 'message',
        body: { n: 100 },
        deadLetter: { reason: 'handler-failed', input: 'input1', attempts: 1 },
      });
      const text = await cli(['deadletter', 'list', target_, ...broker]);
      expect(text.stdout).toContain(
        `✗ from ${device.deviceId}/sensor/out (handler-failed on input1 after 1 attempt: refused 100)`,
      );
      expect(text.stdout).toContain(`1 dead letter of ${target_}\n`);

      device.state.failing = false;
      const replay = await cli(['deadletter', 'replay', target_, '--json', ...broker]);
      expect(replay.code).toBe(0);
      expect(JSON.parse(replay.stdout)).toMatchObject({
        replayed: [{ input: 'input1' }],
        skipped: [],
        cameBack: false,
      });
      await device.handled.take(1, WAIT, 'the replayed message');

      device.state.failing = true;
      await deadLetters(operator, device, [101, 102]);
      const purge = await cli(['deadletter', 'purge', target_, ...broker]);
      expect(purge).toMatchObject({ code: 0, stdout: `purged 2 dead letters of ${target_}\n` });

      const bad = await cli(['deadletter', 'list', device.deviceId, ...broker]);
      expect(bad.code).toBe(2);
      expect(bad.stderr).toContain('expected <device>/<module>');
      expect((await cli(['deadletter', 'purge', target_, '--limit', '0', ...broker])).code).toBe(2);
      expect((await cli(['deadletter', 'nope', target_, ...broker])).code).toBe(2);
    });
  });
}
