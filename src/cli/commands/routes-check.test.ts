import { describe, expect, it } from 'vitest';
import type { CliIo } from '../index.js';
import { routesCheck } from './routes-check.js';

function harness(files: Record<string, string>) {
  const out: string[] = [];
  const err: string[] = [];
  const io: CliIo = {
    stdout: { write: (s: string) => out.push(s) },
    stderr: { write: (s: string) => err.push(s) },
    readFile: (path) => {
      const text = files[path];
      if (text === undefined) throw new Error(`ENOENT: no such file or directory, open '${path}'`);
      return text;
    },
  };
  return { run: (...args: string[]) => routesCheck(args, io), out: () => out.join(''), err: () => err.join('') };
}

const manifest = (routes: unknown, schemaVersion = '1.1') =>
  JSON.stringify({
    modulesContent: {
      $edgeAgent: { 'properties.desired': { schemaVersion: '1.1', modules: { sensor: {}, filter: {}, spare: {} } } },
      $edgeHub: {
        'properties.desired': { schemaVersion, routes, storeAndForwardConfiguration: { timeToLiveSecs: 7200 } },
      },
    },
  });

const goodRoutes = {
  sensorToFilter: {
    route:
      "FROM /messages/modules/sensor/outputs/temperature WHERE as_number(temperature) > 25 INTO BrokeredEndpoint('/modules/filter/inputs/hot')",
    priority: 0,
    timeToLiveSecs: 3600,
  },
  filterToCloud: 'FROM /messages/modules/filter/outputs/* INTO $upstream',
};

describe('edgekit routes check', () => {
  it('validates a manifest and shows where each module output goes', async () => {
    const h = harness({ 'deployment.json': manifest(goodRoutes) });
    expect(await h.run('deployment.json')).toBe(0);
    const out = h.out();
    expect(out).toContain('deployment.json: 2 routes, all valid');
    expect(out).toContain(
      'sensor/temperature\n    → filter/hot  when as_number(temperature) > 25  [route sensorToFilter, priority 0, ttl 3600 s]',
    );
    expect(out).toContain('filter (any other output)\n    → $upstream  always  [route filterToCloud]');
    expect(out).toContain('spare (any other output)\n    (no route: messages go nowhere)');
    expect(h.err()).toBe('');
  });

  it('reports every invalid route with its position, and exits 1', async () => {
    const h = harness({
      'deployment.json': manifest({
        ...goodRoutes,
        typo: 'FROM /messages/modules/sensor/* WHER x = 1 INTO $upstream',
        types: 'FROM /messages WHERE temperature > 25 INTO $upstream',
        priority: { route: 'FROM /* INTO $upstream', priority: 11 },
      }),
    });
    expect(await h.run('deployment.json')).toBe(1);
    const out = h.out();
    expect(out).toContain('deployment.json: 5 routes, 3 invalid');
    expect(out).toContain(
      '  typo: at column 33: expected WHERE or INTO, found "WHER"\n      FROM /messages/modules/sensor/* WHER x = 1 INTO $upstream\n                                      ^',
    );
    expect(out).toContain("  types: at column 34: invalid operands to operator '>'");
    expect(out).toContain('  priority: priority must be an integer from 0 (highest) to 9, got 11');
    expect(h.err()).toBe('edgekit routes check: 3 of 5 routes are invalid\n');
  });

  it('reads a plain { name: route } file and prints warnings and unmatched routes', async () => {
    const h = harness({
      'routes.json': JSON.stringify({
        late: "FROM /messages/modules/sensor/* INTO $upstream WHERE unit = 'C'",
        events: 'FROM /messages/events INTO $upstream',
      }),
    });
    expect(await h.run('routes.json')).toBe(0);
    expect(h.out()).toContain('Warnings:\n  late: at column 48: "WHERE unit = \'C\'" after the sink is ignored');
    expect(h.out()).toContain('Routes whose FROM path matches no message IoT Edge produces:\n  events');
  });

  it('prints JSON for scripts with --json', async () => {
    const h = harness({ 'deployment.json': manifest({ ...goodRoutes, bad: 'FROM /* INTO upstream' }) });
    expect(await h.run('--json', 'deployment.json')).toBe(1);
    const report = JSON.parse(h.out());
    expect(report.valid).toBe(false);
    expect(report.routes.map((r: { name: string }) => r.name)).toEqual(['sensorToFilter', 'filterToCloud']);
    expect(report.invalid).toEqual([
      expect.objectContaining({ name: 'bad', column: 14, line: 1, found: 'upstream', route: 'FROM /* INTO upstream' }),
    ]);
    expect(report.sources[0]).toMatchObject({ kind: 'output', module: 'sensor', output: 'temperature' });
  });

  it('exits 1 with a one-line reason when the file cannot be read or parsed', async () => {
    const h = harness({ 'broken.json': '{ "routes": ', 'array.json': '[]', 'old.json': manifest(goodRoutes, '2.0') });
    expect(await h.run('missing.json')).toBe(1);
    expect(h.err()).toMatch(/^edgekit routes check: cannot read missing.json: ENOENT[^\n]*\n$/);
    expect(await h.run('broken.json')).toBe(1);
    expect(h.err()).toContain('broken.json is not valid JSON: line 1, column 13: the text ends too early');
    expect(await h.run('array.json')).toBe(1);
    expect(await h.run('old.json')).toBe(1);
    expect(h.err()).toContain('schemaVersion "2.0" is not supported');
  });

  it('checks schema 1.0 rules: route objects are invalid there', async () => {
    const h = harness({ 'd.json': manifest(goodRoutes, '1.0') });
    expect(await h.run('d.json')).toBe(1);
    expect(h.out()).toContain('sensorToFilter: route objects need schemaVersion 1.1 or later');
  });

  it('exits 2 on usage errors and prints help with --help', async () => {
    const h = harness({});
    expect(await h.run()).toBe(2);
    expect(h.err()).toContain('missing the file to check');
    expect(await h.run('a.json', 'b.json')).toBe(2);
    expect(await h.run('--yaml', 'a.json')).toBe(2);
    expect(h.err()).toContain("Unknown option '--yaml'");
    expect(await h.run('--help')).toBe(0);
    expect(h.out()).toContain('Usage: edgekit routes check <manifest.json | routes.json> [--json]');
  });
});
