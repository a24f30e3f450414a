/**
 * `edgekit hub` and `edgekit hub env` on a real broker (the calling file's), with Microsoft's Azure device SDK as the
 * module: the environment `hub env` prints is all the unmodified module needs, and the operator's CLI sees and drives
 * it like an edgekit module (status, twin get, invoke with 200/504/404).
 */
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { main } from '../../src/cli/index.js';
import { connect } from '../../src/connect.js';
import { untypedModule } from '../../src/core/contract.js';
import { connectService } from '../../src/service/client.js';
import type { Transport } from '../../src/transport.js';
import { cli } from '../cli/scenarios.js';
import { parseEvent, useProcesses } from '../integration/mqtt/fixtures/child-process.js';
import { unique } from '../integration/mqtt/support/fixtures.js';
import { Inbox } from '../integration/mqtt/support/wait.js';
import { freePort } from '../integration/support/loopback.js';

const AZURE_MODULE = fileURLToPath(new URL('./fixtures/azure-module.cjs', import.meta.url));

/** The broker the CLI scenario runs on. */
export interface CliHubBroker {
  readonly name: string;
  /** The `--broker` URL. */
  url(): string;
  /** A transport to the same broker for modules and the operator in this process. */
  transport(): Transport;
}

/** The `edgekit hub` scenario on one broker. */
export function cliHubScenario(broker: CliHubBroker): void {
  describe(`edgekit hub on ${broker.name}`, () => {
    const processes = useProcesses();
    const state = mkdtempSync(path.join(tmpdir(), 'edgekit-cli-hub-'));
    afterAll(() => rmSync(state, { recursive: true, force: true }));

    const stops: AbortController[] = [];
    const running: Promise<number>[] = [];
    afterEach(async () => {
      for (const s of stops.splice(0)) s.abort();
      // Each hub command ends cleanly once stopped.
      for (const code of await Promise.all(running.splice(0))) expect(code).toBe(0);
    });

    /** Runs `edgekit hub …` in this process until the test ends; resolves with its first stdout line. */
    async function startHubCommand(args: readonly string[]): Promise<{ out: Inbox<string>; err: () => string }> {
      const out = new Inbox<string>();
      let err = '';
      const stop = new AbortController();
      stops.push(stop);
      let partial = '';
      running.push(
        main(['hub', ...args], {
          stdout: {
            write: (s: string) => {
              const parts = (partial + s).split('\n');
              partial = parts.pop() ?? '';
              for (const p of parts) out.push(p);
            },
          },
          stderr: { write: (s: string) => (err += s) },
          readFile: (file) => readFileSync(file, 'utf8'),
          env: {},
          signal: stop.signal,
        }),
      );
      await out
        .find((l) => l.startsWith('edgekit hub for device'), 15_000, 'the hub listening')
        .catch((e: unknown) => {
          throw new Error(`${(e as Error).message}; stderr: ${err}`);
        });
      return { out, err: () => err };
    }

    it('runs an unmodified Azure module from the environment `hub env` prints, driven by the operator CLI', async () => {
      const device = unique('hubcli');
      const url = broker.url();
      const service = await connectService({ transport: broker.transport() });
      try {
        await service.applyDeployment(device, {
          modulesContent: {
            $edgeAgent: { 'properties.desired': { modules: { azure: {}, ek: {} } } },
            $edgeHub: {
              'properties.desired': {
                schemaVersion: '1.1',
                routes: {
                  work: 'FROM /messages/modules/ek/outputs/* INTO BrokeredEndpoint("/modules/azure/inputs/work")',
                },
              },
            },
            azure: { 'properties.desired': { interval: 5 } },
          },
        });
      } finally {
        await service.close();
      }
      const [mqttPort, httpsPort] = [await freePort(), await freePort()];
      const common = ['--device', device, '--state', state, '--mqtt-port', String(mqttPort)];
      const env = await cli(['hub', 'env', 'azure', ...common, '--json']);
      expect(env).toMatchObject({ code: 0, stderr: '' });
      const variables = JSON.parse(env.stdout) as Record<string, string>;
      expect(variables.EdgeHubConnectionString).toMatch(
        new RegExp(
          `^HostName=edgekit\\.local;GatewayHostName=localhost:${mqttPort};DeviceId=${device};ModuleId=azure;SharedAccessKey=[A-Za-z0-9+/=]{44}$`,
        ),
      );
      expect(variables.EdgeModuleCACertificateFile).toBe(path.join(state, 'ca.pem'));
      expect(statSync(path.join(state, 'keys.json')).mode & 0o777).toBe(0o600);
      // The same key the second time.
      const again = await cli(['hub', 'env', 'azure', ...common, '--json']);
      expect(JSON.parse(again.stdout)).toEqual(variables);

      const hub = await startHubCommand([...common, '--https-port', String(httpsPort), '--broker', url]);
      const azure = processes.start(
        AZURE_MODULE,
        {
          ...variables,
          HUB_HTTPS_PORT: String(httpsPort),
          HUB_CA_FILE: variables.EdgeModuleCACertificateFile as string,
          HUB_DEVICE_ID: device,
        },
        { stdin: true },
      );
      const twin = parseEvent(await azure.line((l) => parseEvent(l)?.event === 'twin', 15_000, 'the twin'));
      expect(twin?.desired).toMatchObject({ interval: 5 });
      await azure.line((l) => parseEvent(l)?.event === 'ready', 15_000, 'ready');
      azure.write(JSON.stringify({ cmd: 'report', patch: { firmware: 'azure-1.0' } }));
      await azure.line((l) => parseEvent(l)?.event === 'reported', 15_000, 'reported');

      const status = await cli(['status', device, '--broker', url, '--json']);
      expect(status.code).toBe(0);
      expect(JSON.parse(status.stdout)).toMatchObject([
        {
          deviceId: device,
          modules: [
            // The presence names the module's own SDK, through the hub.
            {
              moduleId: 'azure',
              state: 'online',
              deployed: true,
              sdk: expect.stringMatching(/^azure-iot-device\/1\.18\.\d+ via edgekit-hub\/\d/),
            },
            { moduleId: 'ek', state: 'unknown', deployed: true },
          ],
        },
      ]);
      const reported = await cli(['twin', 'get', `${device}/azure`, '--broker', url, '--json']);
      expect(JSON.parse(reported.stdout)).toMatchObject({ reported: { properties: { firmware: 'azure-1.0' } } });

      const ping = await cli(['invoke', `${device}/azure`, 'ping', '{"x":1}', '--broker', url, '--json']);
      expect(ping).toMatchObject({ code: 0, stderr: '' });
      expect(JSON.parse(ping.stdout)).toEqual({ status: 200, payload: { pong: { x: 1 } } });
      const silent = await cli(['invoke', `${device}/azure`, 'silent', '{}', '--timeout', '5', '--broker', url]);
      expect(silent.code).toBe(1);
      expect(silent.stderr).toContain('answered 504');
      const ghost = await cli(['invoke', `${device}/ghost`, 'ping', '{}', '--broker', url]);
      expect(ghost.code).toBe(1);
      expect(ghost.stderr).toContain('answered 404');

      // Inputs routed to the Azure module while it is away wait for it: the hub's session keeps its broker session.
      azure.write(JSON.stringify({ cmd: 'close' }));
      expect(await azure.exited).toEqual({ code: 0, signal: null });
      const ek = await connect(untypedModule, { deviceId: device, moduleId: 'ek', transport: broker.transport() });
      try {
        for (let n = 0; n < 5; n++)
          await ek.send('out', new TextEncoder().encode(String(n)), { messageId: `away-${n}` });
      } finally {
        await ek.close();
      }
      const back = processes.start(AZURE_MODULE, { ...variables, HUB_DEVICE_ID: device }, { stdin: true });
      for (let n = 0; n < 5; n++) {
        await back.line((l) => parseEvent(l)?.messageId === `away-${n}`, 15_000, `input away-${n} after the return`);
      }

      // A module the hub has no key for is refused, and the hub says so.
      const stranger = processes.start(
        AZURE_MODULE,
        {
          EdgeHubConnectionString: (variables.EdgeHubConnectionString as string).replace(
            'ModuleId=azure',
            'ModuleId=stranger',
          ),
          EdgeModuleCACertificateFile: variables.EdgeModuleCACertificateFile as string,
        },
        { stdin: true },
      );
      await stranger.line((l) => parseEvent(l)?.what === 'open', 15_000, 'the refusal');
      expect(hub.err()).toContain('module stranger has no key on this hub');
    });
  });
}
