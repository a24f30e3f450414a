// The wire decoders read what a broker hands back as strictly as a writer's arguments are checked (issue 10, item 8).
import { describe, expect, test } from 'vitest';
import { decodeDeploymentRecord, decodeMethodResponse, decodePresence, decodeRouteTable } from './wire.js';

const bytes = (value: unknown) => new TextEncoder().encode(typeof value === 'string' ? value : JSON.stringify(value));
const decodeFailed = expect.objectContaining({ code: 'decode-failed' });

describe('presence', () => {
  test('the three forms edgekit writes are read; members a later version adds are ignored', () => {
    expect(decodePresence(bytes({ state: 'online', since: 5, sdk: 'edgekit/0.1.0', extra: { x: 1 } }))).toEqual({
      state: 'online',
      since: 5,
      sdk: 'edgekit/0.1.0',
    });
    expect(
      decodePresence(bytes({ state: 'offline', sdk: 'edgekit/0.1.0', reason: 'connection-lost', connectedAt: 7 })),
    ).toEqual({ state: 'offline', sdk: 'edgekit/0.1.0', reason: 'connection-lost', connectedAt: 7 });
    expect(decodePresence(undefined)).toBeUndefined();
  });

  test.each([
    ['sdk text with a terminal escape', { state: 'online', sdk: 'edgekit/1\u001b[2J' }],
    ['sdk text with a bidi override', { state: 'online', sdk: 'edgekit/\u202e1' }],
    ['no sdk', { state: 'online' }],
    ['an sdk longer than 100 characters', { state: 'online', sdk: 'x'.repeat(101) }],
    ['a negative since', { state: 'online', sdk: 'edgekit/1', since: -1 }],
    ['a since beyond safe integers', { state: 'online', sdk: 'edgekit/1', since: 2 ** 53 }],
    ['an unknown reason', { state: 'offline', sdk: 'edgekit/1', reason: 'gone\u001b' }],
    ['an unknown state', { state: 'busy', sdk: 'edgekit/1' }],
  ])('rejects %s', (_, value) => {
    expect(() => decodePresence(bytes(value))).toThrow(decodeFailed);
  });
});

describe('deployment record', () => {
  test('reads the record with state, id, generation, hash and failure', () => {
    const record = {
      modules: ['sensor', 'filter'],
      state: 'failed',
      id: '0d7c2f1e-9a8b-4c3d-8e7f-6a5b4c3d2e1f',
      generation: 3,
      contentHash: `sha256:${'ab'.repeat(32)}`,
      startedAt: 10,
      failure: { step: 'routes', reason: 'not authorized (135)', at: 11 },
      later: 'ignored',
    };
    expect(decodeDeploymentRecord(bytes(record))).toEqual({
      record: {
        modules: ['sensor', 'filter'],
        state: 'failed',
        id: record.id,
        generation: 3,
        contentHash: record.contentHash,
        startedAt: 10,
        failure: { step: 'routes', reason: 'not authorized (135)', at: 11 },
      },
      invalidModules: [],
    });
  });

  test('a record from before deployments had states reads as applied, generation 0', () => {
    expect(decodeDeploymentRecord(bytes({ modules: ['a'], appliedAt: 1764130000000 }))?.record).toEqual({
      modules: ['a'],
      state: 'applied',
      generation: 0,
      appliedAt: 1764130000000,
    });
  });

  test('module ids that are no names are returned apart, each with why, never as modules', () => {
    const decoded = decodeDeploymentRecord(bytes({ modules: ['ok', 'bad\u0001', 'a+b', ''], appliedAt: 1 }));
    expect(decoded?.record.modules).toEqual(['ok']);
    expect(decoded?.invalidModules.map((m) => m.text)).toEqual(['bad\u0001', 'a+b', '']);
    expect(decoded?.invalidModules[0]?.problem).toMatch(/module id "bad\\u0001" is not allowed/);
  });

  test.each([
    ['not JSON', '{'],
    ['modules not strings', { modules: [1] }],
    ['an unknown state', { modules: [], state: 'done' }],
    ['a fractional generation', { modules: [], generation: 1.5 }],
    ['an id with a control character', { modules: [], id: 'a\u001bb' }],
    ['a content hash that is no sha256', { modules: [], contentHash: 'md5:00' }],
    ['a timestamp beyond safe integers', { modules: [], appliedAt: 2 ** 53 }],
    ['a failure reason with an escape', { modules: [], failure: { step: 'routes', reason: '\u001b[2J', at: 1 } }],
    ['a failure at an unknown step', { modules: [], failure: { step: 'later', reason: 'x', at: 1 } }],
    [
      'a failure naming an invalid module',
      { modules: [], failure: { step: 'desired', module: 'a/b', reason: 'x', at: 1 } },
    ],
    ['too many modules', { modules: Array.from({ length: 1001 }, (_, i) => `m${i}`) }],
  ])('rejects %s', (_, value) => {
    expect(() => decodeDeploymentRecord(bytes(value))).toThrow(decodeFailed);
  });
});

describe('route table', () => {
  test('reads the table edgekit writes, route strings too; a __proto__ route name stays a route', () => {
    const table = decodeRouteTable(
      bytes({
        routes: {
          a: { route: 'FROM /* INTO $upstream', priority: 0, timeToLiveSecs: 60 },
          b: 'FROM /* INTO $upstream',
        },
        defaultTimeToLiveSecs: 7200,
      }),
    );
    expect(table).toEqual({
      routes: {
        a: { route: 'FROM /* INTO $upstream', priority: 0, timeToLiveSecs: 60 },
        b: { route: 'FROM /* INTO $upstream', priority: 2_000_000_000, timeToLiveSecs: 0 },
      },
      defaultTimeToLiveSecs: 7200,
    });
    const proto = decodeRouteTable(bytes('{"routes":{"__proto__":{"route":"FROM /* INTO $upstream"}}}'));
    expect(Object.keys(proto.routes)).toEqual(['__proto__']);
  });

  test.each([
    ['a priority of 10', { routes: { a: { route: 'FROM /* INTO $upstream', priority: 10 } } }],
    ['a numeric string priority', { routes: { a: { route: 'FROM /* INTO $upstream', priority: '1' } } }],
    ['a negative TTL', { routes: { a: { route: 'FROM /* INTO $upstream', timeToLiveSecs: -1 } } }],
    ['an empty route', { routes: { a: { route: ' ' } } }],
    ['a default TTL beyond 32 bits', { routes: {}, defaultTimeToLiveSecs: 2 ** 32 }],
    ['routes that are an array', { routes: [] }],
  ])('rejects %s', (_, value) => {
    expect(() => decodeRouteTable(bytes(value))).toThrow(decodeFailed);
  });
});

describe('method response', () => {
  test('a status from 100 to 999 and any payload', () => {
    expect(decodeMethodResponse(bytes({ status: 200 }))).toEqual({ status: 200, payload: null });
    expect(decodeMethodResponse(bytes({ status: 999, payload: [1] }))).toEqual({ status: 999, payload: [1] });
  });
  test.each([[99], [1000], [200.5], [2 ** 53], ['200']])('rejects status %s', (status) => {
    expect(() => decodeMethodResponse(bytes({ status, payload: null }))).toThrow(decodeFailed);
  });
});
