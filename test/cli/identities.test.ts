/**
 * `edgekit identities` without a broker: the files it writes and their modes, the store that makes re-runs
 * incremental, rotation (a new password, the old certificate revoked), a module removed from the deployment, client
 * certificates from a CA, and its usage errors. The brokers' side is in the mqtt and amqp integration tests.
 */
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { readIdentityStore } from '../../src/service/identities.js';
import { makeCa, openssl, tempFolder } from '../support/openssl-ca.js';
import { cli } from './scenarios.js';

const MANIFEST = path.join(import.meta.dirname, '../../examples/deployment.json');
const folders: Array<{ remove(): void }> = [];
afterAll(() => {
  for (const folder of folders) folder.remove();
});
const fresh = () => {
  const folder = tempFolder('edgekit-identities-');
  folders.push(folder);
  return folder.dir;
};
const read = (out: string, ...parts: string[]) => readFileSync(path.join(out, ...parts), 'utf8');
const mode = (file: string) => statSync(file).mode & 0o777;
const password = (out: string, username: string) => read(out, 'credentials', ...username.split('/'), 'password');

describe('edgekit identities', () => {
  test('writes a credential per module and the operator, the broker configurations and the store; nothing secret is readable by others', async () => {
    const out = fresh();
    const run = await cli(['identities', MANIFEST, '--device', 'gw-1', '--out', out]);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(run.stdout).toContain('new credential for module gw-1/filter: credentials/gw-1/filter/password');
    expect(run.stdout).toContain('new credential for operator $operator/operator');
    for (const username of ['gw-1/filter', 'gw-1/SimulatedTemperatureSensor', '$operator/operator']) {
      const file = path.join(out, 'credentials', ...username.split('/'), 'password');
      expect(password(out, username)).toMatch(/^[A-Za-z0-9_-]{32}\n$/);
      expect(mode(file)).toBe(0o600);
      expect(mode(path.dirname(file))).toBe(0o700);
    }
    const store = readIdentityStore(JSON.parse(read(out, 'identities.json')));
    expect(Object.keys(store.credentials).sort()).toEqual([
      '$operator/operator',
      'gw-1/SimulatedTemperatureSensor',
      'gw-1/filter',
    ]);
    // No password anywhere but in its own file.
    const everything = ['identities.json', 'mosquitto/dynamic-security.json', 'rabbitmq/definitions.json']
      .map((file) => read(out, file))
      .join('\n');
    expect(everything).not.toContain(password(out, 'gw-1/filter').trim());
    const dynsec = JSON.parse(read(out, 'mosquitto', 'dynamic-security.json'));
    expect(dynsec.clients.map((c: { username: string }) => c.username).sort()).toEqual([
      '$operator/operator',
      'gw-1/SimulatedTemperatureSensor',
      'gw-1/filter',
    ]);
    expect(read(out, 'mosquitto', 'edgekit.conf')).toMatch(/plugin_opt_config_file .*dynamic-security\.json/);
    const definitions = JSON.parse(read(out, 'rabbitmq', 'definitions.json'));
    expect(definitions.users.map((u: { name: string }) => u.name).sort()).toEqual([
      '$operator/operator',
      'gw-1/SimulatedTemperatureSensor',
      'gw-1/filter',
    ]);
    for (const file of ['identities.json', 'mosquitto/dynamic-security.json', 'rabbitmq/definitions.json']) {
      expect(mode(path.join(out, file))).toBe(0o600);
    }
  });

  test('a re-run issues nothing; --rotate replaces one credential; a second device adds its own', async () => {
    const out = fresh();
    await cli(['identities', MANIFEST, '--device', 'gw-1', '--out', out]);
    const before = password(out, 'gw-1/filter');
    const again = await cli(['identities', MANIFEST, '--device', 'gw-1', '--out', out, '--json']);
    expect(again.code).toBe(0);
    expect(JSON.parse(again.stdout)).toMatchObject({ issued: [], revoked: [] });
    const rotated = await cli(['identities', MANIFEST, '--device', 'gw-1', '--out', out, '--rotate', 'filter']);
    expect(rotated.code).toBe(0);
    expect(rotated.stdout).toContain('revoked gw-1/filter');
    expect(password(out, 'gw-1/filter')).not.toBe(before);
    const second = await cli(['identities', MANIFEST, '--device', 'gw-2', '--out', out, '--json']);
    expect(
      JSON.parse(second.stdout)
        .issued.map((c: { username: string }) => c.username)
        .sort(),
    ).toEqual(['gw-2/SimulatedTemperatureSensor', 'gw-2/filter']);
    const dynsec = JSON.parse(read(out, 'mosquitto', 'dynamic-security.json'));
    expect(dynsec.clients).toHaveLength(5);
  });

  test('with a CA: a client certificate per new credential, and rotation puts the old one on the revocation list', async () => {
    const out = fresh();
    const ca = makeCa(fresh(), 'ca');
    const args = [
      'identities',
      MANIFEST,
      '--device',
      'gw-1',
      '--out',
      out,
      '--ca',
      ca.certFile,
      '--ca-key',
      ca.keyFile,
    ];
    expect((await cli(args)).code).toBe(0);
    const certFile = path.join(out, 'credentials', 'gw-1', 'filter', 'cert.pem');
    const subject = openssl(['x509', '-in', certFile, '-noout', '-subject'], out);
    expect(subject.stdout).toContain('CN = gw-1/filter');
    expect(openssl(['verify', '-CAfile', ca.certFile, certFile], out).ok).toBe(true);
    const oldCert = path.join(out, 'old-filter.pem');
    writeFileSync(oldCert, read(out, 'credentials', 'gw-1', 'filter', 'cert.pem'));
    expect((await cli([...args, '--rotate', 'filter'])).code).toBe(0);
    const crl = path.join(out, 'ca', 'crl.pem');
    const check = (cert: string) =>
      openssl(['verify', '-crl_check', '-CRLfile', crl, '-CAfile', ca.certFile, cert], out);
    expect(check(oldCert).ok).toBe(false);
    expect(check(certFile).ok).toBe(true);
  });

  test('--publish device writes no RabbitMQ definitions (it needs a binding per input) and says so', async () => {
    const out = fresh();
    const run = await cli(['identities', MANIFEST, '--device', 'gw-1', '--out', out, '--publish', 'device']);
    expect(run.code).toBe(0);
    expect(run.stdout).toContain('no RabbitMQ definitions');
    expect(() => read(out, 'rabbitmq', 'definitions.json')).toThrow();
    const dynsec = read(out, 'mosquitto', 'dynamic-security.json');
    expect(dynsec).toContain('inputs/gw-1/+/+/gw-1/filter');
  });

  test('usage errors exit 2 with the reason; a bad manifest or store exits 1', async () => {
    const out = fresh();
    expect((await cli(['identities', MANIFEST, '--out', out])).stderr).toContain('missing --device');
    expect((await cli(['identities', '--device', 'gw-1'])).code).toBe(2);
    expect((await cli(['identities', MANIFEST, '--device', 'gw-1', '--publish', 'all'])).code).toBe(2);
    expect((await cli(['identities', MANIFEST, '--device', 'gw-1', '--ca', 'x.pem'])).stderr).toContain(
      '--ca and --ca-key go together',
    );
    expect((await cli(['identities', MANIFEST, '--device', 'gw-1', '--replica', 'filter'])).code).toBe(2);
    const rotateGhost = await cli(['identities', MANIFEST, '--device', 'gw-1', '--out', out, '--rotate', 'ghost']);
    expect(rotateGhost.code).toBe(1);
    expect(rotateGhost.stderr).toMatch(/cannot rotate "ghost"/);
    writeFileSync(path.join(out, 'identities.json'), '{"version":7}');
    const damaged = await cli(['identities', MANIFEST, '--device', 'gw-1', '--out', out]);
    expect(damaged.code).toBe(1);
    expect(damaged.stderr).toMatch(/identity store is not valid: version 7/);
  });
});
