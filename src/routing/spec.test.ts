import { describe, expect, it } from 'vitest';
import { isEdgeKitError } from '../errors.js';
import {
  DEFAULT_ROUTE_PRIORITY,
  modulesFromManifest,
  parseRouteSpec,
  readManifestRoutes,
  routesFromManifest,
} from './spec.js';

const route = 'FROM /messages/* INTO $upstream';

function manifest(schemaVersion: string | undefined, routes: unknown, modules: Record<string, unknown> = {}) {
  return {
    modulesContent: {
      $edgeAgent: { 'properties.desired': { schemaVersion: '1.1', modules, systemModules: { edgeHub: {} } } },
      $edgeHub: { 'properties.desired': { ...(schemaVersion === undefined ? {} : { schemaVersion }), routes } },
    },
  };
}

describe('parseRouteSpec', () => {
  it.each([
    [route, { route, priority: DEFAULT_ROUTE_PRIORITY, timeToLiveSecs: 0 }],
    [{ route }, { route, priority: DEFAULT_ROUTE_PRIORITY, timeToLiveSecs: 0 }],
    [
      { route, priority: 0 },
      { route, priority: 0, timeToLiveSecs: 0 },
    ],
    [
      { route, priority: 9, timeToLiveSecs: 86400 },
      { route, priority: 9, timeToLiveSecs: 86400 },
    ],
    [
      { route, priority: DEFAULT_ROUTE_PRIORITY },
      { route, priority: DEFAULT_ROUTE_PRIORITY, timeToLiveSecs: 0 },
    ],
    [
      { route, priority: '3', timeToLiveSecs: ' 60 ' },
      { route, priority: 3, timeToLiveSecs: 60 },
    ], // IoT Edge converts numeric strings
    [
      { route, extra: 'ignored' },
      { route, priority: DEFAULT_ROUTE_PRIORITY, timeToLiveSecs: 0 },
    ],
  ])('%j', (value, expected) => {
    expect(parseRouteSpec('r', value)).toEqual(expected);
  });

  it.each([
    ['', route],
    ['  ', route],
    ['r', ''],
    ['r', '   '],
    ['r', { route: '' }],
    ['r', { priority: 1 }],
    ['r', { route, priority: 10 }],
    ['r', { route, priority: -1 }],
    ['r', { route, priority: 2.5 }],
    ['r', { route, priority: null }],
    ['r', { route, timeToLiveSecs: -1 }],
    ['r', { route, timeToLiveSecs: 'soon' }],
    ['r', 42],
    ['r', null],
    ['r', [route]],
  ])('rejects %j → %j', (name, value) => {
    let error: unknown;
    try {
      parseRouteSpec(name, value);
    } catch (e) {
      error = e;
    }
    expect(isEdgeKitError(error, 'invalid-route')).toBe(true);
  });

  it('allows only strings under schema 1.0', () => {
    expect(parseRouteSpec('r', route, '1.0')).toEqual({ route, priority: DEFAULT_ROUTE_PRIORITY, timeToLiveSecs: 0 });
    expect(() => parseRouteSpec('r', { route }, '1.0')).toThrow(/schemaVersion 1.1 or later/);
    for (const version of ['1.1', '1.2', '1.3', '1.1.0'])
      expect(parseRouteSpec('r', { route, priority: 1 }, version).priority).toBe(1);
  });

  it('rejects unsupported schema versions with a RangeError', () => {
    for (const version of ['2.0', '1.4', '1', 'latest'])
      expect(() => parseRouteSpec('r', route, version)).toThrow(RangeError);
  });
});

describe('routes from a deployment manifest', () => {
  it('reads strings and objects under schema 1.1+', () => {
    const routes = routesFromManifest(manifest('1.2', { a: route, b: { route, priority: 1, timeToLiveSecs: 5 } }));
    expect(routes).toEqual({
      a: { route, priority: DEFAULT_ROUTE_PRIORITY, timeToLiveSecs: 0 },
      b: { route, priority: 1, timeToLiveSecs: 5 },
    });
  });

  it('reads strings under schema 1.0, skipping empty ones as IoT Edge does, and rejects objects', () => {
    expect(Object.keys(routesFromManifest(manifest('1.0', { a: route, empty: '  ' })))).toEqual(['a']);
    expect(() => routesFromManifest(manifest('1.0', { a: { route } }))).toThrow(/schemaVersion 1.1 or later/);
  });

  it('rejects a missing or unsupported schema version and a missing routes section', () => {
    for (const version of [undefined, '2.0', '1.9']) {
      let error: unknown;
      try {
        routesFromManifest(manifest(version, { a: route }));
      } catch (e) {
        error = e;
      }
      expect(isEdgeKitError(error, 'invalid-configuration')).toBe(true);
    }
    expect(() => routesFromManifest({ modulesContent: {} })).toThrow(/no routes/);
    expect(() => routesFromManifest([])).toThrow(/JSON object/);
  });

  it('accepts $edgeHub desired properties given directly', () => {
    expect(Object.keys(routesFromManifest({ schemaVersion: '1.1', routes: { a: route } }))).toEqual(['a']);
  });

  it('collects every invalid entry', () => {
    const read = readManifestRoutes(manifest('1.1', { a: route, b: { route, priority: 77 }, c: 5, d: { route } }));
    expect(Object.keys(read.routes)).toEqual(['a', 'd']);
    expect(read.invalid.map((i) => i.name)).toEqual(['b', 'c']);
    expect(read.schemaVersion).toBe('1.1');
  });

  it('lists the modules of $edgeAgent', () => {
    expect(modulesFromManifest(manifest('1.1', {}, { sensor: {}, filter: {} }))).toEqual(['sensor', 'filter']);
    expect(modulesFromManifest({})).toEqual([]);
  });
});
