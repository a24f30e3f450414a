/**
 * The `edgekit` CLI's scenarios, run unchanged on each broker: memory in-process (test/cli/memory.test.ts), a real
 * Mosquitto and a real RabbitMQ (test/integration/{mqtt,amqp}/cli.test.ts). The CLI runs through `main` with
 * captured output; modules run in-process on the same broker, and as a separate process where one must be killed.
 */
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { afterEach, describe, expect, test } from 'vitest';
import { main } from '../../src/cli/index.js';
import { json } from '../../src/codecs/codec.js';
import { typed } from '../../src/codecs/schema.js';
import { connect } from '../../src/connect.js';
import { defineModule, method } from '../../src/core/contract.js';
import { MethodError } from '../../src/errors.js';
import type { Transport } from '../../src/transport.js';
import { Inbox } from '../integration/mqtt/support/wait.js';

/** A broker the scenarios run against. */
export interface CliTarget {
  readonly name: string;
  /** The `--broker` URL the CLI is given. */
  brokerUrl(): Promise<string>;
  /** A transport for modules run in this process, on the same broker. */
  transport(): Promise<Transport>;
  /** Connects a module `deviceId/moduleId` that can be crashed (no goodbye, so its last will fires). */
  crashable(deviceId: string, moduleId: string): Promise<{ crash(): Promise<void> }>;
}

export interface CliRun {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs the CLI in-process; `env` is empty unless given, so the developer's variables never leak in. */
export async function cli(args: readonly string[], signal?: AbortSignal): Promise<CliRun> {
  let stdout = '';
  let stderr = '';
  const code = await main(args, {
    stdout: { write: (s: string) => (stdout += s) },
    stderr: { write: (s: string) => (stderr += s) },
    readFile: (path) => readFileSync(path, 'utf8'),
    env: {},
    ...(signal ? { signal } : {}),
  });
  return { code, stdout, stderr };
}

/** A CLI run in the background whose output can be awaited line by line. */
export function cliInBackground(args: readonly string[]) {
  const out = new Inbox<string>();
  const err = new Inbox<string>();
  const stop = new AbortController();
  const lines = (inbox: Inbox<string>) => {
    let partial = '';
    return (s: string) => {
      const parts = (partial + s).split('\n');
      partial = parts.pop() ?? '';
      for (const p of parts) inbox.push(p);
    };
  };
  const done = main(args, {
    stdout: { write: lines(out) },
    stderr: { write: lines(err) },
    readFile: (path) => readFileSync(path, 'utf8'),
    env: {},
    signal: stop.signal,
  });
  return { out, err, done, stop: () => stop.abort() };
}

const Sensor = defineModule({ outputs: { temperature: json<{ t: number }>(), humidity: json<{ h: number }>() } });
const Filter = defineModule({
  inputs: { input1: json<{ t?: number; h?: number }>() },
  outputs: { alerts: json<{ t?: number; h?: number }>() },
  desired: typed<{ threshold?: number }>(),
  reported: typed<{ threshold?: number }>(),
  methods: {
    reset: method(typed<{ to: number }>(), typed<{ was: number }>()),
    slow: method(typed<null>(), typed<null>()),
    fail: method(typed<null>(), typed<null>()),
  },
});

const route = (output: string) =>
  `FROM /messages/modules/sensor/outputs/${output} INTO BrokeredEndpoint("/modules/filter/inputs/input1")`;

function manifest(
  routes: Record<string, unknown>,
  desired: Record<string, unknown> = { threshold: 25 },
  modules: readonly string[] = ['sensor', 'filter'],
) {
  return {
    modulesContent: {
      $edgeAgent: { 'properties.desired': { modules: Object.fromEntries(modules.map((m) => [m, {}])) } },
      $edgeHub: {
        'properties.desired': {
          schemaVersion: '1.1',
          routes: { ...routes, up: 'FROM /messages/modules/filter/outputs/* INTO $upstream' },
        },
      },
      filter: { 'properties.desired': desired },
    },
  };
}

/** Writes a manifest to a temporary file and returns its path. */
async function manifestFile(content: unknown): Promise<string> {
  const { mkdtemp, writeFile } = await import('node:fs/promises');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const dir = await mkdtemp(join(tmpdir(), 'edgekit-cli-'));
  const path = join(dir, 'deployment.json');
  await writeFile(path, JSON.stringify(content));
  return path;
}

/** Registers the scenarios for `target`. */
export function runCliScenarios(target: CliTarget): void {
  describe(`edgekit CLI on ${target.name}`, () => {
    const closing: Array<{ close(): Promise<void> }> = [];
    afterEach(async () => {
      await Promise.all(closing.splice(0).map((c) => c.close().catch(() => undefined)));
    });
    const device = () => `cli-${randomUUID().slice(0, 8)}`;

    async function modules(deviceId: string) {
      const transport = await target.transport();
      const filter = await connect(Filter, { deviceId, moduleId: 'filter', transport, onError: () => undefined });
      closing.push(filter);
      const sensor = await connect(Sensor, { deviceId, moduleId: 'sensor', transport, onError: () => undefined });
      closing.push(sensor);
      const received = new Inbox<{ t?: number; h?: number }>();
      await filter.onInput('input1', async (m) => {
        received.push(m.body);
        await filter.send('alerts', m.body);
      });
      return { filter, sensor, received };
    }

    test('deploy makes messages flow along its routes; a redeploy changes them live; monitor shows $upstream', async () => {
      const deviceId = device();
      const broker = ['--broker', await target.brokerUrl()];
      const first = await cli([
        'deploy',
        await manifestFile(manifest({ temp: route('temperature') })),
        '--device',
        deviceId,
        ...broker,
      ]);
      expect(first.stderr).toBe('');
      expect(first.code).toBe(0);
      expect(first.stdout).toMatch(
        /deployed .* 2 modules \(sensor, filter\), 2 routes, desired properties updated: filter v1/,
      );
      const { filter, sensor, received } = await modules(deviceId);
      expect(filter.desired()).toEqual({ version: 1, properties: { threshold: 25 } });

      const monitor = cliInBackground(['monitor', deviceId, '--kind', 'upstream', '--json', ...broker]);
      closing.push({
        close: async () => {
          monitor.stop();
          await monitor.done;
        },
      });
      await monitor.err.find((l) => l.startsWith('watching'), 10_000, 'the monitor to start');
      await sensor.send('temperature', { t: 30 });
      expect(await received.find((b) => b.t === 30, 10_000, 'the routed message')).toEqual({ t: 30 });
      expect((await sensor.send('humidity', { h: 50 })).destinations).toBe(0);

      const redeploy = await cli([
        'deploy',
        await manifestFile(manifest({ hum: route('humidity') }, { threshold: 35 })),
        '--device',
        deviceId,
        ...broker,
      ]);
      expect(redeploy.code).toBe(0);
      expect(redeploy.stdout).toMatch(/desired properties updated: filter v2/);
      await expect.poll(() => filter.desired().version, { timeout: 10_000 }).toBe(2);
      await expect
        .poll(async () => (await sensor.send('humidity', { h: 60 })).destinations, { timeout: 10_000 })
        .toBe(1);
      expect(await received.find((b) => b.h === 60, 10_000, 'the message on the new route')).toEqual({ h: 60 });
      expect((await sensor.send('temperature', { t: 31 })).destinations).toBe(0);

      const upstream = await monitor.out.find(
        (l) => l.includes('"h":60'),
        10_000,
        'the monitor to show the upstream message',
      );
      const first$ = JSON.parse(monitor.out.items[0] as string);
      expect(first$).toMatchObject({
        type: 'message',
        destination: { kind: 'upstream', deviceId },
        source: { deviceId, moduleId: 'filter', output: 'alerts' },
        body: { t: 30 },
      });
      expect(JSON.parse(upstream)).toMatchObject({ destination: { kind: 'upstream' }, body: { h: 60 } });
      monitor.stop();
      expect(await monitor.done).toBe(0);
    });

    test('a manifest with one bad route is rejected whole, naming the route and position; nothing changes', async () => {
      const deviceId = device();
      const broker = ['--broker', await target.brokerUrl()];
      expect(
        (
          await cli([
            'deploy',
            await manifestFile(manifest({ temp: route('temperature') })),
            '--device',
            deviceId,
            ...broker,
          ])
        ).code,
      ).toBe(0);
      const bad = manifest(
        { temp: route('temperature'), broken: 'FROM /messages/* WHERE $body.t > INTO $upstream' },
        { threshold: 99 },
      );
      const run = await cli(['deploy', await manifestFile(bad), '--device', deviceId, ...broker]);
      expect(run.code).toBe(1);
      expect(run.stdout).toMatch(/not applied, 1 problem/);
      expect(run.stdout).toMatch(/routes\.broken \(line 1, column \d+\): /);
      expect(run.stdout).toContain('^');
      expect(run.stderr.trim().split('\n')).toHaveLength(1);
      const twin = await cli(['twin', 'get', `${deviceId}/filter`, '--json', ...broker]);
      expect(JSON.parse(twin.stdout).desired).toEqual({ version: 1, properties: { threshold: 25 } });
    });

    test('twin set refuses a module the deployment does not list (a typo), unless --force', async () => {
      const deviceId = device();
      const broker = ['--broker', await target.brokerUrl()];
      const file = await manifestFile(manifest({ temp: route('temperature') }));
      expect((await cli(['deploy', file, '--device', deviceId, ...broker])).code).toBe(0);
      const typo = await cli(['twin', 'set', `${deviceId}/filtr`, '{"threshold": 1}', ...broker]);
      expect(typo.code).toBe(1);
      expect(typo.stderr).toBe(
        `edgekit twin set: ${deviceId}/filtr is not in the deployment of ${deviceId} (modules: sensor, filter); ` +
          'nothing was written. Check the name, or pass --force to write it anyway\n',
      );
      const untouched = await cli(['twin', 'get', `${deviceId}/filtr`, '--json', ...broker]);
      expect(JSON.parse(untouched.stdout).desired).toEqual({ version: 0, properties: {} });
      const forced = await cli(['twin', 'set', `${deviceId}/filtr`, '{"threshold": 1}', '--force', ...broker]);
      expect(forced).toMatchObject({ code: 0, stderr: '' });
      expect((await cli(['twin', 'set', `${deviceId}/filter`, '{"threshold": 2}', ...broker])).code).toBe(0);
    });

    test('twin set reaches a running module; its reported answer shows in twin get', async () => {
      const deviceId = device();
      const broker = ['--broker', await target.brokerUrl()];
      const transport = await target.transport();
      const filter = await connect(Filter, { deviceId, moduleId: 'filter', transport });
      closing.push(filter);
      await filter.onDesired(async (desired) => {
        if (desired.threshold !== undefined) await filter.report({ threshold: desired.threshold });
      });
      const set = await cli(['twin', 'set', `${deviceId}/filter`, '{"threshold": 42}', ...broker]);
      expect(set).toMatchObject({ code: 0, stderr: '' });
      expect(set.stdout).toMatch(/now at version 1/);
      await expect
        .poll(
          async () =>
            JSON.parse((await cli(['twin', 'get', `${deviceId}/filter`, '--json', ...broker])).stdout).reported,
          {
            timeout: 10_000,
          },
        )
        .toEqual({ version: 1, properties: { threshold: 42 } });
      const conflict = await cli([
        'twin',
        'set',
        `${deviceId}/filter`,
        '{"threshold": 43}',
        '--if-version',
        '0',
        ...broker,
      ]);
      expect(conflict.code).toBe(1);
      expect(conflict.stderr).toMatch(/at version 1, not 0 \(version-conflict\)/);
      expect((await cli(['twin', 'set', `${deviceId}/filter`, '{not json', ...broker])).code).toBe(2);
    });

    test('invoke prints status and payload; exits 1 on 404, on 504 and on a module error status', async () => {
      const deviceId = device();
      const broker = ['--broker', await target.brokerUrl()];
      const transport = await target.transport();
      const filter = await connect(Filter, { deviceId, moduleId: 'filter', transport });
      closing.push(filter);
      await filter.handle('reset', (req) => ({ was: req.to - 1 }));
      await filter.handle(
        'slow',
        (_req, { signal }) => new Promise((_, reject) => signal.addEventListener('abort', () => reject(signal.reason))),
      );
      await filter.handle('fail', () => {
        throw new MethodError(409, 'busy');
      });
      const ok = await cli(['invoke', `${deviceId}/filter`, 'reset', '{"to": 5}', '--json', ...broker]);
      expect(ok).toMatchObject({ code: 0, stderr: '' });
      expect(JSON.parse(ok.stdout)).toEqual({ status: 200, payload: { was: 4 } });

      const missing = await cli(['invoke', `${deviceId}/nobody`, 'reset', ...broker]);
      expect(missing.code).toBe(1);
      expect(missing.stdout).toMatch(/^status 404/);
      expect(missing.stderr).toMatch(/answered 404: module .*\/nobody has never connected\n$/);

      // With a deployment, a module it does not list is named as such: most often a mistyped name.
      await cli(['deploy', await manifestFile(manifest({}, {}, ['filter'])), '--device', deviceId, ...broker]);
      const typo = await cli(['invoke', `${deviceId}/filtr`, 'reset', ...broker]);
      expect(typo.code).toBe(1);
      expect(typo.stderr).toContain(
        `answered 404: module ${deviceId}/filtr has never connected; ${deviceId}/filtr is not in the deployment of ${deviceId} (modules: filter)`,
      );

      const failing = await cli(['invoke', `${deviceId}/filter`, 'fail', ...broker]);
      expect(failing.code).toBe(1);
      expect(failing.stderr).toMatch(/answered 409: busy/);

      const slow = await cli(['invoke', `${deviceId}/filter`, 'slow', '--timeout', '5', ...broker]);
      expect(slow.code).toBe(1);
      expect(slow.stderr).toMatch(/answered 504/);
    }, 30_000);

    test('status shows a crashed module offline and a running one online', async () => {
      const deviceId = device();
      const broker = ['--broker', await target.brokerUrl()];
      // The victim is deployed: AMQP cannot list presences, so status shows the deployed modules there.
      const deployment = await manifestFile(manifest({}, {}, ['sensor', 'filter', 'victim']));
      expect((await cli(['deploy', deployment, '--device', deviceId, ...broker])).code).toBe(0);
      const transport = await target.transport();
      const sensor = await connect(Sensor, { deviceId, moduleId: 'sensor', transport });
      closing.push(sensor);
      const victim = await target.crashable(deviceId, 'victim');
      const before = await cli(['status', deviceId, '--json', ...broker]);
      expect(before.code).toBe(0);
      const states = (run: CliRun) =>
        Object.fromEntries(
          (JSON.parse(run.stdout)[0].modules as Array<{ moduleId: string; state: string; reason?: string }>).map(
            (m) => [m.moduleId, m.reason ? `${m.state} (${m.reason})` : m.state],
          ),
        );
      expect(states(before)).toEqual({ filter: 'unknown', sensor: 'online', victim: 'online' });
      await victim.crash();
      await expect
        .poll(async () => states(await cli(['status', deviceId, '--json', ...broker]))?.victim, { timeout: 15_000 })
        .toBe('offline (connection-lost)');
      const table = await cli(['status', deviceId, ...broker]);
      expect(table.stdout).toMatch(/^DEVICE\s+MODULE\s+STATE\s+SINCE\s+LAST SEEN\s+DEPLOYED\s+SDK/);
      expect(table.stdout).toMatch(new RegExp(`${deviceId}\\s+victim\\s+offline \\(lost\\)`));
      expect(table.stdout).toMatch(new RegExp(`${deviceId}\\s+sensor\\s+online\\s+\\S+ \\S*\\s*now\\s+yes`));
    }, 30_000);

    test('an unreachable broker fails with a one-line reason and exit 1, showing no password; usage errors exit 2', async () => {
      const url = await target.brokerUrl();
      if (!url.startsWith('memory:')) {
        const dead = new URL(url);
        dead.port = '1';
        dead.username = 'filter';
        dead.password = 'Zq7@Wv4';
        const plain = new URL(dead.href);
        plain.username = '';
        plain.password = '';
        for (const credentials of [
          ['--broker', dead.href],
          ['--broker', plain.href, '--username', 'filter', '--password', 'Zq7@Wv4'],
        ]) {
          const run = await cli(['twin', 'get', 'gw/filter', ...credentials, '--connect-timeout', '3']);
          expect(run.code).toBe(1);
          expect(run.stderr.trim().split('\n')).toHaveLength(1);
          expect(run.stderr).toMatch(/^edgekit twin get: could not connect/);
          expect(run.stdout + run.stderr).not.toMatch(/Zq7|Wv4/);
        }
      }
      expect((await cli(['deploy', 'x.json', '--broker', url])).code).toBe(2);
      expect((await cli(['twin', 'get', 'no-module', '--broker', url])).code).toBe(2);
      expect((await cli(['invoke', 'gw/filter', 'reset', '--timeout', '1', '--broker', url])).code).toBe(2);
      expect((await cli(['monitor', '--kind', 'sideways', '--broker', url])).code).toBe(2);
      expect((await cli(['status', 'gw', '--broker', 'ftp://x'])).code).toBe(2);
      for (const argv of [
        ['deploy', 'x.json', '--device', 'bad id'],
        ['monitor', 'bad id'],
        ['status', 'a.b'],
        ['monitor', '--duration', '0'],
        ['monitor', '--duration', '9999999999'],
      ]) {
        const run = await cli([...argv, '--broker', url]);
        expect(run.code, argv.join(' ')).toBe(2);
        expect(run.stderr).toMatch(new RegExp(`^edgekit ${argv[0]}: `));
      }
    });
  });
}
