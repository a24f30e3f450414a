import { describe, expect, test } from 'vitest';
import { readDeployment } from './deployment.js';
import { emptyIdentityStore, issueIdentities, readIdentityStore, withCertificate } from './identities.js';

const manifest = (modules: string[], routes: Record<string, string>) => ({
  modulesContent: {
    $edgeAgent: {
      'properties.desired': {
        modules: Object.fromEntries(modules.map((m) => [m, { type: 'docker', settings: { image: `${m}:1` } }])),
      },
    },
    $edgeHub: { 'properties.desired': { schemaVersion: '1.1', routes } },
  },
});

const deployment = readDeployment(
  manifest(['sensor', 'filter'], {
    toFilter: 'FROM /messages/modules/sensor/outputs/* INTO BrokeredEndpoint("/modules/filter/inputs/input1")',
    up: 'FROM /messages/modules/filter/outputs/output1 INTO $upstream',
  }),
);
// A stand-in hash: the store must keep what the hasher returns, never the password.
const hashers = { test: (password: string) => `hash(${password.length})` };

describe('issueIdentities', () => {
  test('a credential per module and one operator; the store keeps hashes, never a password', () => {
    const { store, issued, principals } = issueIdentities(undefined, deployment, 'gw-1', { hashers, now: 1 });
    expect(issued.map((c) => c.username).sort()).toEqual(['$operator/operator', 'gw-1/filter', 'gw-1/sensor']);
    for (const c of issued) expect(c.password).toMatch(/^[A-Za-z0-9_-]{32}$/);
    expect(new Set(issued.map((c) => c.password)).size).toBe(3);
    const text = JSON.stringify(store);
    for (const c of issued) expect(text).not.toContain(c.password);
    expect(store.credentials['gw-1/filter']).toEqual({ hashes: { test: 'hash(32)' }, issuedAt: 1 });
    expect(principals.map((p) => p.username)).toEqual(['gw-1/filter', 'gw-1/sensor', '$operator/operator']);
    // Least privilege from the routes: the sensor may publish to the filter's input, the filter upstream.
    const sensor = principals.find((p) => p.username === 'gw-1/sensor');
    expect(sensor?.publish).toEqual(['deadletter/gw-1/sensor', 'inputs/gw-1/filter/input1']);
    expect(principals.find((p) => p.username === 'gw-1/filter')?.publish).toEqual([
      'deadletter/gw-1/filter',
      'upstream/gw-1',
    ]);
  });

  test('running again issues nothing new; rotating a module issues it a new password and revokes the old one', () => {
    const first = issueIdentities(undefined, deployment, 'gw-1', { hashers });
    const again = issueIdentities(first.store, deployment, 'gw-1', { hashers });
    expect(again.issued).toEqual([]);
    expect(again.store.credentials).toEqual(first.store.credentials);
    const rotated = issueIdentities(
      withCertificate(first.store, 'gw-1/filter', { serialNumber: 'ab', notAfter: 9 }),
      deployment,
      'gw-1',
      { hashers, rotate: ['filter'], now: 5 },
    );
    expect(rotated.issued.map((c) => c.username)).toEqual(['gw-1/filter']);
    expect(rotated.revoked).toEqual(['gw-1/filter']);
    expect(rotated.store.revokedCertificates).toEqual([{ serialNumber: 'ab', revokedAt: 5 }]);
    expect(rotated.store.credentials['gw-1/sensor']).toEqual(first.store.credentials['gw-1/sensor']);
  });

  test('a module the deployment no longer has loses its credential; other devices and operators stay', () => {
    const gw1 = issueIdentities(undefined, deployment, 'gw-1', { hashers });
    const both = issueIdentities(gw1.store, deployment, 'gw-2', { hashers });
    expect(both.issued.map((c) => c.username).sort()).toEqual(['gw-2/filter', 'gw-2/sensor']);
    const smaller = readDeployment(manifest(['filter'], {}));
    const after = issueIdentities(both.store, smaller, 'gw-1', { hashers });
    expect(after.revoked).toEqual(['gw-1/sensor']);
    expect(Object.keys(after.store.credentials).sort()).toEqual([
      '$operator/operator',
      'gw-1/filter',
      'gw-2/filter',
      'gw-2/sensor',
    ]);
  });

  test('replicas get their own users and client ids with the module identity; rotating the module rotates them', () => {
    const { principals } = issueIdentities(undefined, deployment, 'gw-1', { hashers, replicas: { filter: ['r1'] } });
    const replica = principals.find((p) => p.username === 'gw-1/filter/r1');
    expect(replica).toMatchObject({ identity: 'gw-1/filter', clientId: 'gw-1/filter/r1', kind: 'module' });
    const store = issueIdentities(undefined, deployment, 'gw-1', { hashers, replicas: { filter: ['r1'] } }).store;
    const rotated = issueIdentities(store, deployment, 'gw-1', {
      hashers,
      replicas: { filter: ['r1'] },
      rotate: ['filter'],
    });
    expect(rotated.issued.map((c) => c.username).sort()).toEqual(['gw-1/filter', 'gw-1/filter/r1']);
  });

  test('bad arguments fail at the call', () => {
    expect(() => issueIdentities(undefined, deployment, 'gw 1', { hashers })).toThrow(RangeError);
    expect(() => issueIdentities(undefined, deployment, 'gw-1', { hashers: {} })).toThrow(TypeError);
    expect(() => issueIdentities(undefined, deployment, 'gw-1', { hashers, rotate: ['ghost'] })).toThrow(
      /not a principal of gw-1/,
    );
    expect(() => issueIdentities(undefined, deployment, 'gw-1', { hashers, replicas: { ghost: ['r1'] } })).toThrow(
      /does not deploy/,
    );
  });

  test('a stored store reads back; a damaged one fails with invalid-configuration', () => {
    const { store } = issueIdentities(undefined, deployment, 'gw-1', { hashers });
    expect(readIdentityStore(JSON.parse(JSON.stringify(store)))).toEqual(store);
    expect(readIdentityStore(emptyIdentityStore())).toEqual(emptyIdentityStore());
    expect(() => readIdentityStore({ version: 2 })).toThrow(/version 2/);
    expect(() => readIdentityStore({ ...store, credentials: [] })).toThrow(/"credentials" is not an object/);
  });
});
