// `edgekit bridge`: renders files and connects to nothing. What it writes runs on real Mosquittos in
// test/integration/mqtt/bridge-device-to-cloud.test.ts and on real RabbitMQ nodes in
// test/integration/amqp/bridge-device-to-cloud.test.ts; here, its options, files and refusals.
import { mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { cli } from './scenarios.js';

const dir = () => mkdtempSync(path.join(tmpdir(), 'edgekit-bridge-'));

describe('edgekit bridge', () => {
  it('prints the configuration for the device', async () => {
    const run = await cli(['bridge', 'gw-1', '--cloud', 'mqtts://cloud.example.com:8883', '--ca', '/etc/ca.pem']);
    expect(run).toMatchObject({ code: 0, stderr: '' });
    expect(run.stdout).toContain('connection edgekit-gw-1\naddress cloud.example.com:8883\n');
    expect(run.stdout).toContain('bridge_cafile /etc/ca.pem\n');
    expect(run.stdout).toContain('topic edgekit/v1/upstream/gw-1/# out 1\n');
  });

  it('writes the configuration with the password, and the cloud role, readable by the owner only', async () => {
    const where = dir();
    const secret = path.join(where, 'secret');
    writeFileSync(secret, 'hunter2\n');
    const out = path.join(where, 'conf.d', 'edgekit-bridge.conf');
    const role = path.join(where, 'role.json');
    const run = await cli([
      'bridge',
      'gw-1',
      '--cloud',
      'mqtts://cloud.example.com',
      '--username',
      'bridge-gw-1',
      '--password-file',
      secret,
      '--out',
      out,
      '--cloud-role',
      role,
    ]);
    expect(run).toMatchObject({ code: 0, stdout: '' });
    expect(run.stderr).toBe(`edgekit bridge: wrote ${out} and ${role}\n`);
    expect(readFileSync(out, 'utf8')).toContain('remote_username bridge-gw-1\nremote_password hunter2\n');
    expect(statSync(out).mode & 0o777).toBe(0o600);
    const written = JSON.parse(readFileSync(role, 'utf8'));
    expect(written.rolename).toBe('edgekit-bridge-gw-1');
    expect(written.acls).toContainEqual({
      acltype: 'publishClientSend',
      topic: 'edgekit/v1/upstream/gw-1/#',
      priority: 0,
      allow: true,
    });
  });

  it('prints JSON for scripts', async () => {
    const run = await cli(['bridge', 'gw-1', '--cloud', 'mqtt://127.0.0.1:1883', '--json']);
    expect(run.code).toBe(0);
    const parsed = JSON.parse(run.stdout);
    expect(parsed.linkTopic).toBe('edgekit/v1/link/gw-1');
    expect(parsed.topics).toContainEqual({
      topic: 'edgekit/v1/twin/gw-1/+/desired',
      direction: 'in',
      what: 'desired properties (retained)',
    });
  });

  it.each([
    [['bridge'], /missing <device>/],
    [['bridge', 'gw 1', '--cloud', 'mqtt://c'], /device id/],
    [['bridge', 'gw-1'], /missing --cloud/],
    [['bridge', 'gw-1', '--cloud', 'mqtt://c', '--broker', 'mqtt://d'], /connects to no broker/],
    [['bridge', 'gw-1', '--cloud', 'mqtt://c', '--password', 'p'], /--password-file/],
    [['bridge', 'gw-1', '--cloud', 'amqps://rabbit'], /needs the device's modules: give --modules a,b or --deployment/],
    [['bridge', 'gw-1', '--cloud', 'amqps://rabbit', '--modules', 'a', '--deployment', 'd.json'], /one of them/],
    [['bridge', 'gw-1', '--cloud', 'amqps://rabbit', '--modules', 'a,b c'], /module id "b c"/],
    [
      ['bridge', 'gw-1', '--cloud', 'amqps://rabbit', '--modules', 'a', '--cloud-role', 'r.json'],
      /--cloud-role is only for an MQTT cloud/,
    ],
    [
      ['bridge', 'gw-1', '--cloud', 'amqps://rabbit', '--modules', 'a', '--client-id', 'x'],
      /--client-id is only for an MQTT cloud/,
    ],
    [['bridge', 'gw-1', '--cloud', 'mqtts://c', '--modules', 'a'], /--modules is only for a RabbitMQ cloud/],
    [
      ['bridge', 'gw-1', '--cloud', 'mqtts://c', '--cloud-definitions', 'c.json'],
      /--cloud-definitions is only for a RabbitMQ cloud/,
    ],
    [['bridge', 'gw-1', '--cloud', 'amqp://rabbit', '--modules', 'a', '--ca', '/ca.pem'], /tls options need an amqps/],
    [['bridge', 'gw-1', '--cloud', 'amqps://u:p@rabbit', '--modules', 'a'], /has credentials/],
    [['bridge', 'gw-1', '--cloud', 'mqtt://c', '--keepalive', '1.5'], /--keepalive must be a whole number/],
    [
      ['bridge', 'gw-1', '--cloud', 'mqtt://c', '--keepalive', '2'],
      /keepaliveInSeconds must be a whole number of seconds from 5/,
    ],
    [['bridge', 'gw-1', '--cloud', 'mqtt://c', '--ca', '/ca.pem'], /tls options need an mqtts/],
    [['bridge', 'gw-1', 'extra', '--cloud', 'mqtt://c'], /unexpected argument "extra"/],
  ])('%j is a usage error', async (args, message) => {
    const run = await cli(args);
    expect(run.code).toBe(2);
    expect(run.stdout).toBe('');
    expect(run.stderr).toMatch(message);
  });

  it('prints the device definitions for a RabbitMQ cloud, one shovel per flow', async () => {
    const run = await cli(['bridge', 'gw-1', '--cloud', 'amqps://rabbit.example.com', '--modules', 'sensor,filter']);
    expect(run).toMatchObject({ code: 0, stderr: '' });
    const definitions = JSON.parse(run.stdout);
    expect(definitions.parameters.map((p: { name: string }) => p.name)).toEqual([
      'edgekit-bridge-gw-1-upstream',
      'edgekit-bridge-gw-1-deadletter-filter',
      'edgekit-bridge-gw-1-deadletter-sensor',
      'edgekit-bridge-gw-1-reported',
      'edgekit-bridge-gw-1-replies',
      'edgekit-bridge-gw-1-desired',
      'edgekit-bridge-gw-1-calls',
    ]);
    expect(definitions.parameters[0].value['dest-uri']).toMatch(/^amqps:\/\/rabbit\.example\.com\/%2F\?heartbeat=30&/);
  });

  it("writes both brokers' definitions for a RabbitMQ cloud from the deployment, the device's readable by the owner only", async () => {
    const where = dir();
    const secret = path.join(where, 'secret');
    writeFileSync(secret, 'hunter2\n');
    const manifest = fileURLToPath(new URL('../../examples/deployment.json', import.meta.url));
    const out = path.join(where, 'bridge-device.json');
    const cloud = path.join(where, 'bridge-cloud.json');
    const run = await cli([
      'bridge',
      'gw-1',
      '--cloud',
      'amqps://rabbit.example.com/edge',
      '--deployment',
      manifest,
      '--username',
      'bridge-gw-1',
      '--password-file',
      secret,
      '--ca',
      '/etc/rabbitmq/cloud-ca.pem',
      '--keepalive',
      '10',
      '--prefix',
      'acme',
      '--priorities',
      '--out',
      out,
      '--cloud-definitions',
      cloud,
    ]);
    expect(run).toMatchObject({ code: 0, stdout: '' });
    expect(run.stderr).toBe(`edgekit bridge: wrote ${out} and ${cloud}\n`);
    expect(statSync(out).mode & 0o777).toBe(0o600);
    const device = JSON.parse(readFileSync(out, 'utf8'));
    expect(device.parameters[0].value['dest-uri']).toBe(
      'amqps://bridge-gw-1:hunter2@rabbit.example.com/edge?heartbeat=10&connection_timeout=30000' +
        '&cacertfile=%2Fetc%2Frabbitmq%2Fcloud-ca.pem&verify=verify_peer&server_name_indication=rabbit.example.com',
    );
    expect(device.parameters[0].value['src-queue-args']).toEqual({ 'x-max-priority': 9 });
    const cloudDefinitions = JSON.parse(readFileSync(cloud, 'utf8'));
    expect(cloudDefinitions.parameters).toEqual([]);
    expect(cloudDefinitions.queues.map((q: { name: string }) => q.name)).toContain('acme.bridge.gw-1.down');
    // The modules of examples/deployment.json.
    expect(device.parameters.map((p: { name: string }) => p.name)).toContain(
      'edgekit-bridge-gw-1-deadletter-SimulatedTemperatureSensor',
    );
    expect(readFileSync(cloud, 'utf8')).not.toContain('hunter2');
  });

  it('prints everything rendered for a RabbitMQ cloud as JSON', async () => {
    const run = await cli(['bridge', 'gw-1', '--cloud', 'amqp://127.0.0.1:5672', '--modules', 'a', '--json']);
    expect(run.code).toBe(0);
    const parsed = JSON.parse(run.stdout);
    expect(Object.keys(parsed).sort()).toEqual(['cloud', 'cloudPermissions', 'device', 'flows']);
    expect(parsed.flows).toContainEqual(
      expect.objectContaining({ shovel: 'edgekit-bridge-gw-1-calls', direction: 'down' }),
    );
  });

  it('a deployment that cannot be read fails with exit 1', async () => {
    const run = await cli(['bridge', 'gw-1', '--cloud', 'amqps://rabbit', '--deployment', '/nonexistent/d.json']);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/cannot read \/nonexistent\/d\.json/);
  });

  it('a password file that cannot be read fails with exit 1', async () => {
    const run = await cli([
      'bridge',
      'gw-1',
      '--cloud',
      'mqtt://c',
      '--username',
      'u',
      '--password-file',
      '/nonexistent/x',
    ]);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/cannot read --password-file \/nonexistent\/x/);
  });
});
