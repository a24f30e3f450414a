/**
 * `edgekit routes check <manifest.json | routes.json>`: validates every route of an IoT Edge deployment manifest (or
 * of a plain `{ name: route | { route, priority, timeToLiveSecs } }` file), reporting all invalid routes with their
 * position, and shows for each module output which inputs and sinks it can reach. Exit 0 when every route is valid,
 * 1 when one is not or the file cannot be read, 2 on a usage error.
 */
import { parseArgs } from 'node:util';
import type { EdgeKitError } from '../../errors.js';
import {
  checkRoutes,
  DEFAULT_ROUTE_PRIORITY,
  explainRoutes,
  modulesFromManifest,
  type RouteExplanation,
  type RouteReach,
  type RouteSink,
  type RouteSpec,
  readManifestRoutes,
} from '../../routing/index.js';
import { type CliIo, jsonErrorAt, visible, visibleJson } from '../shared.js';

const HELP = `Usage: edgekit routes check <manifest.json | routes.json> [--json]

Validates every route and shows, for each module output, which module inputs and
sinks ($upstream) its messages can reach and under which condition.

The file is an IoT Edge deployment manifest (routes under
modulesContent.$edgeHub["properties.desired"].routes), $edgeHub desired properties
({ "schemaVersion": "1.1", "routes": { … } }), or a plain object of
name → route string | { "route", "priority", "timeToLiveSecs" }.

Options:
  --json      print the result as JSON (for scripts)
  -h, --help  show this help

Exit status: 0 all routes valid, 1 an invalid route or an unreadable file, 2 usage error.
`;

/** One invalid route as reported. */
interface Problem {
  readonly name: string;
  readonly message: string;
  readonly route?: string;
  readonly line?: number;
  readonly column?: number;
  readonly offset?: number;
  readonly expected?: string;
  readonly found?: string;
}

function problemOf(name: string, error: EdgeKitError): Problem {
  const d = error.details;
  const prefix = new RegExp(`^invalid route( name)? ${escapeRegExp(JSON.stringify(name))}: `);
  return {
    name,
    message: error.message.replace(prefix, ''),
    ...(typeof d.text === 'string' ? { route: d.text } : {}),
    ...(typeof d.line === 'number' ? { line: d.line } : {}),
    ...(typeof d.column === 'number' ? { column: d.column } : {}),
    ...(typeof d.offset === 'number' ? { offset: d.offset } : {}),
    ...(typeof d.expected === 'string' ? { expected: d.expected } : {}),
    ...(typeof d.found === 'string' ? { found: d.found } : {}),
  };
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

function describeSink(sink: RouteSink): string {
  return sink.kind === 'upstream' ? '$upstream' : `${sink.module}/${sink.input}`;
}

function describeReach(reach: RouteReach): string {
  const facts = [`route ${reach.routeName}`];
  if (reach.priority !== DEFAULT_ROUTE_PRIORITY) facts.push(`priority ${reach.priority}`);
  if (reach.timeToLiveSecs !== 0) facts.push(`ttl ${reach.timeToLiveSecs} s`);
  return `→ ${describeSink(reach.sink)}  ${reach.condition === null ? 'always' : `when ${reach.condition}`}  [${facts.join(', ')}]`;
}

function caret(problem: Problem): string[] {
  // The caret lines up only under text that is shown as it is.
  if (problem.route === undefined || problem.column === undefined || visible(problem.route) !== problem.route)
    return [];
  return [`      ${problem.route}`, `      ${' '.repeat(Math.max(problem.column - 1, 0))}^`];
}

function textReport(
  file: string,
  total: number,
  problems: readonly Problem[],
  warnings: readonly { name: string; warning: string }[],
  explanation: RouteExplanation,
): string {
  const lines: string[] = [];
  lines.push(
    `${file}: ${total} route${total === 1 ? '' : 's'}, ${problems.length === 0 ? 'all valid' : `${problems.length} invalid`}`,
  );
  if (problems.length > 0) {
    lines.push('', 'Invalid routes:');
    for (const p of problems) lines.push(`  ${p.name}: ${p.message}`, ...caret(p));
  }
  if (warnings.length > 0) {
    lines.push('', 'Warnings:');
    for (const w of warnings) lines.push(`  ${w.name}: ${w.warning}`);
  }
  if (explanation.sources.length > 0) {
    lines.push('', 'Where messages go:');
    for (const source of explanation.sources) {
      const title =
        source.kind === 'output'
          ? `${source.module}/${source.output}`
          : source.kind === 'otherOutputs'
            ? `${source.module} (any other output)`
            : source.kind === 'devices'
              ? 'devices (/messages)'
              : 'twin change notifications';
      lines.push(`  ${title}`);
      if (source.reaches.length === 0) lines.push('    (no route: messages go nowhere)');
      for (const reach of source.reaches) lines.push(`    ${describeReach(reach)}`);
    }
  }
  if (explanation.unmatchedRoutes.length > 0) {
    lines.push('', 'Routes whose FROM path matches no message IoT Edge produces:');
    for (const name of explanation.unmatchedRoutes) lines.push(`  ${name}`);
  }
  // Names and routes come from the file: no line may carry a control character the CLI did not make.
  return `${lines.map(visible).join('\n')}\n`;
}

type Loaded = { routes: Record<string, string | RouteSpec>; problems: Problem[]; modules: string[] };

function load(document: unknown): Loaded {
  if (typeof document !== 'object' || document === null || Array.isArray(document)) {
    throw new Error('expected a JSON object (a deployment manifest or name → route)');
  }
  const root = document as Record<string, unknown>;
  const isManifest =
    'modulesContent' in root || 'moduleContent' in root || ('routes' in root && 'schemaVersion' in root);
  if (!isManifest) return { routes: root as Record<string, string | RouteSpec>, problems: [], modules: [] };
  const read = readManifestRoutes(root);
  return {
    routes: read.routes,
    problems: read.invalid.map((i) => problemOf(i.name, i.error)),
    modules: modulesFromManifest(root),
  };
}

/**
 * Runs `routes check` with `args` (the options and the file); resolves to the exit code.
 *
 * @example
 * ```ts
 * const code = await routesCheck(['deployment.json', '--json'], io);
 * ```
 */
export async function routesCheck(args: readonly string[], io: CliIo): Promise<number> {
  let values: { json?: boolean; help?: boolean };
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({
      args: [...args],
      options: { json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
      allowPositionals: true,
      strict: true,
    }));
  } catch (error) {
    io.stderr.write(
      `edgekit routes check: ${visible(error instanceof Error ? error.message : String(error))}\nRun "edgekit routes check --help" for usage.\n`,
    );
    return 2;
  }
  if (values.help === true) {
    io.stdout.write(HELP);
    return 0;
  }
  const [file, ...extra] = positionals;
  if (file === undefined || extra.length > 0) {
    io.stderr.write(
      `edgekit routes check: ${file === undefined ? 'missing the file to check' : `unexpected argument "${visible(extra[0] ?? '')}"`}\nRun "edgekit routes check --help" for usage.\n`,
    );
    return 2;
  }
  let loaded: Loaded;
  try {
    let text: string;
    try {
      text = io.readFile(file);
    } catch (error) {
      throw new Error(`cannot read ${file}: ${error instanceof Error ? error.message : String(error)}`);
    }
    let document: unknown;
    try {
      document = JSON.parse(text);
    } catch (error) {
      throw new Error(`${file} is not valid JSON: ${jsonErrorAt(text, error)}`);
    }
    loaded = load(document);
  } catch (error) {
    io.stderr.write(`edgekit routes check: ${visible(error instanceof Error ? error.message : String(error))}\n`);
    return 1;
  }
  const { table, invalid } = checkRoutes(loaded.routes);
  const problems = [...loaded.problems, ...invalid.map((i) => problemOf(i.name, i.error))];
  const warnings = table.routes.flatMap((route) => route.warnings.map((warning) => ({ name: route.name, warning })));
  const explanation = explainRoutes(table, loaded.modules);
  const total = table.routes.length + problems.length;
  if (values.json === true) {
    const report = {
      file,
      valid: problems.length === 0,
      routes: table.routes.map((r) => ({
        name: r.name,
        route: r.text,
        source: r.source,
        condition: r.condition,
        sink: r.sink,
        priority: r.priority,
        timeToLiveSecs: r.timeToLiveSecs,
        warnings: r.warnings,
      })),
      invalid: problems,
      sources: explanation.sources,
      unmatchedRoutes: explanation.unmatchedRoutes,
    };
    io.stdout.write(`${visibleJson(report, 2)}\n`);
  } else {
    io.stdout.write(textReport(file, total, problems, warnings, explanation));
  }
  if (problems.length > 0) {
    io.stderr.write(
      `edgekit routes check: ${problems.length} of ${total} route${total === 1 ? ' is' : 's are'} invalid\n`,
    );
    return 1;
  }
  return 0;
}
