/**
 * `edgekit hub --identities` on a Mosquitto that enforces `edgekit identities`' access plan: an unmodified Azure
 * module's key is derived from the credential `edgekit identities` issued it, and the hub logs its session in to the
 * broker as that module, so the broker's permissions hold for Azure modules as for edgekit ones.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { main } from '../../../src/cli/index.js';
import { connect } from '../../../src/connect.js';
import { untypedModule } from '../../../src/core/contract.js';
import type { InboundMessage } from '../../../src/core/types.js';
import { deriveModuleKey } from '../../../src/hub/sas.js';
import { connectService } from '../../../src/service/client.js';
import { mosquittoSecurityConfig, mqtt } from '../../../src/transports/mqtt/index.js';
import { cli } from '../../cli/scenarios.js';
import { type Mosquitto, startMosquitto } from '../brokers/mosquitto.js';
import { freePort } from '../support/loopback.js';
import { parseEvent, useProcesses } from './fixtures/child-process.js';
import { unique } from './support/fixtures.js';
import { Inbox } from './support/wait.js';

const AZURE_MODULE = fileURLToPath(new URL('../../hub/fixtures/azure-module.cjs', import.meta.url));
const processes = useProcesses();
const device = unique('hubid');
const folder = mkdtempSync(path.join(tmpdir(), 'edgekit-hub-identities-'));
const identities = path.join(folder, 'identities');
const manifestFile = path.join(folder, 'deployment.json');
const passwordOf = (username: string) =>
  readFileSync(path.join(identities, 'credentials', ...username.split('/'), 'password'), 'utf8').trim();
let broker: Mosquitto;

beforeAll(async () => {
  writeFileSync(
    manifestFile,
    JSON.stringify({
      modulesContent: {
        $edgeAgent: { 'properties.desired': { modules: { azure: {}, ek: {} } } },
        $edgeHub: {
          'properties.desired': {
            schemaVersion: '1.1',
            routes: {
              toAzure: 'FROM /messages/modules/ek/outputs/out INTO BrokeredEndpoint("/modules/azure/inputs/echo")',
              back: 'FROM /messages/modules/azure/outputs/echoed INTO BrokeredEndpoint("/modules/ek/inputs/in")',
            },
          },
        },
      },
    }),
  );
  const made = await cli(['identities', manifestFile, '--device', device, '--out', identities]);
  expect(made).toMatchObject({ code: 0, stderr: '' });
  const json = JSON.parse(readFileSync(path.join(identities, 'mosquitto', 'dynamic-security.json'), 'utf8'));
  broker = await startMosquitto({
    dynamicSecurity: { json, config: (file) => mosquittoSecurityConfig({ dynamicSecurityFile: file }) },
  });
  const operator = await connectService({
    transport: mqtt({ url: broker.url, username: '$operator/operator', password: passwordOf('$operator/operator') }),
    identity: '$operator/operator',
  });
  try {
    await operator.applyDeployment(device, JSON.parse(readFileSync(manifestFile, 'utf8')));
  } finally {
    await operator.close();
  }
}, 60_000);

afterAll(async () => {
  await broker?.stop();
  rmSync(folder, { recursive: true, force: true });
});

it('derives the Azure module’s key from its credential and logs its session in as the module', async () => {
  const [mqttPort, httpsPort] = [await freePort(), await freePort()];
  const common = ['--device', device, '--identities', identities, '--state', path.join(folder, 'hub')];
  const env = await cli(['hub', 'env', 'azure', ...common, '--mqtt-port', String(mqttPort), '--json']);
  expect(env).toMatchObject({ code: 0, stderr: '' });
  const variables = JSON.parse(env.stdout) as Record<string, string>;
  const key = deriveModuleKey(passwordOf(`${device}/azure`), 'edgekit/hub/sas-key/v1');
  expect(variables.EdgeHubConnectionString).toContain(`;ModuleId=azure;SharedAccessKey=${key}`);
  const missing = await cli(['hub', 'env', 'stranger', ...common]);
  expect(missing.code).toBe(2);
  expect(missing.stderr).toContain('credentials');

  const stop = new AbortController();
  const out = new Inbox<string>();
  let err = '';
  const hub = main(
    ['hub', ...common, '--mqtt-port', String(mqttPort), '--https-port', String(httpsPort), '--broker', broker.url],
    {
      stdout: {
        write: (s: string) => {
          for (const line of s.split('\n')) if (line) out.push(line);
        },
      },
      stderr: { write: (s: string) => (err += s) },
      readFile: (file) => readFileSync(file, 'utf8'),
      env: {},
      signal: stop.signal,
    },
  );
  try {
    await out.find((l) => l.startsWith('edgekit hub for device'), 15_000, 'the hub listening');
    const ek = await connect(untypedModule, {
      deviceId: device,
      moduleId: 'ek',
      transport: mqtt({ url: broker.url, username: `${device}/ek`, password: passwordOf(`${device}/ek`) }),
    });
    try {
      const echoes = new Inbox<InboundMessage<Uint8Array>>();
      await ek.onInput('in', (m) => echoes.push(m));
      const azure = processes.start(AZURE_MODULE, { ...variables, HUB_DEVICE_ID: device }, { stdin: true });
      await azure.line((l) => parseEvent(l)?.event === 'ready', 15_000, 'the Azure module ready');
      await ek.send('out', new TextEncoder().encode('{"hello":"azure"}'), { contentType: 'application/json' });
      const echo = await echoes.find(() => true, 15_000, 'the echo');
      expect(new TextDecoder().decode(echo.body)).toBe('{"hello":"azure"}');
      // The broker proved who sent it: the Azure module's own identity.
      expect(echo.publisher).toBe(`${device}/azure`);
      expect(echo.source).toMatchObject({ deviceId: device, moduleId: 'azure', output: 'echoed' });
    } finally {
      await ek.close();
    }
  } finally {
    stop.abort();
    expect(await hub).toBe(0);
  }
  expect(err).toBe('');
});
