/**
 * What the `edgekit` CLI does with records on the broker that are invalid or hostile (issue 10, item 8), run unchanged
 * on the memory broker (test/cli/broker-records.test.ts) and a real Mosquitto
 * (test/integration/mqtt/broker-records.test.ts): records are planted straight with the transport, as a broken or
 * hostile writer would, and the CLI must neither crash nor hide them nor print a control character it did not make.
 */
import { randomUUID } from 'node:crypto';
import { afterEach, describe, expect, test } from 'vitest';
import { typed } from '../../src/codecs/schema.js';
import { connect } from '../../src/connect.js';
import { defineModule } from '../../src/core/contract.js';
import { encodeEnvelope } from '../../src/core/envelope.js';
import type { Transport, TransportConnection } from '../../src/transport.js';
import { cli } from './scenarios.js';

/** A broker the scenarios run against. */
export interface RecordsTarget {
  readonly name: string;
  brokerUrl(): Promise<string>;
  transport(): Promise<Transport>;
}

/** What a terminal acts on, or what hides or reorders text: the CLI's own output (without colour) has none. */
const UNSAFE = /[^\n\P{Cc}]|[\p{Cf}\p{Zl}\p{Zp}]/u;

const Filter = defineModule({ desired: typed<{ threshold?: number }>() });
const json = (value: unknown) => new TextEncoder().encode(typeof value === 'string' ? value : JSON.stringify(value));

/** Registers the scenarios for `target`. */
export function runBrokerRecordScenarios(target: RecordsTarget): void {
  describe(`edgekit CLI on ${target.name}: records from the broker are input`, () => {
    const closing: Array<{ close(): Promise<void> }> = [];
    afterEach(async () => {
      await Promise.all(closing.splice(0).map((c) => c.close().catch(() => undefined)));
    });
    const device = () => `rec-${randomUUID().slice(0, 8)}`;
    async function planter(): Promise<TransportConnection> {
      const conn = await (await target.transport()).connect({ clientId: `planter-${randomUUID().slice(0, 8)}` });
      closing.push(conn);
      return conn;
    }

    test('status lists a deployment record with a control character in a module id and a presence with escapes; it never crashes', async () => {
      const deviceId = device();
      const broker = ['--broker', await target.brokerUrl()];
      const conn = await planter();
      await conn.setRetained(
        `deployment/${deviceId}`,
        json({ modules: ['sensor', 'bad\u0000\u001b[31m', 'a+b'], appliedAt: Date.now() }),
      );
      await conn.setRetained(
        `presence/${deviceId}/sensor`,
        json({ state: 'online', since: Date.now(), sdk: 'edgekit/9\u001b]0;pwned\u0007\u001b[2J' }),
      );
      await conn.setRetained(
        `presence/${deviceId}/ok`,
        json({ state: 'online', since: Date.now(), sdk: 'edgekit/0.1.0' }),
      );

      const text = await cli(['status', deviceId, ...broker]);
      expect(text.code).toBe(0);
      expect(text.stdout).not.toMatch(UNSAFE);
      expect(text.stderr).not.toMatch(UNSAFE);
      expect(text.stdout).toMatch(
        new RegExp(`${deviceId}\\s+bad\\\\x00\\\\x1b\\[31m\\s+invalid record\\s+-\\s+-\\s+yes`),
      );
      expect(text.stdout).toMatch(new RegExp(`${deviceId}\\s+a\\+b\\s+invalid record`));
      expect(text.stdout).toMatch(new RegExp(`${deviceId}\\s+sensor\\s+invalid record\\s+-\\s+-\\s+yes\\s+-`));
      expect(text.stdout).toMatch(new RegExp(`${deviceId}\\s+ok\\s+online`));
      expect(text.stdout).toMatch(/3 invalid records on the broker:/);
      expect(text.stdout).toMatch(/\/sensor: invalid presence: presence "sdk" is not 1 to 100 printable ASCII/);
      expect(text.stderr).toBe('edgekit status: 3 invalid records on the broker (listed above)\n');

      const asJson = await cli(['status', deviceId, '--json', ...broker]);
      expect(asJson.code).toBe(0);
      expect(asJson.stdout).not.toMatch(UNSAFE);
      const [entry] = JSON.parse(asJson.stdout) as Array<{
        invalidRecords: number;
        modules: Array<{ moduleId: string; problem?: string }>;
      }>;
      expect(entry?.invalidRecords).toBe(3);
      expect(entry?.modules.find((m) => m.moduleId === 'bad\u0000\u001b[31m')?.problem).toMatch(/invalid module id/);
    });

    test('a desired version of 2^53 does not silence later updates: twin set refuses it naming --replace, which fixes it', async () => {
      const deviceId = device();
      const broker = ['--broker', await target.brokerUrl()];
      const filter = await connect(Filter, {
        deviceId,
        moduleId: 'filter',
        transport: await target.transport(),
        onError: () => undefined,
      });
      closing.push(filter);
      expect((await cli(['twin', 'set', `${deviceId}/filter`, '{"threshold": 1}', ...broker])).code).toBe(0);
      await expect.poll(() => filter.desired().version, { timeout: 10_000 }).toBe(1);

      const conn = await planter();
      await conn.setRetained(
        `twin/${deviceId}/filter/desired`,
        json({ version: 2 ** 53, properties: { threshold: 666, 'x\u001b': 1 } }),
      );
      const refused = await cli(['twin', 'set', `${deviceId}/filter`, '{"threshold": 2}', ...broker]);
      expect(refused.code).toBe(1);
      expect(refused.stderr).toMatch(
        new RegExp(
          `version 9007199254740992 .*nothing was written.*edgekit twin set ${deviceId}/filter <json \\| @file> --replace`,
        ),
      );
      expect(refused.stderr.trim().split('\n')).toHaveLength(1);
      const get = await cli(['twin', 'get', `${deviceId}/filter`, ...broker]);
      expect(get.code).toBe(1);
      expect(get.stderr).toMatch(/--replace/);

      const replaced = await cli([
        'twin',
        'set',
        `${deviceId}/filter`,
        '{"threshold": 3}',
        '--replace',
        '--json',
        ...broker,
      ]);
      expect(replaced.code).toBe(0);
      const version = (JSON.parse(replaced.stdout) as { desired: { version: number } }).desired.version;
      expect(version).toBeGreaterThan(1);
      expect(version).toBeLessThan(2 ** 53);
      await expect.poll(() => filter.desired(), { timeout: 10_000 }).toEqual({ version, properties: { threshold: 3 } });
      expect((await cli(['twin', 'set', `${deviceId}/filter`, '{"threshold": 4}', ...broker])).code).toBe(0);
      await expect.poll(() => filter.desired().properties, { timeout: 10_000 }).toEqual({ threshold: 4 });
    }, 30_000);

    test('twin get, invoke and monitor show broker text with escapes, never raw', async () => {
      const deviceId = device();
      const broker = ['--broker', await target.brokerUrl()];
      const conn = await planter();
      const evil = 'hi\u001b[2J\u009b31m\u202etxt.exe\u0007';
      await conn.setRetained(`twin/${deviceId}/m/reported`, json({ version: 1, properties: { note: evil } }));
      const twin = await cli(['twin', 'get', `${deviceId}/m`, ...broker]);
      expect(twin.code).toBe(0);
      expect(twin.stdout).not.toMatch(UNSAFE);
      expect(twin.stdout).toContain('"note": "hi\\u001b[2J\\u009b31m\\u202etxt.exe\\u0007"');

      await conn.setRetained(
        `presence/${deviceId}/m`,
        json({ state: 'online', since: Date.now(), sdk: 'edgekit/0.1.0' }),
      );
      await conn.serve(`methods/${deviceId}/m`, async () => json({ status: 500, payload: { message: evil } }));
      const invoked = await cli(['invoke', `${deviceId}/m`, 'x', '--timeout', '5', ...broker]);
      expect(invoked.code).toBe(1);
      expect(`${invoked.stdout}${invoked.stderr}`).not.toMatch(UNSAFE);
      expect(invoked.stderr).toContain('answered 500: hi\\x1b[2J\\x9b31m\\u202etxt.exe\\x07');

      const stop = new AbortController();
      let out = '';
      let err = '';
      const watching = new Promise<void>((resolve) => {
        void import('../../src/cli/index.js').then(({ main }) =>
          main(['monitor', deviceId, '--count', '1', ...broker], {
            stdout: { write: (s: string) => (out += s) },
            stderr: {
              write: (s: string) => {
                err += s;
                if (s.startsWith('watching')) resolve();
              },
            },
            readFile: () => '',
            env: {},
            signal: stop.signal,
          }).then((code) => (out += `exit ${code}\n`)),
        );
      });
      await watching;
      const envelope = encodeEnvelope(
        {
          messageId: 'm1',
          createdAt: Date.now(),
          sourceDeviceId: deviceId,
          sourceModuleId: 'sensor',
          sourceOutput: 'out',
          contentType: 'application/json',
          properties: { [`k${evil}`]: evil },
        },
        json({ text: evil }),
      );
      await conn.publish(`inputs/${deviceId}/m/in`, envelope);
      await expect.poll(() => out, { timeout: 10_000 }).toMatch(/exit 0/);
      stop.abort();
      expect(`${out}${err}`).not.toMatch(UNSAFE);
      expect(out).toContain('"text":"hi\\u001b[2J\\u009b31m\\u202etxt.exe\\u0007"');
      expect(out).toContain('khi\\x1b[2J\\x9b31m\\u202etxt.exe\\x07=hi\\x1b[2J');
    }, 30_000);
  });
}
