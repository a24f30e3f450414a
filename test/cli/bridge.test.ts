// `edgekit bridge`: renders files and connects to nothing. The configuration it writes runs on real Mosquittos in
// test/integration/mqtt/bridge-device-to-cloud.test.ts; here, its options, files and refusals.
import { mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
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
    [['bridge', 'gw-1', '--cloud', 'amqps://rabbit'], /RabbitMQ cloud is not bridged yet/],
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
