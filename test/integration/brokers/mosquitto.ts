/**
 * Starts a real Mosquitto broker as a child process of the tests: a generated config in a temp folder, a free port
 * on 127.0.0.1, readiness by polling the port, and stop/restart/kill by PID. A missing `mosquitto` binary is an
 * error, never a skip: CI must fail when the broker is not installed.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { accessSync, constants, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { accepts, freePort } from '../support/loopback.js';

/** TLS listener settings; files are PEM paths readable by the broker. */
export interface MosquittoTlsOptions {
  readonly certFile: string;
  readonly keyFile: string;
  /** CA that signs client certificates; required with `requireCertificate`. */
  readonly caFile?: string;
  /** Clients must present a certificate signed by `caFile`. */
  readonly requireCertificate?: boolean;
}

export interface StartMosquittoOptions {
  /** Keep retained messages, sessions and queued messages across {@link Mosquitto.restart}. */
  readonly persistence?: boolean;
  readonly tls?: MosquittoTlsOptions;
  /** Username → password. When given, anonymous clients are refused. */
  readonly users?: Readonly<Record<string, string>>;
  /** A ready-made password file (instead of `users`). */
  readonly passwordFile?: string;
  /**
   * Lines of an ACL file (`user <name>`, `topic [read|write|readwrite|deny] <topic>`, …), written to the broker's
   * folder and set as its `acl_file`: what each user may publish and subscribe to.
   */
  readonly acl?: readonly string[];
  /**
   * Authorization by the dynamic-security plugin: `json` is written to the broker's folder as its configuration
   * file, and `config(file)` gives the lines that load it (e.g. `mosquittoSecurityConfig`); anonymous clients are
   * then not allowed by the test defaults.
   */
  readonly dynamicSecurity?: {
    readonly json: unknown;
    readonly config: (dynamicSecurityFile: string) => readonly string[];
  };
  /** Extra config lines appended verbatim (e.g. `max_inflight_messages 5`). */
  readonly config?: readonly string[];
  /**
   * A whole configuration file (such as docs/brokers/mosquitto.conf) used instead of the test defaults: its
   * `listener` becomes this broker's loopback port and its `persistence_location` the broker's folder; comments go.
   */
  readonly configFile?: string;
  /** Ask for Mosquitto's debug log in {@link Mosquitto.log} (noisy; for diagnosing a failing test). */
  readonly verbose?: boolean;
}

export interface Mosquitto {
  /** `mqtt://127.0.0.1:<port>` or `mqtts://…` with TLS. */
  readonly url: string;
  readonly port: number;
  /** Folder holding the config (and persistence); removed by {@link stop}. */
  readonly dir: string;
  /** The PID of the running broker (undefined while stopped). */
  readonly pid: number | undefined;
  /** SIGTERM, wait for exit (Mosquitto saves persistence on the way out), remove the temp folder. Idempotent. */
  stop(): Promise<void>;
  /** SIGTERM then start again on the same port with the same config and persistence folder. */
  restart(): Promise<void>;
  /** SIGKILL: the broker dies without saving anything. Start it again with {@link start}. */
  kill(): Promise<void>;
  /** Starts a stopped or killed broker again on the same port. */
  start(): Promise<void>;
  /** The broker's recent output, for assertion messages. */
  log(): string;
}

const BINARY_CANDIDATES = ['/usr/sbin/mosquitto', '/usr/local/sbin/mosquitto', '/usr/bin/mosquitto'];
const READY_TIMEOUT_MS = 10_000;
const STOP_TIMEOUT_MS = 5_000;
const LOG_LIMIT = 64 * 1024;

/** Finds the mosquitto binary or throws an error that says how to install it. */
export function findMosquitto(): string {
  const fromEnv = process.env.MOSQUITTO_BIN;
  const pathDirs = (process.env.PATH ?? '').split(path.delimiter).filter((d) => d !== '');
  const candidates = [
    ...(fromEnv ? [fromEnv] : []),
    ...pathDirs.map((d) => path.join(d, 'mosquitto')),
    ...BINARY_CANDIDATES,
  ];
  for (const candidate of candidates) {
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // try the next one
    }
  }
  throw new Error(
    'mosquitto is not installed, and the MQTT integration tests need a real broker. Install it with ' +
      '`apt-get install -y --no-install-recommends mosquitto` (Debian/Ubuntu), `brew install mosquitto` (macOS), ' +
      'or set MOSQUITTO_BIN to its path.',
  );
}

function writePasswordFile(file: string, users: Readonly<Record<string, string>>): void {
  const entries = Object.entries(users);
  if (entries.length === 0) throw new Error('users must name at least one user');
  writeFileSync(file, '');
  for (const [user, password] of entries) {
    execFileSync('mosquitto_passwd', ['-b', file, user, password], { stdio: 'pipe' });
  }
}

/** The lines of `text` (a mosquitto.conf), with its listener and persistence folder moved to this test broker's. */
function adoptConfigFile(text: string, port: number, dir: string): string[] {
  return text
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'))
    .map((line) => {
      if (/^listener\s/.test(line)) return `listener ${port} 127.0.0.1`;
      if (/^persistence_location\s/.test(line)) return `persistence_location ${dir}${path.sep}`;
      return line;
    });
}

function buildConfig(port: number, dir: string, options: StartMosquittoOptions): string {
  if (options.configFile !== undefined) {
    const lines = [
      ...adoptConfigFile(options.configFile, port, dir),
      'log_dest stderr',
      'log_type error',
      'log_type warning',
      'log_type notice',
      ...(process.getuid?.() === 0 ? ['user root'] : []),
      ...(options.config ?? []),
    ];
    return `${lines.join('\n')}\n`;
  }
  const lines = [
    `listener ${port} 127.0.0.1`,
    'set_tcp_nodelay true',
    // Defaults (1000 queued, 20 in flight) drop QoS 1 messages for a slow or offline subscriber under load.
    'max_queued_messages 1000000',
    'max_inflight_messages 1000',
    'log_dest stderr',
    ...(options.verbose ? ['log_type all'] : ['log_type error', 'log_type warning', 'log_type notice']),
    'connection_messages true',
  ];
  // Run as root, Mosquitto drops to the `mosquitto` user and could not read our temp folder.
  if (process.getuid?.() === 0) lines.push('user root');
  if (options.persistence) {
    lines.push('persistence true', `persistence_location ${dir}${path.sep}`, 'autosave_interval 60');
  }
  const passwordFile = options.passwordFile ?? (options.users ? path.join(dir, 'passwords') : undefined);
  if (options.users && passwordFile) writePasswordFile(passwordFile, options.users);
  if (passwordFile) {
    lines.push('allow_anonymous false', `password_file ${passwordFile}`);
  } else if (options.dynamicSecurity) {
    const file = path.join(dir, 'dynamic-security.json');
    writeFileSync(file, JSON.stringify(options.dynamicSecurity.json, null, 2));
    lines.push(...options.dynamicSecurity.config(file));
  } else {
    lines.push('allow_anonymous true');
  }
  if (options.acl) {
    const aclFile = path.join(dir, 'acl');
    writeFileSync(aclFile, `${options.acl.join('\n')}\n`);
    lines.push(`acl_file ${aclFile}`);
  }
  if (options.tls) {
    lines.push(`certfile ${options.tls.certFile}`, `keyfile ${options.tls.keyFile}`);
    if (options.tls.caFile) lines.push(`cafile ${options.tls.caFile}`);
    if (options.tls.requireCertificate) lines.push('require_certificate true');
  }
  lines.push(...(options.config ?? []));
  return `${lines.join('\n')}\n`;
}

/**
 * Starts Mosquitto on a free loopback port and resolves once it accepts connections.
 *
 * @example
 * ```ts
 * const broker = await startMosquitto({ persistence: true });
 * afterAll(() => broker.stop());
 * const transport = mqtt({ url: broker.url });
 * ```
 */
export async function startMosquitto(options: StartMosquittoOptions = {}): Promise<Mosquitto> {
  const binary = findMosquitto();
  const dir = mkdtempSync(path.join(tmpdir(), 'edgekit-mosquitto-'));
  const port = await freePort();
  const configFile = path.join(dir, 'mosquitto.conf');
  try {
    writeFileSync(configFile, buildConfig(port, dir, options));
  } catch (error) {
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }

  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();
  let output = '';
  let removed = false;
  const killOnExit = () => {
    if (child?.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
    try {
      process.kill(child.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  };
  process.once('exit', killOnExit);

  const start = async (): Promise<void> => {
    if (child && child.exitCode === null && child.signalCode === null) return;
    const proc = spawn(binary, ['-c', configFile], { stdio: ['ignore', 'pipe', 'pipe'] });
    child = proc;
    const append = (chunk: Buffer) => {
      output = (output + chunk.toString('utf8')).slice(-LOG_LIMIT);
    };
    proc.stdout?.on('data', append);
    proc.stderr?.on('data', append);
    let exitedEarly = false;
    exited = new Promise<void>((resolve) => {
      proc.once('exit', () => {
        exitedEarly = true;
        resolve();
      });
      proc.once('error', (error) => {
        append(Buffer.from(`spawn error: ${error.message}\n`));
        exitedEarly = true;
        resolve();
      });
    });
    const deadline = Date.now() + READY_TIMEOUT_MS;
    for (;;) {
      if (exitedEarly) throw new Error(`mosquitto exited during start-up:\n${output}`);
      if (await accepts(port)) return;
      if (Date.now() > deadline) {
        killOnExit();
        throw new Error(
          `mosquitto did not accept connections on port ${port} within ${READY_TIMEOUT_MS} ms:\n${output}`,
        );
      }
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  };

  const signal = async (sig: NodeJS.Signals): Promise<void> => {
    const proc = child;
    if (!proc || proc.pid === undefined || proc.exitCode !== null || proc.signalCode !== null) return;
    process.kill(proc.pid, sig);
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(true), STOP_TIMEOUT_MS);
    });
    const late = await Promise.race([exited.then(() => false), timedOut]);
    clearTimeout(timer);
    if (late) {
      process.kill(proc.pid, 'SIGKILL');
      await exited;
    }
  };

  try {
    await start();
  } catch (error) {
    killOnExit();
    process.removeListener('exit', killOnExit);
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
  const scheme = options.tls ? 'mqtts' : 'mqtt';
  return {
    url: `${scheme}://127.0.0.1:${port}`,
    port,
    dir,
    get pid() {
      return child && child.exitCode === null && child.signalCode === null ? child.pid : undefined;
    },
    async stop() {
      await signal('SIGTERM');
      process.removeListener('exit', killOnExit);
      if (!removed) {
        removed = true;
        rmSync(dir, { recursive: true, force: true });
      }
    },
    async restart() {
      await signal('SIGTERM');
      await start();
    },
    kill: () => signal('SIGKILL'),
    start,
    log: () => output,
  };
}
