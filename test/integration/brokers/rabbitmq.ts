/**
 * Starts a real RabbitMQ node (the Debian package's `rabbitmq-server`) as a child process of the tests: its own epmd,
 * HOME, node name, data and log folders in a temporary directory, and free ports on 127.0.0.1 only. A missing
 * installation is an error, never a skip: a CI run without the broker must fail.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, openSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { accepts, freePort } from '../support/loopback.js';

const RABBITMQ_BIN = '/usr/lib/rabbitmq/bin';
const SERVER = path.join(RABBITMQ_BIN, 'rabbitmq-server');
const CTL = path.join(RABBITMQ_BIN, 'rabbitmqctl');
const INSTALL_HINT =
  'apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends rabbitmq-server';

export interface RabbitMQ {
  /** `amqp://guest:guest@127.0.0.1:<port>` */
  readonly url: string;
  readonly port: number;
  /** The AMQPS port when started with `tls`. */
  readonly tlsPort: number | undefined;
  /** The node's working folder (data, logs, config); removed by {@link stop}. */
  readonly dir: string;
  /** Stops the node gracefully (its data is flushed), then starts it again on the same port with the same data. */
  restart(): Promise<void>;
  /**
   * Runs `rabbitmqctl` against this node (e.g. `['import_definitions', file]`) and resolves with its output; rejects
   * with its error output when it fails.
   */
  rabbitmqctl(args: readonly string[], timeoutInMs?: number): Promise<string>;
  /** Stops the node and its epmd and removes the working folder; idempotent. */
  stop(): Promise<void>;
}

export interface StartRabbitMQOptions {
  /** How long to wait for the node to accept AMQP connections; default 60 s. */
  readonly readyTimeoutInMs?: number;
  /** Adds an AMQPS listener with these PEM files; with `requireClientCertificate`, clients must present one. */
  readonly tls?: {
    readonly certFile: string;
    readonly keyFile: string;
    readonly caFile: string;
    readonly requireClientCertificate?: boolean;
  };
  /** Users besides guest (password by name), each with full rights on every vhost unless `permissions` narrows them. */
  readonly users?: Readonly<Record<string, string>>;
  /** Narrower rights of some users, on every vhost: see {@link UserPermissions}. */
  readonly permissions?: Readonly<Record<string, UserPermissions>>;
  /** Virtual hosts besides `/`. */
  readonly vhosts?: readonly string[];
  /**
   * A rabbitmq.conf (such as docs/brokers/rabbitmq.conf) whose settings are added to the node's, except its
   * listeners and `load_definitions`, which stay the test's (loopback port, test users).
   */
  readonly configFile?: string;
  /**
   * The text of a RabbitMQ definitions JSON (docs/brokers/rabbitmq-definitions.json, or what `rabbitmqDefinitions`
   * renders) loaded at boot with the test's users: its `users`, `vhosts`, `permissions`, `topic_permissions`,
   * `policies`, `exchanges`, `queues` and `bindings` are added to theirs.
   */
  readonly definitionsFile?: string;
  /**
   * RabbitMQ's `max_message_size` (bytes of a message body); default RabbitMQ's own (128 MiB in 3.10). A publish over
   * it makes the broker close the publishing channel with `406 PRECONDITION_FAILED`.
   */
  readonly maxMessageSize?: number;
  /**
   * Plugins to enable (e.g. `rabbitmq_auth_mechanism_ssl`); default none, for a faster boot and because the
   * transport must work on a plain broker.
   */
  readonly plugins?: readonly string[];
  /** Extra rabbitmq.conf lines appended verbatim (e.g. `auth_mechanisms.1 = EXTERNAL`). */
  readonly config?: readonly string[];
  /**
   * The node's advanced.config (Erlang terms), for settings rabbitmq.conf cannot express, such as the TLS
   * listener's `crl_cache`. A key set there replaces rabbitmq.conf's whole value: `{rabbit, [{ssl_options, …}]}` must
   * then repeat the certificate files.
   */
  readonly advancedConfig?: string;
}

/**
 * A user's rights as RabbitMQ's definitions state them: regular expressions over the resource names the user may
 * configure (declare, delete), write (publish to, bind to) and read (consume from, bind from), default `.*`, and
 * topic permissions, which RabbitMQ checks against the routing key of each publish to (write) or binding on (read)
 * a topic exchange.
 */
export interface UserPermissions {
  readonly configure?: string;
  readonly write?: string;
  readonly read?: string;
  readonly topics?: readonly { readonly exchange: string; readonly write: string; readonly read: string }[];
}

/** RabbitMQ's stored form of a password: base64(salt ‖ SHA-256(salt ‖ password)). */
function passwordHash(password: string): string {
  const salt = randomBytes(4);
  const digest = createHash('sha256')
    .update(Buffer.concat([salt, Buffer.from(password, 'utf8')]))
    .digest();
  return Buffer.concat([salt, digest]).toString('base64');
}

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise<void>((resolve) => child.once('exit', () => resolve()));
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T | 'timed out'> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<'timed out'>((resolve) => {
    timer = setTimeout(() => resolve('timed out'), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

function killQuietly(pid: number | undefined, signal: NodeJS.Signals): void {
  if (pid === undefined) return;
  try {
    process.kill(pid, signal);
  } catch {
    // already gone
  }
}

/**
 * Starts a RabbitMQ node and resolves once it accepts AMQP connections (about 6 s).
 *
 * @example
 * ```ts
 * const broker = await startRabbitMQ();
 * const transport = amqp({ url: broker.url });
 * // …
 * await broker.stop();
 * ```
 */
export async function startRabbitMQ(options: StartRabbitMQOptions = {}): Promise<RabbitMQ> {
  if (!existsSync(SERVER)) {
    throw new Error(
      `RabbitMQ is not installed (${SERVER} is missing); the AMQP integration tests need a real broker. Install it with: ${INSTALL_HINT}`,
    );
  }
  const readyTimeoutInMs = options.readyTimeoutInMs ?? 60_000;
  const dir = await mkdtemp(path.join(os.tmpdir(), 'edgekit-rabbitmq-'));
  const [port, distPort, epmdPort] = [await freePort(), await freePort(), await freePort()];
  const tlsPort = options.tls === undefined ? undefined : await freePort();
  const home = path.join(dir, 'home');
  await mkdir(home);
  await mkdir(path.join(dir, 'log'));
  const users = { guest: 'guest', ...options.users };
  const extra = (options.definitionsFile === undefined ? {} : JSON.parse(options.definitionsFile)) as Partial<
    Record<
      'users' | 'vhosts' | 'permissions' | 'topic_permissions' | 'policies' | 'exchanges' | 'queues' | 'bindings',
      unknown[]
    >
  >;
  const vhosts = [
    ...new Set([
      '/',
      ...(options.vhosts ?? []),
      ...(extra.vhosts ?? []).map((vhost) => (vhost as { name: string }).name),
    ]),
  ];
  const definitions = {
    users: Object.entries(users)
      .map(([name, password]) => ({
        name,
        password_hash: passwordHash(password),
        hashing_algorithm: 'rabbit_password_hashing_sha256',
        tags: name === 'guest' ? ['administrator'] : [],
      }))
      .concat((extra.users ?? []) as never[]),
    vhosts: vhosts.map((name) => ({ name })),
    permissions: Object.keys(users).flatMap((user) =>
      vhosts.map((vhost) => {
        const narrower = options.permissions?.[user];
        return {
          user,
          vhost,
          configure: narrower?.configure ?? '.*',
          write: narrower?.write ?? '.*',
          read: narrower?.read ?? '.*',
        };
      }),
    ) as unknown[],
    topic_permissions: Object.entries(options.permissions ?? {}).flatMap(([user, p]) =>
      vhosts.flatMap((vhost) => (p.topics ?? []).map((t) => ({ user, vhost, ...t }))),
    ) as unknown[],
    policies: extra.policies ?? [],
    exchanges: extra.exchanges ?? [],
    queues: extra.queues ?? [],
    bindings: extra.bindings ?? [],
  };
  definitions.permissions.push(...(extra.permissions ?? []));
  definitions.topic_permissions.push(...(extra.topic_permissions ?? []));
  await writeFile(path.join(dir, 'definitions.json'), JSON.stringify(definitions));
  const tls = options.tls;
  await writeFile(
    path.join(dir, 'rabbitmq.conf'),
    [
      `listeners.tcp.default = 127.0.0.1:${port}`,
      `load_definitions = ${path.join(dir, 'definitions.json')}`,
      'log.console = false',
      'log.file.level = info',
      'disk_free_limit.absolute = 50MB',
      ...(options.configFile ?? '')
        .split('\n')
        .map((line) => line.trim())
        .filter((line) => line !== '' && !line.startsWith('#'))
        .filter((line) => !/^(listeners\.|load_definitions|disk_free_limit)/.test(line)),
      ...(options.maxMessageSize === undefined ? [] : [`max_message_size = ${options.maxMessageSize}`]),
      ...(tls === undefined
        ? []
        : [
            `listeners.ssl.default = 127.0.0.1:${tlsPort}`,
            `ssl_options.cacertfile = ${tls.caFile}`,
            `ssl_options.certfile = ${tls.certFile}`,
            `ssl_options.keyfile = ${tls.keyFile}`,
            'ssl_options.verify = verify_peer',
            `ssl_options.fail_if_no_peer_cert = ${tls.requireClientCertificate === true}`,
          ]),
      ...(options.config ?? []),
      '',
    ].join('\n'),
  );
  await writeFile(path.join(dir, 'enabled_plugins'), `[${(options.plugins ?? []).join(',')}].\n`);
  if (options.advancedConfig !== undefined) await writeFile(path.join(dir, 'advanced.config'), options.advancedConfig);
  await writeFile(path.join(dir, 'rabbitmq-env.conf'), '');
  const pidFile = path.join(dir, 'rabbitmq.pid');
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    LANG: 'C.UTF-8',
    HOME: home,
    RABBITMQ_NODENAME: `edgekit-${process.pid}-${port}@localhost`,
    RABBITMQ_NODE_IP_ADDRESS: '127.0.0.1',
    RABBITMQ_NODE_PORT: String(port),
    RABBITMQ_DIST_PORT: String(distPort),
    ERL_EPMD_ADDRESS: '127.0.0.1',
    ERL_EPMD_PORT: String(epmdPort),
    RABBITMQ_MNESIA_BASE: path.join(dir, 'mnesia'),
    RABBITMQ_LOG_BASE: path.join(dir, 'log'),
    RABBITMQ_CONFIG_FILE: path.join(dir, 'rabbitmq'),
    RABBITMQ_ADVANCED_CONFIG_FILE: path.join(dir, 'advanced.config'),
    RABBITMQ_CONF_ENV_FILE: path.join(dir, 'rabbitmq-env.conf'),
    RABBITMQ_ENABLED_PLUGINS_FILE: path.join(dir, 'enabled_plugins'),
    RABBITMQ_PID_FILE: pidFile,
  };

  // Our own epmd first, in the foreground, so its PID is ours to stop (otherwise RabbitMQ daemonises one that
  // outlives the tests).
  const epmd = spawn('epmd', [], { env, stdio: 'ignore' });
  const epmdFailed = new Promise<never>((_, reject) => {
    epmd.once('error', (error) => reject(new Error(`epmd did not start: ${error.message}`)));
  });
  epmdFailed.catch(() => undefined);
  const deadline = Date.now() + 10_000;
  while (!(await accepts(epmdPort))) {
    if (epmd.exitCode !== null) throw new Error(`epmd exited with code ${epmd.exitCode}`);
    if (Date.now() > deadline) throw new Error('epmd did not listen within 10 s');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }

  let server: ChildProcess | undefined;
  let stopped = false;
  const onExit = () => {
    // Last resort when the test process dies without stop(): end what we started, by PID.
    killQuietly(server?.pid, 'SIGKILL');
    killQuietly(beamPid, 'SIGKILL');
    killQuietly(epmd.pid, 'SIGKILL');
  };
  let beamPid: number | undefined;
  process.once('exit', onExit);

  const launch = async () => {
    const out = openSync(path.join(dir, 'log', 'server-output.log'), 'a');
    const child = spawn(SERVER, [], { env, stdio: ['ignore', out, out] });
    server = child;
    const started = Date.now();
    while (!(await accepts(port)) || (tlsPort !== undefined && !(await accepts(tlsPort)))) {
      if (child.exitCode !== null || child.signalCode !== null) {
        throw new Error(`rabbitmq-server exited during start-up; see ${path.join(dir, 'log')}`);
      }
      if (Date.now() - started > readyTimeoutInMs) {
        throw new Error(`rabbitmq-server did not accept connections within ${readyTimeoutInMs} ms; see ${dir}/log`);
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    beamPid = Number.parseInt((await readFile(pidFile, 'utf8').catch(() => '')).trim(), 10) || undefined;
  };

  const stopNode = async () => {
    const child = server;
    if (child === undefined) return;
    await new Promise<void>((resolve) => {
      execFile(CTL, ['-q', 'stop', pidFile], { env, timeout: 60_000 }, () => resolve());
    });
    if ((await withTimeout(exited(child), 30_000)) === 'timed out') {
      killQuietly(child.pid, 'SIGKILL');
      killQuietly(beamPid, 'SIGKILL');
      await exited(child);
    }
    server = undefined;
  };

  try {
    await launch();
  } catch (error) {
    killQuietly(server?.pid, 'SIGTERM');
    killQuietly(epmd.pid, 'SIGTERM');
    process.off('exit', onExit);
    throw error;
  }

  return {
    url: `amqp://guest:guest@127.0.0.1:${port}`,
    port,
    tlsPort,
    dir,
    rabbitmqctl(args, timeoutInMs = 60_000) {
      return new Promise<string>((resolve, reject) => {
        execFile(CTL, ['-q', ...args], { env, timeout: timeoutInMs }, (error, stdout, stderr) => {
          if (error === null) resolve(stdout);
          else reject(new Error(`rabbitmqctl ${args.join(' ')} failed: ${stderr || error.message}`));
        });
      });
    },
    async restart() {
      if (stopped) throw new Error('RabbitMQ was stopped');
      await stopNode();
      await launch();
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      await stopNode();
      epmd.kill('SIGTERM');
      await withTimeout(exited(epmd), 5_000);
      process.off('exit', onExit);
      await rm(dir, { recursive: true, force: true });
    },
  };
}
