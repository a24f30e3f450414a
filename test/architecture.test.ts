// The dependency rule of docs/architecture.md, checked on the source: a seam crossed fails the build.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { expect, test } from 'vitest';

const root = join(import.meta.dirname, '..');
function files(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return files(path);
    return path.endsWith('.ts') && !path.endsWith('.test.ts') && !path.endsWith('.test-d.ts') ? [path] : [];
  });
}
const sources = files(join(root, 'src')).map((path) => {
  const text = readFileSync(path, 'utf8');
  const staticImports = [...text.matchAll(/^(?:import|export)[^'";]*from\s*'([^']+)'/gm)].map((m) => m[1] as string);
  const dynamicImports = [...text.matchAll(/import\(\s*'([^']+)'\s*\)/g)].map((m) => m[1] as string);
  return { file: relative(root, path), imports: [...staticImports, ...dynamicImports], staticImports };
});
const violations = (
  fileFilter: (f: string) => boolean,
  importFilter: (i: string) => boolean,
  only: 'all' | 'static' = 'all',
) =>
  sources
    .filter((s) => fileFilter(s.file))
    .flatMap((s) =>
      (only === 'all' ? s.imports : s.staticImports).filter(importFilter).map((i) => `${s.file} imports ${i}`),
    );

test('core imports no transport, service, CLI or testing code', () => {
  expect(
    violations(
      (f) => f.startsWith('src/core/'),
      (i) => /\/(transports|service|cli|testing)\//.test(i) || /^\.\.\/connect/.test(i),
    ),
  ).toEqual([]);
});

test('routing and codecs are independent of the core', () => {
  expect(
    violations(
      (f) => f.startsWith('src/routing/') || f.startsWith('src/codecs/'),
      (i) => /\/(core|transports|service|testing)\//.test(i),
    ),
  ).toEqual([]);
});

test('only their own folders import mqtt, amqplib, protobufjs and aedes', () => {
  expect(
    violations(
      (f) => !f.startsWith('src/transports/mqtt/'),
      (i) => i === 'mqtt' || i.startsWith('mqtt/'),
    ),
  ).toEqual([]);
  expect(
    violations(
      (f) => !f.startsWith('src/transports/amqp/'),
      (i) => i === 'amqplib' || i.startsWith('amqplib/'),
    ),
  ).toEqual([]);
  expect(
    violations(
      (f) => f !== 'src/codecs/protobuf.ts',
      (i) => i === 'protobufjs',
    ),
  ).toEqual([]);
  expect(
    violations(
      (f) => !f.startsWith('src/hub/'),
      (i) => i === 'aedes',
    ),
  ).toEqual([]);
});

test('the Azure IoT Edge hub is a layer of its own: only the CLI uses it, and it uses no transport but memory', () => {
  expect(
    violations(
      (f) => !f.startsWith('src/hub/') && !f.startsWith('src/cli/'),
      (i) => /\/hub\//.test(i),
    ),
  ).toEqual([]);
  expect(
    violations(
      (f) => f.startsWith('src/hub/'),
      (i) => /\/(cli|testing)\//.test(i) || /transports\/(mqtt|amqp)/.test(i),
    ),
  ).toEqual([]);
});

test('transports know nothing of twins, routes, methods or envelopes', () => {
  expect(
    violations(
      (f) => f.startsWith('src/transports/'),
      (i) => /\/(core|routing|service|testing)\//.test(i) || /\.\.\/(core|routing)/.test(i),
    ),
  ).toEqual([]);
});

test('the library never imports vitest at module level (only the conformance suite loads it, lazily)', () => {
  expect(
    violations(
      () => true,
      (i) => i === 'vitest' || i.startsWith('vitest/'),
      'static',
    ),
  ).toEqual([]);
});
