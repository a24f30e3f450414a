/**
 * What the `edgekit` commands share: the output streams they are given, parsing of their options with the broker
 * options every broker command takes, connecting a ServiceClient from them, and the output conventions (a one-line
 * reason on failure, `--json` for scripts, colour only on a terminal, and no control character the CLI did not make:
 * text from a broker or a file goes through `visible`/`visibleJson`).
 */
import { chmodSync, mkdirSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { type ParseArgsConfig, parseArgs } from 'node:util';
import { type BrokerSettings, type TransportFactory, transportFromSettings } from '../connect.js';
import { visible } from '../core/visible.js';
import { EdgeKitError, isEdgeKitError, messageOf } from '../errors.js';
import { checkName, parseIdentity } from '../names.js';
import { redactCredentials } from '../redact.js';
import { connectService, type ServiceClient } from '../service/client.js';
import type { Transport } from '../transport.js';
import { amqp } from '../transports/amqp/index.js';
import { memory } from '../transports/memory/index.js';
import { mqtt } from '../transports/mqtt/index.js';

/** Where a command writes, how it reads files, its environment, and when to stop a long-running command. */
export interface CliIo {
  readonly stdout: { write(text: string): unknown };
  readonly stderr: { write(text: string): unknown };
  /** Reads a UTF-8 text file; throws when it cannot. */
  readonly readFile: (path: string) => string;
  /** Environment variables (`EDGEKIT_BROKER_URL`, …); default none. */
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** Whether to colour the output (a terminal without `NO_COLOR`); default false. */
  readonly color?: boolean;
  /** Ends long-running commands (`monitor`, `demo`) as Ctrl-C does. */
  readonly signal?: AbortSignal;
}

/** A runnable command: its one-line summary and its entry point, which resolves to the exit code. */
export interface CliCommand {
  readonly summary: string;
  run(args: readonly string[], io: CliIo): Promise<number>;
}

/** Exit codes: 0 success, 1 the operation failed (with a one-line reason), 2 the command line was wrong. */
export const EXIT = { ok: 0, failed: 1, usage: 2 } as const;

/** A wrong command line: reported with the command's name and a pointer to its help, exit 2. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

/** The options every command that talks to a broker takes, as `parseArgs` options and as help text. */
export const BROKER_OPTIONS = {
  broker: { type: 'string' },
  username: { type: 'string' },
  password: { type: 'string' },
  'password-file': { type: 'string' },
  ca: { type: 'string' },
  cert: { type: 'string' },
  key: { type: 'string' },
  'connect-timeout': { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const satisfies ParseArgsConfig['options'];

export const BROKER_HELP = `Broker options (each defaults to its environment variable):
  --broker <url>         mqtt://, mqtts://, amqp://, amqps:// or memory:   [EDGEKIT_BROKER_URL]
  --username <name>      broker user name; an operator identity such as $operator/ops (docs/security.md) [EDGEKIT_USERNAME]
  --password-file <file> file holding the broker password                  [EDGEKIT_PASSWORD_FILE]
  --password <secret>    broker password (visible in the process list: prefer --password-file) [EDGEKIT_PASSWORD]
  --ca <file>            PEM file of the CA that signed the broker's certificate [EDGEKIT_CA_FILE]
  --cert <file>          PEM client certificate                            [EDGEKIT_CERT_FILE]
  --key <file>           PEM client key                                    [EDGEKIT_KEY_FILE]
  --connect-timeout <s>  give up connecting after this many seconds (default 10)
  --json                 print JSON (for scripts)
  -h, --help             show this help`;

type BrokerValues = {
  broker?: string;
  username?: string;
  password?: string;
  'password-file'?: string;
  ca?: string;
  cert?: string;
  key?: string;
  'connect-timeout'?: string;
  json?: boolean;
  help?: boolean;
};

/** The values of a command's own options: strings for `type: 'string'`, booleans for `type: 'boolean'`. */
type OptionValues<O> = {
  [K in keyof O]?: O[K] extends { readonly type: 'boolean' } ? boolean : string;
};

/** Parses a command's arguments (its own options plus the broker options); throws {@link UsageError}. */
export function parseCommand<O extends NonNullable<ParseArgsConfig['options']>>(
  args: readonly string[],
  options: O,
): { values: BrokerValues & OptionValues<O>; positionals: string[] } {
  try {
    const { values, positionals } = parseArgs({
      args: [...args],
      options: { ...BROKER_OPTIONS, ...options },
      allowPositionals: true,
      strict: true,
    });
    return { values: values as unknown as BrokerValues & OptionValues<O>, positionals };
  } catch (error) {
    throw new UsageError(messageOf(error));
  }
}

/** A positive number of seconds from an option, in milliseconds; throws {@link UsageError}. */
export function secondsOption(name: string, value: string | boolean | undefined, fallbackInMs: number): number {
  if (value === undefined) return fallbackInMs;
  const seconds = typeof value === 'string' && value.trim() !== '' ? Number(value) : Number.NaN;
  // Node timers hold at most 2^31 - 1 ms (about 24.8 days); a longer one would fire at once.
  if (!Number.isFinite(seconds) || seconds < 0.001 || seconds * 1000 > MAX_TIMER_MS) {
    throw new UsageError(
      `--${name} must be a number of seconds from 0.001 to ${Math.floor(MAX_TIMER_MS / 1000)}, got ${JSON.stringify(value)}`,
    );
  }
  return Math.round(seconds * 1000);
}

const MAX_TIMER_MS = 2 ** 31 - 1;

/** A name from the command line, checked; throws {@link UsageError}. */
export function nameArgument(kind: Parameters<typeof checkName>[0], value: string): string {
  try {
    return checkName(kind, value);
  } catch (error) {
    throw new UsageError(messageOf(error));
  }
}

/** `<device>/<module>` → its parts, checked; throws {@link UsageError}. */
export function moduleArgument(value: string | undefined, what = '<device>/<module>'): [string, string] {
  if (value === undefined) throw new UsageError(`missing ${what}`);
  const parts = value.split('/');
  if (parts.length !== 2) throw new UsageError(`expected ${what}, got ${JSON.stringify(value)}`);
  const [deviceId, moduleId] = parts as [string, string];
  return [nameArgument('device id', deviceId), nameArgument('module id', moduleId)];
}

/** The JSON of a manifest file named on the command line; `invalid-configuration` when it cannot be read. */
export function readJsonFile(file: string, io: CliIo): unknown {
  let text: string;
  try {
    text = io.readFile(file);
  } catch (error) {
    throw new EdgeKitError('invalid-configuration', `cannot read ${file}: ${messageOf(error)}`);
  }
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new EdgeKitError('invalid-configuration', `${file} is not valid JSON: ${jsonErrorAt(text, error)}`);
  }
}

/**
 * A JSON.parse error with the line and column it points at (1-based), which V8 gives only as an offset — or at the
 * end of the text when the text stops short ("Unexpected end of JSON input").
 */
export function jsonErrorAt(text: string, error: unknown): string {
  const message = messageOf(error);
  const at = /at position (\d+)/.exec(message);
  const offset = at ? Number(at[1]) : /end of JSON input/.test(message) ? text.length : undefined;
  if (offset === undefined) return message;
  const before = text.slice(0, offset);
  const line = before.split('\n').length;
  const column = offset - (before.lastIndexOf('\n') + 1) + 1;
  const reason = message
    .replace(/ in JSON at position \d+.*$/s, '')
    .replace(/^Unexpected end of JSON input$/, 'the text ends too early');
  return `line ${line}, column ${column}: ${reason}`;
}

/** A JSON argument, or `@file` to read it from a file; throws {@link UsageError} for malformed JSON. */
export function jsonArgument(value: string, io: CliIo): unknown {
  let text = value;
  let from = 'the argument';
  if (value.startsWith('@')) {
    from = value.slice(1);
    try {
      text = io.readFile(from);
    } catch (error) {
      throw new EdgeKitError('invalid-configuration', `cannot read ${from}: ${messageOf(error)}`);
    }
  }
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new UsageError(`${from} is not valid JSON: ${jsonErrorAt(text, error)}`);
  }
}

/** Transports the CLI can reach: MQTT without a persistent session (an operator keeps none), AMQP, memory. */
const CLI_TRANSPORTS: Readonly<Record<string, TransportFactory>> = {
  mqtt: (options: Parameters<typeof mqtt>[0]) => mqtt({ ...options, sessionExpiryInSeconds: 0 }),
  amqp,
};

/**
 * The transport the broker options (or their variables) name; `memory:` only when asked for. `factories` replace the
 * operator's transports (modules keep MQTT sessions, an operator keeps none).
 */
export async function transportOf(
  values: BrokerValues,
  io: CliIo,
  fallbackUrl?: string,
  factories: Readonly<Record<string, TransportFactory>> = CLI_TRANSPORTS,
): Promise<Transport> {
  const env = io.env ?? {};
  const url = values.broker ?? env.EDGEKIT_BROKER_URL ?? fallbackUrl;
  if (url === undefined || url === '') {
    throw new UsageError('no broker: pass --broker <url> or set EDGEKIT_BROKER_URL');
  }
  const settings: BrokerSettings = {
    url,
    username: values.username ?? env.EDGEKIT_USERNAME,
    password: values.password ?? (values['password-file'] ? undefined : env.EDGEKIT_PASSWORD),
    passwordFile: values['password-file'] ?? (values.password ? undefined : env.EDGEKIT_PASSWORD_FILE),
    caFile: values.ca ?? env.EDGEKIT_CA_FILE,
    certFile: values.cert ?? env.EDGEKIT_CERT_FILE,
    keyFile: values.key ?? env.EDGEKIT_KEY_FILE,
  };
  const problems: string[] = [];
  const transport = await transportFromSettings(
    settings,
    {
      transports: factories,
      memory,
      readFile: io.readFile,
      labels: {
        url: '--broker',
        password: '--password',
        passwordFile: '--password-file',
        caFile: '--ca',
        certFile: '--cert',
        keyFile: '--key',
      },
    },
    problems,
  );
  if (problems.length > 0 || transport === undefined) {
    throw new UsageError(problems.join('; ') || `cannot use the broker ${redactCredentials(url, [settings.password])}`);
  }
  return transport;
}

/** Connects a service client with the broker options. */
export async function serviceOf(values: BrokerValues, io: CliIo): Promise<ServiceClient> {
  const transport = await transportOf(values, io);
  // An operator credential from `edgekit identities` is named after its identity; the broker checks that this
  // client speaks for no one else.
  const username = values.username ?? io.env?.EDGEKIT_USERNAME;
  return connectService({
    transport,
    ...(username !== undefined && parseIdentity(username)?.kind === 'operator' ? { identity: username } : {}),
    connectTimeoutInMs: secondsOption('connect-timeout', values['connect-timeout'], 10_000),
    ...(io.signal ? { abortSignal: io.signal } : {}),
  });
}

/**
 * Runs a command body with the conventions of every command: `--help` prints `help`; a {@link UsageError} prints the
 * reason and exits 2; any other error prints a one-line reason and exits 1.
 */
export async function runCommand(
  name: string,
  help: string,
  args: readonly string[],
  io: CliIo,
  body: () => Promise<number>,
): Promise<number> {
  if (args.includes('--help') || args.includes('-h')) {
    io.stdout.write(`${help.trimEnd()}\n`);
    return EXIT.ok;
  }
  try {
    return await body();
  } catch (error) {
    if (error instanceof UsageError) {
      io.stderr.write(`edgekit ${name}: ${visible(error.message)}\nRun "edgekit ${name} --help" for usage.\n`);
      return EXIT.usage;
    }
    io.stderr.write(`edgekit ${name}: ${oneLine(error)}\n`);
    return EXIT.failed;
  }
}

/**
 * A command named `name` (as typed after `edgekit`) whose `body` runs under {@link runCommand}'s conventions.
 *
 * @example
 * ```ts
 * export const pingCommand = command('ping', 'answer pong', 'Usage: edgekit ping', async (_args, io) => {
 *   io.stdout.write('pong\n');
 *   return EXIT.ok;
 * });
 * ```
 */
export function command(
  name: string,
  summary: string,
  help: string,
  body: (args: readonly string[], io: CliIo) => Promise<number>,
): CliCommand {
  return { summary, run: (args, io) => runCommand(name, help, args, io, () => body(args, io)) };
}

export { visible, visibleJson } from '../core/visible.js';

/**
 * The first line of an error's message, with its code when it has one, safe to print: messages quote what brokers
 * and files said.
 */
export function oneLine(error: unknown): string {
  const first = visible(messageOf(error).split('\n')[0] ?? '');
  return isEdgeKitError(error) ? `${first} (${error.code})` : first;
}

/** ANSI styles, applied only when the output is a terminal. */
export function painter(
  io: CliIo,
): (style: 'bold' | 'dim' | 'red' | 'green' | 'yellow' | 'cyan' | 'magenta', text: string) => string {
  const codes = {
    bold: [1, 22],
    dim: [2, 22],
    red: [31, 39],
    green: [32, 39],
    yellow: [33, 39],
    cyan: [36, 39],
    magenta: [35, 39],
  };
  return (style, text) => (io.color ? `\u001b[${codes[style][0]}m${text}\u001b[${codes[style][1]}m` : text);
}

/** Local time of an epoch-ms timestamp as `HH:MM:SS.mmm`, or `YYYY-MM-DD HH:MM:SS` when it is not today. */
export function timeOf(ms: number, now = Date.now()): string {
  const d = new Date(ms);
  const pad = (n: number, w = 2) => String(n).padStart(w, '0');
  const time = `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  if (new Date(now).toDateString() === d.toDateString()) return `${time}.${pad(d.getMilliseconds(), 3)}`;
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${time}`;
}

/** Closes the service client, never throwing (the command's outcome is already decided). */
export async function closeQuietly(service: ServiceClient | undefined): Promise<void> {
  await service?.close().catch(() => undefined);
}

/** Connects a service client with the broker options, runs `use` with it, and closes it however `use` ends. */
export async function withService<T>(
  values: BrokerValues,
  io: CliIo,
  use: (service: ServiceClient) => Promise<T>,
): Promise<T> {
  const service = await serviceOf(values, io);
  try {
    return await use(service);
  } finally {
    await closeQuietly(service);
  }
}

/**
 * Writes a secret file and its directory, readable by the owner only (0600 / 0700), by renaming a complete temporary
 * file into place: a reader never sees half a file, and a file that existed with a wider mode does not keep it.
 */
export function writePrivate(file: string, content: string): void {
  mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  const temporary = `${file}.${process.pid}.tmp`;
  writeFileSync(temporary, content, { mode: 0o600 });
  chmodSync(temporary, 0o600);
  renameSync(temporary, file);
}

/**
 * Says so when the device has a deployment that does not list the module — most often a mistyped name, which nothing
 * would ever read or answer: `gw-1/filtr is not in the deployment of gw-1 (modules: sensor, filter)`. `undefined`
 * when it is listed, or when there is no (valid) deployment record to check against.
 */
export async function notDeployed(
  service: ServiceClient,
  deviceId: string,
  moduleId: string,
): Promise<string | undefined> {
  const record = await service.deployment(deviceId);
  if (record === undefined || record.state === 'invalid' || record.modules.includes(moduleId)) return undefined;
  return `${deviceId}/${moduleId} is not in the deployment of ${deviceId} (modules: ${visible(record.modules.join(', ') || 'none')})`;
}
