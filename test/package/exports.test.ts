// package.json "exports", the tsup entries and typedoc's entry points must agree, and the version must be one.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect, test } from 'vitest';
import { SDK_VERSION } from '../../src/version.js';
import { entries } from '../../tsup.config.js';

const root = join(import.meta.dirname, '../..');
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
const typedoc = JSON.parse(readFileSync(join(root, 'typedoc.json'), 'utf8'));

test('every export has a build entry and vice versa, with types first in each condition', () => {
  const fromExports = Object.entries(pkg.exports as Record<string, unknown>)
    .filter(([key]) => key !== './package.json')
    .map(([, value]) => {
      const v = value as { import: Record<string, string>; require: Record<string, string> };
      expect(Object.keys(v.import)[0]).toBe('types');
      expect(Object.keys(v.require)[0]).toBe('types');
      return v.import.default?.replace(/^\.\/dist\//, '').replace(/\.js$/, '');
    })
    .sort();
  const built = Object.keys(entries)
    .filter((k) => !k.startsWith('cli/'))
    .sort();
  expect(fromExports).toEqual(built);
});

test('typedoc documents every entry point', () => {
  const sourcesOfExports = Object.values(entries)
    .filter((s) => !s.startsWith('src/cli/'))
    .sort();
  expect([...typedoc.entryPoints].sort()).toEqual(sourcesOfExports);
});

test('transport, codec and MQTT-server libraries are optional peers, never dependencies', () => {
  for (const lib of ['mqtt', 'amqplib', 'protobufjs', 'aedes']) {
    expect(pkg.dependencies?.[lib]).toBeUndefined();
    if (pkg.peerDependencies?.[lib]) expect(pkg.peerDependenciesMeta?.[lib]?.optional).toBe(true);
  }
});

test('SDK_VERSION matches package.json', () => {
  expect(SDK_VERSION).toBe(pkg.version);
});
