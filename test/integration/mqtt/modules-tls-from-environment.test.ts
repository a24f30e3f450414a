/**
 * Modules configured the way they run in a container — `fromEnvironment(Contract, { transports: { mqtt } })` with
 * EDGEKIT_BROKER_URL=mqtts://…, a user name and password, and the test CA, client certificate and key as files —
 * against a real Mosquitto that requires TLS with a client certificate and a password: messages, twins and methods
 * work end to end, and a wrong password or an untrusted broker certificate fail the start with `connection-failed`.
 */
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type FromEnvironmentOptions, fromEnvironment } from '../../../src/connect.js';
import type { ModuleContract } from '../../../src/core/contract.js';
import type { ModuleClient } from '../../../src/core/types.js';
import { isEdgeKitError } from '../../../src/errors.js';
import { defineModule, json, method, typed } from '../../../src/index.js';
import { deployRoutes, readTwin } from '../../../src/service/operations.js';
import { mqtt } from '../../../src/transports/mqtt/index.js';
import { type Mosquitto, startMosquitto } from '../brokers/mosquitto.js';
import { QUICK_RECONNECT, useModules } from './fixtures/module-clients.js';
import { transportFor, unique, useConnections } from './support/fixtures.js';
import { createTestPki, type TestPki } from './support/pki.js';
import { Inbox } from './support/wait.js';

let pki: TestPki;
let broker: Mosquitto;
const connections = useConnections();
const modules = useModules();

beforeAll(async () => {
  pki = createTestPki();
  broker = await startMosquitto({
    tls: { certFile: pki.serverCertFile, keyFile: pki.serverKeyFile, caFile: pki.caFile, requireCertificate: true },
    users: { modules: 's3cret' },
  });
});
afterAll(async () => {
  await broker?.stop();
  pki?.remove();
});

const Sensor = defineModule({ outputs: { temperature: json<{ celsius: number }>() } });
const Filter = defineModule({
  inputs: { input1: json<{ celsius: number }>() },
  reported: typed<{ last: number }>(),
  methods: { ping: method(typed<{ n: number }>(), typed<{ pong: number }>()) },
});

/** The variables a deployment would set for one module. */
function environment(deviceId: string, moduleId: string, overrides: Record<string, string> = {}) {
  return {
    IOTEDGE_DEVICEID: deviceId,
    IOTEDGE_MODULEID: moduleId,
    EDGEKIT_BROKER_URL: broker.url,
    EDGEKIT_USERNAME: 'modules',
    EDGEKIT_PASSWORD: 's3cret',
    EDGEKIT_CA_FILE: pki.caFile,
    EDGEKIT_CERT_FILE: path.join(pki.dir, 'client.pem'),
    EDGEKIT_KEY_FILE: path.join(pki.dir, 'client.key'),
    ...overrides,
  };
}

async function start<C extends ModuleContract>(
  contract: C,
  env: Record<string, string>,
  options: Partial<FromEnvironmentOptions> = {},
): Promise<ModuleClient<C>> {
  const client = await fromEnvironment(contract, {
    transports: { mqtt },
    env,
    reconnect: QUICK_RECONNECT,
    connectTimeoutInMs: 5_000,
    onError: () => undefined,
    ...options,
  });
  return modules.add(client);
}

/**
 * Start options that give up after the first failed attempt: the core retries a first connection until its budget
 * is spent and rethrows the last attempt's error, which is `timeout` when that attempt got only a sliver of the
 * budget — so a retried start does not reliably report the cause.
 */
const ONE_ATTEMPT: Partial<FromEnvironmentOptions> = {
  connectTimeoutInMs: 10_000,
  reconnect: { initialDelayInMs: 60_000, maxDelayInMs: 60_000, jitter: 0 },
};

async function failure(promise: Promise<unknown>): Promise<Error> {
  const error = await promise.then(
    () => new Error('expected the start to fail'),
    (e: unknown) => e as Error,
  );
  expect(isEdgeKitError(error, 'connection-failed')).toBe(true);
  return error;
}

describe('modules configured from the environment, over TLS with a password', () => {
  it('send through a route, report, and answer a method', async () => {
    const deviceId = unique('dev');
    expect(broker.url).toMatch(/^mqtts:\/\/127\.0\.0\.1:\d+$/);
    const operator = await connections.open(
      transportFor(broker.url, {
        tls: { ca: pki.ca, cert: pki.clientCert, key: pki.clientKey },
        username: 'modules',
        password: 's3cret',
      }),
      { clientId: `${deviceId}/operator` },
    );
    await deployRoutes(operator, deviceId, {
      toFilter:
        'FROM /messages/modules/sensor/outputs/temperature INTO BrokeredEndpoint("/modules/filter/inputs/input1")',
    });

    const filter = await start(Filter, environment(deviceId, 'filter'));
    const received = new Inbox<number>();
    await filter.onInput('input1', async (message) => {
      await filter.report({ last: message.body.celsius });
      received.push(message.body.celsius);
    });
    await filter.handle('ping', ({ n }) => ({ pong: n + 1 }));
    const sensor = await start(Sensor, environment(deviceId, 'sensor'));

    expect(await sensor.send('temperature', { celsius: 31.5 })).toMatchObject({ destinations: 1 });
    expect(await received.take(1, 10_000, 'the message over TLS')).toEqual([31.5]);
    expect((await readTwin(operator, deviceId, 'filter')).reported.properties).toEqual({ last: 31.5 });
    const answer = await sensor.invoke(Filter, 'filter', 'ping', { n: 41 }, { timeoutInMs: 5_000 });
    expect(answer).toEqual({ ok: true, status: 200, payload: { pong: 42 } });
  });

  it('fails the start with connection-failed on a wrong password', async () => {
    const env = environment(unique('dev'), 'sensor', { EDGEKIT_PASSWORD: 'wrong' });
    const error = await failure(start(Sensor, env, ONE_ATTEMPT));
    expect(error.message).toMatch(/user name or password|not authorized/);
  });

  it('fails the start with connection-failed when the CA does not vouch for the broker', async () => {
    const otherCa = path.join(pki.dir, 'other-ca.pem');
    const env = environment(unique('dev'), 'sensor', { EDGEKIT_CA_FILE: otherCa });
    const error = await failure(start(Sensor, env, ONE_ATTEMPT));
    expect(error.message).toMatch(/TLS|certificate/i);
  });

  it('names every unreadable file in one invalid-configuration error', async () => {
    const env = environment(unique('dev'), 'sensor', {
      EDGEKIT_CA_FILE: path.join(pki.dir, 'missing-ca.pem'),
      EDGEKIT_KEY_FILE: path.join(pki.dir, 'missing.key'),
    });
    const error = await start(Sensor, env).then(
      () => new Error('expected the start to fail'),
      (e: unknown) => e as Error,
    );
    expect(isEdgeKitError(error, 'invalid-configuration')).toBe(true);
    expect(error.message).toContain('EDGEKIT_CA_FILE');
    expect(error.message).toContain('EDGEKIT_KEY_FILE');
  });
});
