import { afterEach, describe, expect, it, vi } from 'vitest';
import { type EdgeKitError, isEdgeKitError } from '../errors.js';
import { message } from './fixtures.test-helpers.js';
import type { RoutingMessage } from './message.js';
import { DEFAULT_ROUTE_PRIORITY } from './spec.js';
import { checkRoutes, compileRouteTable, type Destination } from './table.js';

const fromModule = (module: string, output?: string, extra: Partial<RoutingMessage> = {}) =>
  message({
    source: output === undefined ? `/messages/modules/${module}` : `/messages/modules/${module}/outputs/${output}`,
    ...extra,
  });

const sinks = (destinations: Destination[]) =>
  destinations.map((d) => (d.kind === 'upstream' ? '$upstream' : `${d.module}/${d.input}`)).sort();

function errorOf(fn: () => unknown): EdgeKitError {
  try {
    fn();
  } catch (e) {
    if (isEdgeKitError(e)) return e;
    throw e;
  }
  throw new Error('expected an error');
}

describe('RouteTable.select', () => {
  const table = compileRouteTable({
    toFilter:
      "FROM /messages/modules/sensor/outputs/temperature WHERE sensorType = 'thermo' INTO BrokeredEndpoint('/modules/filter/inputs/in1')",
    hot: 'FROM /messages/modules/sensor/outputs/* WHERE $body.machine.temperature > 30 INTO BrokeredEndpoint("/modules/alerts/inputs/hot")',
    allSensor: 'FROM /messages/modules/sensor/* INTO $upstream',
    filtered: 'FROM /messages/modules/filter/outputs/out INTO $upstream',
    devices: "FROM /messages WHERE $connectionDeviceId = 'leaf-1' INTO BrokeredEndpoint('/modules/filter/inputs/leaf')",
  });

  it('returns every destination of every matching route', () => {
    expect(sinks(table.select(fromModule('sensor', 'temperature')))).toEqual(['$upstream', 'alerts/hot', 'filter/in1']);
  });

  it('skips routes whose condition is false or undefined', () => {
    const cool = fromModule('sensor', 'temperature', { properties: { sensorType: 'hygro' } });
    expect(sinks(table.select(cool))).toEqual(['$upstream', 'alerts/hot']);
    const noJson = fromModule('sensor', 'humidity', { systemProperties: {} });
    expect(sinks(table.select(noJson))).toEqual(['$upstream']);
  });

  it('matches sources segment-wise: messages without an output, other modules, devices', () => {
    expect(sinks(table.select(fromModule('sensor')))).toEqual(['$upstream']);
    expect(sinks(table.select(fromModule('sensor2', 'temperature')))).toEqual([]);
    expect(sinks(table.select(fromModule('filter', 'out')))).toEqual(['$upstream']);
    const leaf = message({ source: '/messages', systemProperties: { connectionDeviceId: 'leaf-1' } });
    expect(sinks(table.select(leaf))).toEqual(['filter/leaf']);
  });

  it('returns nothing when no route matches: there is no fallback route', () => {
    expect(table.select(fromModule('unknown', 'x'))).toEqual([]);
    expect(compileRouteTable({}).select(fromModule('sensor', 'x'))).toEqual([]);
  });

  it('delivers once per sink; the lowest priority number wins and brings its TTL', () => {
    const t = compileRouteTable({
      slow: {
        route: 'FROM /messages/* INTO BrokeredEndpoint("/modules/db/inputs/in")',
        priority: 5,
        timeToLiveSecs: 60,
      },
      fast: {
        route: "FROM /messages/* WHERE unit = 'C' INTO BrokeredEndpoint('/modules/db/inputs/in')",
        priority: 1,
        timeToLiveSecs: 7200,
      },
      noPriority: 'FROM /messages/* INTO BrokeredEndpoint("/modules/db/inputs/in")',
      cloud: { route: 'FROM /* INTO $upstream', timeToLiveSecs: 30 },
    });
    const destinations = t.select(fromModule('sensor', 'temperature'));
    expect(destinations).toEqual([
      { kind: 'module', module: 'db', input: 'in', priority: 1, timeToLiveSecs: 7200, routeName: 'fast' },
      { kind: 'upstream', priority: DEFAULT_ROUTE_PRIORITY, timeToLiveSecs: 30, routeName: 'cloud' },
    ]);
    const otherUnit = fromModule('sensor', 'temperature', { properties: { unit: 'F' } });
    expect(t.select(otherUnit)[0]).toMatchObject({ module: 'db', priority: 5, timeToLiveSecs: 60, routeName: 'slow' });
  });

  it('on equal priority the route listed first wins', () => {
    const t = compileRouteTable({
      first: { route: 'FROM /* INTO $upstream', priority: 3, timeToLiveSecs: 1 },
      second: { route: 'FROM /* INTO $upstream', priority: 3, timeToLiveSecs: 2 },
    });
    expect(t.select(fromModule('m', 'o'))).toEqual([
      { kind: 'upstream', priority: 3, timeToLiveSecs: 1, routeName: 'first' },
    ]);
  });

  it('treats the same module input reached through different address spellings as one sink', () => {
    const t = compileRouteTable({
      a: 'FROM /* INTO BrokeredEndpoint("/modules/m/inputs/i")',
      b: "FROM /* INTO BrokeredEndpoint(' modules/m/inputs/i/ ')",
      c: 'FROM /* INTO BrokeredEndpoint("/modules/M/inputs/i")',
    });
    expect(sinks(t.select(fromModule('x', 'y')))).toEqual(['M/i', 'm/i']);
  });

  it('parses a message body once however many routes query it', () => {
    const parse = vi.spyOn(JSON, 'parse');
    const t = compileRouteTable({
      a: 'FROM /* WHERE $body.machine.temperature > 30 INTO $upstream',
      b: "FROM /* WHERE $body.machine.name = 'Press-3' INTO BrokeredEndpoint('/modules/a/inputs/b')",
      c: 'FROM /* WHERE is_defined($body.count) INTO BrokeredEndpoint("/modules/c/inputs/d")',
    });
    const m = fromModule('sensor', 'temperature');
    expect(t.select(m)).toHaveLength(3);
    expect(t.select(m)).toHaveLength(3);
    expect(parse).toHaveBeenCalledTimes(1);
  });

  afterEach(() => {
    vi.restoreAllMocks();
  });
});

describe('CompiledRoute', () => {
  const [route] = compileRouteTable({
    r1: {
      route: "FROM /messages/modules/sensor/* WHERE unit = 'C' INTO BrokeredEndpoint('/modules/f/inputs/i')",
      priority: 2,
      timeToLiveSecs: 10,
    },
  }).routes;

  it('describes the route', () => {
    expect(route).toMatchObject({
      name: 'r1',
      source: '/messages/modules/sensor/*',
      condition: "unit = 'C'",
      sink: { kind: 'module', module: 'f', input: 'i' },
      priority: 2,
      timeToLiveSecs: 10,
      warnings: [],
    });
  });

  it('matches by source and condition', () => {
    expect(route?.matchesSource('/messages/modules/sensor/outputs/x')).toBe(true);
    expect(route?.matchesSource('/messages/modules/other')).toBe(false);
    expect(route?.evaluate(fromModule('sensor', 'x'))).toBe(true);
    expect(route?.evaluate(fromModule('sensor', 'x', { properties: {} }))).toBe(undefined);
    expect(route?.matches(fromModule('sensor', 'x'))).toBe(true);
    expect(route?.matches(fromModule('other', 'x'))).toBe(false);
  });

  it('a route without a condition always applies', () => {
    const [always] = compileRouteTable({ a: 'FROM /* INTO $upstream' }).routes;
    expect(always?.condition).toBeNull();
    expect(always?.evaluate(fromModule('x'))).toBe(true);
  });
});

describe('compileRouteTable validation', () => {
  it('throws the first error, naming the route and the position', () => {
    const error = errorOf(() =>
      compileRouteTable({
        good: 'FROM /* INTO $upstream',
        r1: 'FROM /messages WHERE as_number(t) > 1 WHER INTO $upstream',
      }),
    );
    expect(error.code).toBe('invalid-route');
    expect(error.message).toBe('invalid route "r1": at column 39: expected INTO or an operator, found "WHER"');
    expect(error.details).toMatchObject({ route: 'r1', column: 39, expected: 'INTO or an operator', found: 'WHER' });
  });

  it('compiles conditions: type errors name the route', () => {
    const error = errorOf(() => compileRouteTable({ hot: 'FROM /messages WHERE temperature > 25 INTO $upstream' }));
    expect(error.message).toMatch(
      /^invalid route "hot": at column 34: invalid operands to operator '>': have string and number/,
    );
    expect(error.message).toContain('as_number(temperature) > 25');
    expect(error.details.route).toBe('hot');
  });

  it.each([
    [{ priority: 10 }, /priority must be an integer from 0 \(highest\) to 9, got 10/],
    [{ priority: -1 }, /priority/],
    [{ priority: 1.5 }, /priority/],
    [{ priority: true }, /priority/],
    [{ timeToLiveSecs: -5 }, /timeToLiveSecs must be a non-negative integer/],
    [{ timeToLiveSecs: 0.5 }, /timeToLiveSecs/],
    [{ timeToLiveSecs: 2 ** 32 }, /timeToLiveSecs/],
  ])('rejects %j', (fields, message) => {
    const error = errorOf(() =>
      compileRouteTable({ r: { route: 'FROM /* INTO $upstream', ...(fields as object) } as never }),
    );
    expect(error.message).toMatch(message);
    expect(error.details.route).toBe('r');
  });

  it('accepts priorities 0–9 and the default 2000000000', () => {
    for (const priority of [0, 9, DEFAULT_ROUTE_PRIORITY]) {
      expect(compileRouteTable({ r: { route: 'FROM /* INTO $upstream', priority } }).routes[0]?.priority).toBe(
        priority,
      );
    }
  });

  it('rejects sinks edgekit cannot address', () => {
    const error = errorOf(() => compileRouteTable({ r: 'FROM /* INTO BrokeredEndpoint("/modules/a b/inputs/i")' }));
    expect(error.message).toMatch(/^invalid route "r": at column 14: the sink cannot be addressed: module id "a b"/);
    expect(() => compileRouteTable({ r: 'FROM /* INTO BrokeredEndpoint("/modules//inputs/i")' })).toThrow(
      /must not be empty/,
    );
  });

  it('rejects empty names and routes', () => {
    expect(errorOf(() => compileRouteTable({ ' ': 'FROM /* INTO $upstream' })).message).toMatch(/route name/);
    expect(errorOf(() => compileRouteTable({ r: '  ' })).message).toBe('invalid route "r": the route is empty');
    expect(errorOf(() => compileRouteTable({ r: { route: 5 } as never })).message).toMatch(/non-empty "route" string/);
  });

  it('rejects a routes argument that is not an object with a TypeError', () => {
    expect(() => compileRouteTable(null as never)).toThrow(TypeError);
  });
});

describe('checkRoutes', () => {
  it('reports every invalid route and keeps the valid ones', () => {
    const { table, invalid } = checkRoutes({
      ok: 'FROM /* INTO $upstream',
      bad1: 'FROM /* INTO upstream',
      bad2: { route: 'FROM /* INTO $upstream', priority: 12 },
      bad3: 'FROM /* WHERE nope(1) INTO $upstream',
    });
    expect(table.routes.map((r) => r.name)).toEqual(['ok']);
    expect(invalid.map((i) => i.name)).toEqual(['bad1', 'bad2', 'bad3']);
    expect(invalid.every((i) => i.error.code === 'invalid-route')).toBe(true);
  });

  it('warns about what compiles but is probably a mistake', () => {
    const { table } = checkRoutes({
      trailing: "FROM /messages INTO $upstream WHERE a = 'b'",
      star: 'FROM /messages/modules/*/outputs/o INTO $upstream',
      sys: "FROM /* WHERE $nosuch = 'x' INTO $upstream",
      expr: "FROM /* WHERE 3+4 = '7' INTO $upstream",
      isnull: 'FROM /* WHERE is_null($body.x) INTO $upstream',
    });
    const warnings = Object.fromEntries(table.routes.map((r) => [r.name, r.warnings.join(' | ')]));
    expect(warnings.trailing).toMatch(/^at column 31: "WHERE a = 'b'" after the sink is ignored/);
    expect(warnings.star).toMatch(/'\*' is only a wildcard at the end/);
    expect(warnings.sys).toMatch(/\$nosuch is not a system property/);
    expect(warnings.expr).toMatch(/"3\+4" is read as one property name/);
    expect(warnings.isnull).toMatch(/is_null on a \$body value/);
  });

  it('allows twin_change_includes only in routes from /twinChangeNotifications', () => {
    const { table, invalid } = checkRoutes({
      twin: 'FROM /twinChangeNotifications WHERE twin_change_includes(properties.reported.fw) INTO BrokeredEndpoint("/modules/t/inputs/i")',
      other: 'FROM /messages WHERE twin_change_includes(properties.reported.fw) INTO $upstream',
      badPath: 'FROM /twinChangeNotifications WHERE twin_change_includes(fw) INTO $upstream',
    });
    expect(table.routes.map((r) => r.name)).toEqual(['twin']);
    expect(invalid.map((i) => i.name)).toEqual(['other', 'badPath']);
    const change = message({
      source: '/twinChangeNotifications',
      body: new TextEncoder().encode('{"properties":{"reported":{"fw":"1.2"}}}'),
    });
    expect(table.routes[0]?.evaluate(change)).toBe(true);
    const other = message({
      source: '/twinChangeNotifications',
      body: new TextEncoder().encode('{"properties":{"reported":{}}}'),
    });
    expect(table.routes[0]?.evaluate(other)).toBe(false);
  });
});
