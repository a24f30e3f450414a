#!/usr/bin/env node
// The package as a new user gets it: pack, lint the package (publint, arethetypeswrong), install the tarball into an
// empty project, import every entry point from ESM and from CommonJS, and run a tiny module there.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';

const root = resolve(import.meta.dirname, '../..');
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
const entries = Object.keys(pkg.exports).filter((k) => k !== './package.json');
const run = (cmd, args, cwd) =>
  execFileSync(cmd, args, { cwd, stdio: ['ignore', 'pipe', 'inherit'], encoding: 'utf8' });

const work = mkdtempSync(join(tmpdir(), 'edgekit-package-'));
try {
  const tarball = join(work, JSON.parse(run('npm', ['pack', '--json', '--pack-destination', work], root))[0].filename);
  console.log(`packed ${tarball}`);
  run('npx', ['publint', '--strict', tarball], root);
  console.log('publint: clean');
  // node16 resolution is the strictest check for both ESM and CJS consumers.
  run('npx', ['attw', '--pack', '.', '--format', 'ascii', '--profile', 'node16'], root);
  console.log('arethetypeswrong: clean');

  const app = join(work, 'app');
  run('mkdir', ['-p', app], work);
  writeFileSync(
    join(app, 'package.json'),
    JSON.stringify({ name: 'app', version: '1.0.0', private: true, type: 'module' }),
  );
  const peers = Object.keys(pkg.peerDependencies ?? {})
    .filter((p) => p !== 'vitest')
    .map((p) => `${p}@${pkg.devDependencies[p] ?? pkg.peerDependencies[p]}`);
  run('npm', ['install', '--no-audit', '--no-fund', tarball, ...peers], app);

  const specifiers = entries.map((e) => (e === '.' ? 'edgekit' : `edgekit/${e.slice(2)}`));
  writeFileSync(
    join(app, 'esm.mjs'),
    `${specifiers.map((s, i) => `import * as m${i} from '${s}';`).join('\n')}
for (const [name, m] of [${specifiers.map((s, i) => `['${s}', m${i}]`).join(', ')}]) {
  if (Object.keys(m).length === 0) throw new Error(name + ' exports nothing');
}
const { connect, defineModule, json, MemoryBroker, memory } = m0;
const Echo = defineModule({ inputs: { in: json() }, outputs: { out: json() } });
const broker = new MemoryBroker();
const { createTestHub } = await import('edgekit/testing');
const hub = await createTestHub({ routes: { r: 'FROM /messages/modules/echo/outputs/out INTO $upstream' } });
const echo = await hub.connect(Echo, { moduleId: 'echo' });
await echo.onInput('in', async (msg) => { await echo.send('out', { echoed: msg.body }); });
await hub.send('echo', 'in', { hello: 'world' });
const up = await hub.upstream().next();
if (JSON.stringify(up.body) !== '{"echoed":{"hello":"world"}}') throw new Error('unexpected ' + JSON.stringify(up.body));
await hub.close();
void broker; void memory; void connect;
console.log('esm: ${specifiers.join(', ')} imported; a module ran');
`,
  );
  writeFileSync(
    join(app, 'cjs.cjs'),
    `${specifiers.map((s, i) => `const m${i} = require('${s}');`).join('\n')}
for (const [name, m] of [${specifiers.map((s, i) => `['${s}', m${i}]`).join(', ')}]) {
  if (Object.keys(m).length === 0) throw new Error(name + ' exports nothing');
}
const { defineModule, json, connect, MemoryBroker, memory } = m0;
(async () => {
  const broker = new MemoryBroker();
  const M = defineModule({ outputs: { out: json() } });
  const client = await connect(M, { deviceId: 'd', moduleId: 'm', transport: memory({ broker }) });
  await client.send('out', { ok: true });
  await client.close();
  console.log('cjs: ${specifiers.join(', ')} required; a module ran');
})().catch((e) => { console.error(e); process.exit(1); });
`,
  );
  process.stdout.write(run('node', ['esm.mjs'], app));
  process.stdout.write(run('node', ['cjs.cjs'], app));
  // The declarations, as a strict Node project checks them: library types included (skipLibCheck off) and no DOM
  // library — mqtt.js's own declarations need DOM, so edgekit's must not pull them in.
  writeFileSync(
    join(app, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: {
        strict: true,
        skipLibCheck: false,
        noEmit: true,
        module: 'NodeNext',
        moduleResolution: 'NodeNext',
        target: 'ES2022',
        lib: ['ES2022'],
        types: ['node'],
        typeRoots: [join(root, 'node_modules', '@types')],
      },
      files: ['types.ts'],
    }),
  );
  writeFileSync(
    join(app, 'types.ts'),
    `${specifiers.map((s, i) => `import * as m${i} from '${s}';`).join('\n')}\nexport const all = [${specifiers.map((_, i) => `m${i}`).join(', ')}];\n`,
  );
  run('node', [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', app], app);
  console.log(`types: ${specifiers.length} entry points check with skipLibCheck off and no DOM library`);
  // The bin, as an installed package runs it: help, and the demo pipeline in memory.
  const help = run('npx', ['--no-install', 'edgekit', '--help'], app);
  if (!help.includes('twin set')) throw new Error('edgekit --help does not list its commands');
  const installed = realpathSync(join(app, 'node_modules', 'edgekit'));
  if (!help.includes(`Guides (docs/… in the help texts) are in ${join(installed, 'docs')}/`)) {
    throw new Error(`edgekit --help does not say where the installed guides are:\n${help}`);
  }
  // Every relative link of the shipped README and guides leads to a file the package has.
  const broken = [];
  const markdown = [
    'README.md',
    ...run('find', ['docs', 'examples', '-name', '*.md'], installed).split('\n').filter(Boolean),
  ];
  for (const file of markdown) {
    for (const [, target] of readFileSync(join(installed, file), 'utf8').matchAll(/\]\(([^)\s]+)\)/g)) {
      if (/^[a-z]+:/.test(target) || target.startsWith('#')) continue;
      const path = join(installed, dirname(file), target.split('#')[0]);
      if (!existsSync(path)) broken.push(`${file}: ${target}`);
    }
  }
  if (broken.length > 0) throw new Error(`links that lead nowhere in the package:\n${broken.join('\n')}`);
  console.log(`docs: ${markdown.length} markdown files shipped, every relative link resolves`);
  const demo = run('npx', ['--no-install', 'edgekit', 'demo', '--duration', '1'], app);
  if (!/filter\/input1/.test(demo)) throw new Error(`edgekit demo showed no routed message:\n${demo}`);
  console.log('bin: edgekit --help and edgekit demo ran');
  const size = run('du', ['-sk', join(app, 'node_modules', 'edgekit')], app).split('\t')[0];
  console.log(`installed edgekit: ${size} KiB on disk`);
} finally {
  rmSync(work, { recursive: true, force: true });
}
