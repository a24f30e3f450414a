/**
 * The `edgekit` command: a small dispatcher of `<group> <command>` subcommands, each parsing its own options with
 * `node:util` `parseArgs` (so the CLI adds no dependency to the library). `main` takes its output streams and file
 * reader as arguments, so commands are tested without spawning a process.
 */
import { readFileSync, realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { routesCheck } from './commands/routes-check.js';

/** Where a command writes and how it reads files; `main` uses the process's streams by default. */
export interface CliIo {
  readonly stdout: { write(text: string): unknown };
  readonly stderr: { write(text: string): unknown };
  /** Reads a UTF-8 text file; throws when it cannot. */
  readonly readFile: (path: string) => string;
}

/** A runnable subcommand: its one-line summary and its entry point, which resolves to the exit code. */
export interface CliCommand {
  readonly summary: string;
  run(args: readonly string[], io: CliIo): Promise<number>;
}

/** Exit codes: 0 success, 1 the command failed (e.g. an invalid route), 2 the command line was wrong. */
export const EXIT = { ok: 0, failed: 1, usage: 2 } as const;

/** Command groups and their commands. Add a command by adding an entry here. */
export const COMMANDS: Readonly<Record<string, Readonly<Record<string, CliCommand>>>> = {
  routes: {
    check: {
      summary: 'validate the routes of a deployment manifest and show where each module output goes',
      run: routesCheck,
    },
  },
};

function generalHelp(): string {
  const lines = ['Usage: edgekit <command> [options]', '', 'Commands:'];
  for (const [group, commands] of Object.entries(COMMANDS)) {
    for (const [name, command] of Object.entries(commands))
      lines.push(`  ${`${group} ${name}`.padEnd(16)} ${command.summary}`);
  }
  lines.push('', 'Run "edgekit <command> --help" for the options of a command.', '');
  return lines.join('\n');
}

function groupHelp(group: string, commands: Readonly<Record<string, CliCommand>>): string {
  const lines = [`Usage: edgekit ${group} <command> [options]`, '', 'Commands:'];
  for (const [name, command] of Object.entries(commands)) lines.push(`  ${name.padEnd(10)} ${command.summary}`);
  return `${lines.join('\n')}\n`;
}

const isHelp = (arg: string | undefined) => arg === '--help' || arg === '-h' || arg === 'help';

function usageError(io: CliIo, reason: string): number {
  io.stderr.write(`edgekit: ${reason}\nRun "edgekit --help" for usage.\n`);
  return EXIT.usage;
}

/** The process's streams and a UTF-8 file reader. */
export const processIo: CliIo = {
  stdout: process.stdout,
  stderr: process.stderr,
  readFile: (path) => readFileSync(path, 'utf8'),
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
  const [group, name, ...rest] = argv;
  if (group === undefined || isHelp(group)) {
    io.stdout.write(generalHelp());
    return group === undefined ? EXIT.usage : EXIT.ok;
  }
  const commands = COMMANDS[group];
  if (commands === undefined) return usageError(io, `unknown command "${group}"`);
  if (name === undefined || isHelp(name)) {
    io.stdout.write(groupHelp(group, commands));
    return name === undefined ? EXIT.usage : EXIT.ok;
  }
  const command = commands[name];
  if (command === undefined) return usageError(io, `unknown command "${group} ${name}"`);
  try {
    return await command.run(rest, io);
  } catch (error) {
    io.stderr.write(`edgekit: ${error instanceof Error ? error.message : String(error)}\n`);
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
  main(process.argv.slice(2)).then((code) => {
    process.exitCode = code;
  });
}
