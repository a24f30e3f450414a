#!/usr/bin/env node
// Runs the IoT Edge route-language conformance cases (../shared/conformance/iotedge-routes, or $EDGEKIT_SHARED_DIR)
// against the built routing module through test/route-conformance/adapter.mjs, and compares the failing cases with
// the "Deliberate differences" table of docs/routing.md. Exits 0 only when every failing case is documented there
// and every documented case still fails (a documented difference that now passes is a stale entry).
// Build first: `npx tsup` (or `npx tsup src/routing/index.ts --format esm --out-dir dist/routing --no-dts`).
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const shared = path.resolve(process.env.EDGEKIT_SHARED_DIR ?? path.join(root, '..', 'shared'));
const runner = path.join(shared, 'conformance', 'iotedge-routes', 'run.mjs');
const adapter = path.join(root, 'test', 'route-conformance', 'adapter.mjs');
const built = path.join(root, 'dist', 'routing', 'index.js');
const docs = path.join(root, 'docs', 'routing.md');

function fail(message, code = 2) {
  console.error(`check-route-conformance: ${message}`);
  process.exit(code);
}

if (!existsSync(runner)) fail(`conformance runner not found at ${runner} (set EDGEKIT_SHARED_DIR)`);
if (!existsSync(built)) fail(`${path.relative(root, built)} is missing: build the library first (npx tsup)`);
if (!existsSync(docs)) fail(`${path.relative(root, docs)} is missing`);

// Case ids listed in the first column of the "Deliberate differences" table.
function documentedIds(markdown) {
  const lines = markdown.split('\n');
  const start = lines.findIndex((l) => /^#+\s+Deliberate differences/i.test(l));
  if (start < 0) fail('docs/routing.md has no "Deliberate differences" section');
  const ids = new Set();
  for (const line of lines.slice(start + 1)) {
    if (/^#+\s/.test(line)) break;
    const cells = line.split('|');
    if (!line.trimStart().startsWith('|') || cells.length < 3) continue;
    for (const id of (cells[1] ?? '').match(/\b[a-z]\d{3}\b/g) ?? []) ids.add(id);
  }
  return ids;
}

const run = spawnSync(process.execPath, [runner, '--impl', adapter, '--verbose'], { encoding: 'utf8', cwd: root });
if (run.error) fail(`cannot run the conformance runner: ${run.error.message}`);
const output = `${run.stdout ?? ''}`;
if (run.status === 2 || !/\d+ passed, \d+ failed/.test(output)) {
  process.stderr.write(run.stderr ?? '');
  fail(`the conformance runner did not complete (exit ${run.status})`);
}

const failing = new Map();
for (const match of output.matchAll(/^- \[(\w+) ([^\]]+)\] (.*)$/gm)) failing.set(match[2], `${match[1]} ${match[3]}`);
const documented = documentedIds(readFileSync(docs, 'utf8'));
const undocumented = [...failing.keys()].filter((id) => !documented.has(id));
const stale = [...documented].filter((id) => !failing.has(id));

for (const line of output.split('\n')) {
  if (/^(conditions|routes|sourceMatches|dispatch|routeSpecs)\s/.test(line)) console.log(line);
}
console.log(
  `\ndeliberate differences documented in docs/routing.md: ${documented.size}${documented.size ? ` (${[...documented].join(', ')})` : ''}`,
);
if (undocumented.length > 0) {
  console.log(`\nFAIL: ${undocumented.length} failing case(s) not listed under "Deliberate differences":`);
  for (const id of undocumented) console.log(`  ${id}: ${failing.get(id)}`);
}
if (stale.length > 0) {
  console.log(
    `\nFAIL: ${stale.length} documented difference(s) now pass or no longer exist; remove them from the table:`,
  );
  for (const id of stale) console.log(`  ${id}`);
}
if (undocumented.length === 0 && stale.length === 0)
  console.log('\nOK: every difference from the IoT Edge engine is documented.');
const summary = /^(\d+) passed, (\d+) failed/m.exec(output);
console.log(`${summary?.[1] ?? 0} passed, ${summary?.[2] ?? 0} failed`);
process.exit(undocumented.length === 0 && stale.length === 0 ? 0 : 1);
