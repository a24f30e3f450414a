/**
 * The hub's side of the edgeHub protocol against a raw MQTT 3.1.1 client (mqtt.js), for what Microsoft's SDK never
 * sends: another module's topics, unknown topics, malformed twin and method traffic, oversize messages. None of it
 * crashes the hub or reaches another module; each is refused or answered, and counted or reported.
 */
import { randomBytes } from 'node:crypto';
import * as mqttjs from 'mqtt';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { connect } from '../../src/connect.js';
import { untypedModule } from '../../src/core/contract.js';
import type { ModuleClient } from '../../src/core/types.js';
import { type Hub, startHub } from '../../src/hub/index.js';
import { moduleResourceUri, signSas } from '../../src/hub/sas.js';
import { createCertificateAuthority, issueServerCertificate } from '../../src/service/certificates.js';
import { connectService } from '../../src/service/client.js';
import { MemoryBroker, memory } from '../../src/transports/memory/index.js';
import { Inbox } from '../integration/mqtt/support/wait.js';

const HUB = 'hub.test';
const ca = createCertificateAuthority();
const server = issueServerCertificate({ ca, dnsNames: ['localhost'] });
let broker: MemoryBroker;
let hub: Hub;
let deviceId: string;
const keys: Record<string, string> = { a: randomBytes(32).toString('base64'), b: randomBytes(32).toString('base64') };
const errors: string[] = [];
const clients: mqttjs.MqttClient[] = [];
const modules: ModuleClient<typeof untypedModule>[] = [];

beforeEach(async () => {
  broker = new MemoryBroker();
  deviceId = `proto-${randomBytes(3).toString('hex')}`;
  errors.length = 0;
  const service = await connectService({ transport: memory({ broker }) });
  await service.applyDeployment(deviceId, {
    modulesContent: {
      $edgeAgent: { 'properties.desired': { modules: { a: {}, b: {}, ek: {} } } },
      $edgeHub: {
        'properties.desired': {
          schemaVersion: '1.1',
          routes: { r: 'FROM /messages/modules/ek/outputs/* INTO BrokeredEndpoint("/modules/b/inputs/in")' },
        },
      },
    },
  });
  await service.close();
  hub = await startHub({
    deviceId,
    hubHostName: HUB,
    transport: memory({ broker }),
    keys,
    tls: { cert: server.cert, key: server.key, ca: ca.cert },
    mqttPort: 0,
    httpsPort: 0,
    onError: (error) => errors.push(`${error.code}: ${error.message}`),
  });
});

afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.endAsync(true)));
  await Promise.all(modules.splice(0).map((m) => m.close({ drainTimeoutInMs: 500 })));
  await hub.close();
});

/** A raw MQTT 3.1.1 client of the hub, speaking as the Azure SDK does. */
function connectOptions(clientId: string, username: string, password: string): mqttjs.IClientOptions {
  return {
    protocol: 'mqtts',
    host: '127.0.0.1',
    port: hub.mqttPort,
    servername: 'localhost',
    ca: ca.cert,
    protocolVersion: 4,
    clientId,
    username,
    password,
    reconnectPeriod: 0,
  };
}

async function raw(
  moduleId: string,
): Promise<{ client: mqttjs.MqttClient; messages: Inbox<{ topic: string; payload: string }> }> {
  const client = await mqttjs.connectAsync(
    connectOptions(
      `${deviceId}/${moduleId}`,
      `${HUB}/${deviceId}/${moduleId}/?api-version=2021-04-12`,
      signSas(
        keys[moduleId] as string,
        moduleResourceUri(HUB, deviceId, moduleId),
        Math.floor(Date.now() / 1000) + 600,
      ),
    ),
  );
  clients.push(client);
  const messages = new Inbox<{ topic: string; payload: string }>();
  client.on('message', (topic, payload) => messages.push({ topic, payload: payload.toString() }));
  return { client, messages };
}

it('refuses subscriptions to another module’s inputs and to anything edgeHub does not know', async () => {
  const { client } = await raw('a');
  // mqtt.js rejects a subscription the server grants with 0x80 (failure).
  await expect(client.subscribeAsync(`devices/${deviceId}/modules/b/inputs/#`, { qos: 1 })).rejects.toThrow(
    /Subscribe error/,
  );
  await expect(client.subscribeAsync('#', { qos: 1 })).rejects.toThrow(/Subscribe error/);
  const granted = await client.subscribeAsync(`devices/${deviceId}/modules/a/inputs/#`, { qos: 1 });
  expect(granted.map((g) => g.qos)).toEqual([1]);
});

it('never lets one module read another’s messages or send as it', async () => {
  const a = await raw('a');
  const b = await raw('b');
  await b.client.subscribeAsync(`devices/${deviceId}/modules/b/inputs/#`, { qos: 1 });
  // a publishes to b's input topic directly: dropped and reported, never delivered.
  await a.client.publishAsync(`devices/${deviceId}/modules/b/inputs/in/x=1`, 'forged', { qos: 1 });
  expect(hub.stats().unknownTopics).toBe(1);
  expect(errors.join('\n')).toContain('a topic edgeHub does not know');
  // a sends as b: its connection is closed.
  const closed = new Promise<void>((resolve) => a.client.once('close', () => resolve()));
  a.client.publish(`devices/${deviceId}/modules/b/messages/events/`, 'as b', { qos: 1 });
  await closed;
  // The only thing b gets is what the routes send it.
  const ek = await connect(untypedModule, { deviceId, moduleId: 'ek', transport: memory({ broker }) });
  modules.push(ek);
  await ek.send('out', new TextEncoder().encode('routed'));
  const got = await b.messages.find(() => true, 10_000, 'the routed message');
  expect(got.payload).toBe('routed');
  expect(got.topic).toMatch(new RegExp(`^devices/${deviceId}/modules/b/inputs/in/.*%24\\.cmid=ek`));
  expect(b.messages.items).toHaveLength(1);
});

it('answers malformed twin and method traffic instead of crashing', async () => {
  const { client, messages } = await raw('a');
  await client.subscribeAsync(['$iothub/twin/res/#', '$iothub/methods/POST/#'], { qos: 0 });
  await client.publishAsync('$iothub/twin/PATCH/properties/reported/?$rid=1', '{not json');
  await client.publishAsync('$iothub/twin/PATCH/properties/reported/?$rid=2', '[1,2]');
  await client.publishAsync('$iothub/twin/PATCH/properties/reported/?$rid=3', '{"ok":true}');
  const answers = [];
  for (const rid of ['1', '2', '3']) {
    answers.push(await messages.find((m) => m.topic.endsWith(`?$rid=${rid}`), 5_000, `the answer to ${rid}`));
  }
  expect(answers.map((m) => m.topic.split('/')[3])).toEqual(['400', '400', '204']);
  await client.publishAsync('$iothub/twin/GET/?$rid=4', ' ');
  const twin = await messages.find((m) => m.topic.endsWith('?$rid=4'), 5_000, 'the twin');
  expect(JSON.parse(twin.payload)).toEqual({ desired: { $version: 0 }, reported: { ok: true, $version: 1 } });

  // A method answer that is not JSON becomes a 500 for the caller.
  const service = await connectService({ transport: memory({ broker }) });
  try {
    const call = service.invoke(deviceId, 'a', 'm', { q: 1 }, { timeoutInMs: 5_000 });
    const request = await messages.find((m) => m.topic.startsWith('$iothub/methods/POST/m/'), 5_000, 'the request');
    expect(JSON.parse(request.payload)).toEqual({ q: 1 });
    const rid = request.topic.split('$rid=')[1];
    await client.publishAsync(`$iothub/methods/res/200/?$rid=${rid}`, '<html>');
    expect(await call).toMatchObject({ ok: false, status: 500 });
  } finally {
    await service.close();
  }
});

it('drops an output edgekit cannot carry (over 256 KiB), counted and reported, and keeps the connection', async () => {
  const { client } = await raw('a');
  await client.publishAsync(`devices/${deviceId}/modules/a/messages/events/%24.on=big/`, Buffer.alloc(300 * 1024), {
    qos: 1,
  });
  expect(hub.stats()).toMatchObject({ outputsRefused: 1, outputs: 0 });
  expect(errors.join('\n')).toContain('message-too-large');
  await client.publishAsync(`devices/${deviceId}/modules/a/messages/events/%24.on=small/`, 'ok', { qos: 1 });
  expect(hub.stats().outputs).toBe(1);
});

it('refuses a token for another module, an expired one and a client id of another device', async () => {
  const attempt = (clientId: string, username: string, password: string) =>
    mqttjs.connectAsync(connectOptions(clientId, username, password)).then(
      (c) => c.endAsync().then(() => 'connected'),
      (e: Error) => e.message,
    );
  const later = Math.floor(Date.now() / 1000) + 600;
  const user = (m: string) => `${HUB}/${deviceId}/${m}/?api-version=2021-04-12`;
  const tokenOfB = signSas(keys.b as string, moduleResourceUri(HUB, deviceId, 'b'), later);
  expect(await attempt(`${deviceId}/a`, user('a'), tokenOfB)).toMatch(/Bad username or password/);
  const expired = signSas(keys.a as string, moduleResourceUri(HUB, deviceId, 'a'), Math.floor(Date.now() / 1000) - 1);
  expect(await attempt(`${deviceId}/a`, user('a'), expired)).toMatch(/Bad username or password/);
  expect(await attempt(`other/a`, `${HUB}/other/a/?api-version=1`, tokenOfB)).toMatch(/Not authorized/);
  expect(hub.stats().refused).toBe(3);
  expect(hub.connected()).toEqual([]);
});

it('closes a module that publishes to $SYS, which aedes would act on, and leaves the others connected', async () => {
  const a = await raw('a');
  const b = await raw('b');
  await b.client.subscribeAsync('$iothub/twin/res/#', { qos: 0 });
  const closed = new Promise<void>((resolve) => a.client.once('close', () => resolve()));
  // In aedes, this notice makes it close the named client (another broker "took it over").
  a.client.publish('$SYS/other-broker/new/clients', `${deviceId}/b`, { qos: 0 });
  await closed;
  await b.client.publishAsync('$iothub/twin/GET/?$rid=after', ' ');
  const answer = await b.messages.find((m) => m.topic.endsWith('?$rid=after'), 5_000, 'b still answered');
  expect(answer.topic).toMatch(/^\$iothub\/twin\/res\/200\//);
  expect(hub.stats().unknownTopics).toBe(1);
  expect(hub.connected()).toEqual(['b']);
});

it('refuses unusable TLS material and keys at start, with the option named', async () => {
  const options = {
    deviceId: 'd',
    keys: {},
    tls: { cert: server.cert, key: server.key },
    mqttPort: 0,
    httpsPort: 0,
  };
  await expect(startHub({ ...options, tls: { cert: 'not a certificate', key: server.key } })).rejects.toThrow(
    /startHub: tls is not a usable certificate/,
  );
  await expect(startHub({ ...options, tls: { cert: server.cert, key: ca.key } })).rejects.toThrow(RangeError);
  await expect(startHub({ ...options, keys: { a: 42 as unknown as string } })).rejects.toThrow(
    'startHub: keys["a"] must be a base64 key',
  );
  await expect(startHub({ ...options, mqttPort: 70_000 })).rejects.toThrow(RangeError);
  await expect(startHub({ ...options, deviceId: 'a/b' })).rejects.toThrow(RangeError);
});
