/**
 * The `edgekit` command: a dispatcher of commands (`deploy`, `invoke`, …) and command groups (`twin get`, `routes
 * check`), each parsing its own options with `node:util` `parseArgs` — the CLI adds no dependency to the library.
 * `main` takes its output streams, file reader, environment and stop signal as arguments, so commands are tested
 * in-process without spawning one.
 */
import { existsSync, readFileSync, realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { bridgeCommand } from './commands/bridge.js';
import { deadLetterCommands } from './commands/deadletter.js';
import { demoCommand } from './commands/demo.js';
import { deployCommand } from './commands/deploy.js';
import { hubCommand } from './commands/hub.js';
import { identitiesCommand } from './commands/identities.js';
import { invokeCommand } from './commands/invoke.js';
import { monitorCommand } from './commands/monitor.js';
import { routesCheck } from './commands/routes-check.js';
import { statusCommand } from './commands/status.js';
import { twinGetCommand, twinSetCommand } from './commands/twin.js';
import { upstreamCommand } from './commands/upstream.js';
import { type CliCommand, type CliIo, EXIT, visible } from './shared.js';

export { type CliCommand, type CliIo, EXIT } from './shared.js';

/** A group of subcommands, run as `edgekit <group> <command>`. */
export interface CliGroup {
  readonly summary: string;
  readonly commands: Readonly<Record<string, CliCommand>>;
}

/** Commands and command groups, in the order `edgekit --help` lists them. Add a command by adding an entry here. */
export const COMMANDS: Readonly<Record<string, CliCommand | CliGroup>> = {
  deploy: deployCommand,
  twin: {
    summary: 'read and update module twins',
    commands: { get: twinGetCommand, set: twinSetCommand },
  },
  invoke: invokeCommand,
  monitor: monitorCommand,
  upstream: upstreamCommand,
  deadletter: { summary: "a module's dead letters", commands: deadLetterCommands },
  status: statusCommand,
  identities: identitiesCommand,
  hub: hubCommand,
  bridge: bridgeCommand,
  routes: {
    summary: 'work with routes',
    commands: {
      check: {
        summary: 'validate the routes of a deployment manifest and show where each module output goes',
        run: routesCheck,
      },
    },
  },
  demo: demoCommand,
};

const isGroup = (entry: CliCommand | CliGroup): entry is CliGroup => 'commands' in entry;

/**
 * Where the guides are: the package ships docs/ beside dist/, and the command runs from dist/cli/ (installed) or
 * src/cli/ (a clone), two levels below it either way.
 */
function guides(): string {
  const docs = fileURLToPath(new URL('../../docs/', import.meta.url));
  return existsSync(`${docs}cli.md`)
    ? `Guides (docs/… in the help texts) are in ${docs}; cli.md there has worked examples.`
    : 'The guides (docs/… in the help texts) are in the docs folder of the edgekit package.';
}

function generalHelp(): string {
  const lines = ['Usage: edgekit <command> [options]', '', 'Commands:'];
  for (const [name, entry] of Object.entries(COMMANDS)) {
    if (!isGroup(entry)) lines.push(`  ${name.padEnd(17)} ${entry.summary}`);
    else
      for (const [sub, command] of Object.entries(entry.commands))
        lines.push(`  ${`${name} ${sub}`.padEnd(17)} ${command.summary}`);
  }
  lines.push(
    '',
    'Broker commands take --broker <url> (mqtt://, mqtts://, amqp://, amqps:// or memory:) or read EDGEKIT_BROKER_URL.',
    'Run "edgekit <command> --help" for the options of a command.',
    guides(),
    '',
    'Exit status: 0 success, 1 the operation failed (with a one-line reason), 2 usage error.',
    '',
  );
  return lines.join('\n');
}

function groupHelp(group: string, entry: CliGroup): string {
  const lines = [`Usage: edgekit ${group} <command> [options]`, '', 'Commands:'];
  for (const [name, command] of Object.entries(entry.commands)) lines.push(`  ${name.padEnd(10)} ${command.summary}`);
  return `${lines.join('\n')}\n`;
}

const isHelp = (arg: string | undefined) => arg === '--help' || arg === '-h' || arg === 'help';

function usageError(io: CliIo, reason: string): number {
  io.stderr.write(`edgekit: ${visible(reason)}\nRun "edgekit --help" for usage.\n`);
  return EXIT.usage;
}

/** The process's streams and environment, a UTF-8 file reader, and colour when stdout is a terminal. */
export const processIo: CliIo = {
  stdout: process.stdout,
  stderr: process.stderr,
  readFile: (path) => readFileSync(path, 'utf8'),
  env: process.env,
  color: process.stdout.isTTY === true && !process.env.NO_COLOR,
};

/**
 * Runs the `edgekit` command line `argv` (without `node` and the script) and resolves to the exit code.
 *
 * @example
 * ```ts
 * const out: string[] = [];
 * const code = await main(['routes', 'check', 'deployment.json', '--json'], { ...processIo, stdout: { write: (s) => out.push(s) } });
 * ```
 */
export async function main(argv: readonly string[], io: CliIo = processIo): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || isHelp(name)) {
    io.stdout.write(generalHelp());
    return name === undefined ? EXIT.usage : EXIT.ok;
  }
  if (name === '--version' || name === '-v') {
    const { SDK_VERSION } = await import('../version.js');
    io.stdout.write(`${SDK_VERSION}\n`);
    return EXIT.ok;
  }
  const entry = COMMANDS[name];
  if (entry === undefined) return usageError(io, `unknown command "${name}"`);
  let command: CliCommand | undefined = isGroup(entry) ? undefined : entry;
  let args = rest;
  if (isGroup(entry)) {
    const [sub, ...subArgs] = rest;
    if (sub === undefined || isHelp(sub)) {
      io.stdout.write(groupHelp(name, entry));
      return sub === undefined ? EXIT.usage : EXIT.ok;
    }
    command = entry.commands[sub];
    if (command === undefined) return usageError(io, `unknown command "${name} ${sub}"`);
    args = subArgs;
  }
  try {
    return await (command as CliCommand).run(args, io);
  } catch (error) {
    io.stderr.write(`edgekit: ${visible(error instanceof Error ? error.message : String(error))}\n`);
    return EXIT.failed;
  }
}

function invokedDirectly(): boolean {
  const script = process.argv[1];
  if (script === undefined || typeof import.meta.url !== 'string') return false;
  try {
    return realpathSync(script) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (invokedDirectly()) {
  // Ctrl-C or SIGTERM (docker stop, systemd) ends long-running commands (monitor, demo, hub) cleanly; a second
  // signal exits at once.
  const stop = new AbortController();
  for (const [signal, code] of [
    ['SIGINT', 130],
    ['SIGTERM', 143],
  ] as const) {
    process.once(signal, () => {
      stop.abort();
      process.once(signal, () => process.exit(code));
    });
  }
  main(process.argv.slice(2), { ...processIo, signal: stop.signal }).then((code) => {
    process.exitCode = code;
  });
}
