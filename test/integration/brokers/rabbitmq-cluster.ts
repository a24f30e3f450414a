/**
 * Starts a real 3-node RabbitMQ cluster (the Debian package's `rabbitmq-server`) as child processes of the tests, on
 * one machine: one epmd of our own, one shared HOME (so every node and `rabbitmqctl` share one Erlang cookie), and per
 * node a unique node name, free loopback ports for AMQP and Erlang distribution, and its own data, log and config
 * files in a temporary folder. The nodes boot in parallel; nodes 2… then `join_cluster` node 1 (measured faster and
 * more predictable than peer discovery racing at boot). A node can be killed (SIGKILL of its Erlang VM, by PID),
 * stopped and started again on the same ports and data, and rejoins by itself. A missing installation is an error,
 * never a skip.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, openSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { accepts, freePort } from '../support/loopback.js';

const RABBITMQ_BIN = '/usr/lib/rabbitmq/bin';
const SERVER = path.join(RABBITMQ_BIN, 'rabbitmq-server');
const CTL = path.join(RABBITMQ_BIN, 'rabbitmqctl');
const INSTALL_HINT =
  'apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends rabbitmq-server';

/** `rabbitmqctl` picks its own distribution port in 35672–35682 (Debian's rabbitmq-env): no node may listen there. */
const CTL_DIST_PORTS = { min: 35_672, max: 35_682 };

export interface RabbitMQClusterNode {
  /** Erlang node name, `edgekit-c<pid>-<n>-<i>@localhost`. */
  readonly name: string;
  /** `amqp://guest:guest@127.0.0.1:<port>` */
  readonly url: string;
  readonly port: number;
}

export interface RabbitMQCluster {
  readonly nodes: readonly RabbitMQClusterNode[];
  /** Every node's URL, in node order. */
  readonly urls: readonly string[];
  /** The temporary folder (HOME, and per node data, logs, config); removed by {@link stop}. */
  readonly dir: string;
  /** Kills node `index`'s Erlang VM with SIGKILL (a crash: nothing flushed, connections reset) and waits for it to end. */
  kill(index: number): Promise<void>;
  /** Starts node `index` again on its ports and data; resolves once it accepts AMQP connections. */
  start(index: number): Promise<void>;
  /** The nodes `cluster_status` (asked of a running node) says are running. */
  runningNodes(): Promise<string[]>;
  /** The node name of the leader of quorum queue `queue` (vhost `/`), asked of a running node. */
  leaderOf(queue: string): Promise<string | undefined>;
  /** The index of the node named `name`. */
  indexOf(name: string): number;
  /** Runs `rabbitmqctl` against node `index`; rejects with its error output when it fails. */
  rabbitmqctl(index: number, args: readonly string[], timeoutInMs?: number): Promise<string>;
  /** Stops every node and epmd, and removes the folder; idempotent. */
  stop(): Promise<void>;
}

export interface StartRabbitMQClusterOptions {
  /** Number of nodes; default 3. */
  readonly size?: number;
  /** How long to wait for the cluster to form; default 180 s (a loaded 2-core machine boots three nodes slowly). */
  readonly readyTimeoutInMs?: number;
}

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise<void>((resolve) => child.once('exit', () => resolve()));
}

function killQuietly(pid: number | undefined, signal: NodeJS.Signals): void {
  if (pid === undefined) return;
  try {
    process.kill(pid, signal);
  } catch {
    // already gone
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** A free port outside `rabbitmqctl`'s distribution range. */
async function freeNodePort(taken: Set<number>): Promise<number> {
  for (;;) {
    const port = await freePort();
    if ((port < CTL_DIST_PORTS.min || port > CTL_DIST_PORTS.max) && !taken.has(port)) {
      taken.add(port);
      return port;
    }
  }
}

interface NodeState {
  readonly node: RabbitMQClusterNode;
  readonly env: NodeJS.ProcessEnv;
  readonly dir: string;
  readonly pidFile: string;
  server: ChildProcess | undefined;
  beamPid: number | undefined;
}

let clusters = 0;

/**
 * Starts a RabbitMQ cluster and resolves once every node runs in it.
 *
 * @example
 * ```ts
 * const cluster = await startRabbitMQCluster();
 * const transport = amqp({ urls: cluster.urls, queueType: 'quorum' });
 * await cluster.kill(0);
 * await cluster.start(0);
 * await cluster.stop();
 * ```
 */
export async function startRabbitMQCluster(options: StartRabbitMQClusterOptions = {}): Promise<RabbitMQCluster> {
  if (!existsSync(SERVER) || !existsSync(CTL)) {
    throw new Error(
      `RabbitMQ is not installed (${SERVER} is missing); the cluster tests need a real broker. Install it with: ${INSTALL_HINT}`,
    );
  }
  const size = options.size ?? 3;
  const readyTimeoutInMs = options.readyTimeoutInMs ?? 180_000;
  const deadline = Date.now() + readyTimeoutInMs;
  const dir = await mkdtemp(path.join(os.tmpdir(), 'edgekit-rabbitmq-cluster-'));
  const home = path.join(dir, 'home');
  await mkdir(home);
  // One cookie for all nodes and rabbitmqctl: they authenticate each other with it.
  const cookie = path.join(home, '.erlang.cookie');
  await writeFile(cookie, randomBytes(16).toString('hex').toUpperCase());
  await chmod(cookie, 0o400);
  const taken = new Set<number>();
  const epmdPort = await freeNodePort(taken);
  const id = `edgekit-c${process.pid}-${++clusters}`;

  const states: NodeState[] = [];
  for (let i = 0; i < size; i++) {
    const nodeDir = path.join(dir, `n${i + 1}`);
    await mkdir(path.join(nodeDir, 'log'), { recursive: true });
    const [port, distPort] = [await freeNodePort(taken), await freeNodePort(taken)];
    await writeFile(
      path.join(nodeDir, 'rabbitmq.conf'),
      [
        `listeners.tcp.default = 127.0.0.1:${port}`,
        'log.console = false',
        'log.file.level = info',
        'disk_free_limit.absolute = 50MB',
        '',
      ].join('\n'),
    );
    await writeFile(path.join(nodeDir, 'enabled_plugins'), '[].\n');
    await writeFile(path.join(nodeDir, 'rabbitmq-env.conf'), '');
    const pidFile = path.join(nodeDir, 'rabbitmq.pid');
    const name = `${id}-${i + 1}@localhost`;
    states.push({
      node: { name, port, url: `amqp://guest:guest@127.0.0.1:${port}` },
      dir: nodeDir,
      pidFile,
      server: undefined,
      beamPid: undefined,
      env: {
        PATH: process.env.PATH,
        LANG: 'C.UTF-8',
        HOME: home,
        RABBITMQ_NODENAME: name,
        RABBITMQ_NODE_IP_ADDRESS: '127.0.0.1',
        RABBITMQ_NODE_PORT: String(port),
        RABBITMQ_DIST_PORT: String(distPort),
        ERL_EPMD_ADDRESS: '127.0.0.1',
        ERL_EPMD_PORT: String(epmdPort),
        RABBITMQ_MNESIA_BASE: path.join(nodeDir, 'mnesia'),
        RABBITMQ_LOG_BASE: path.join(nodeDir, 'log'),
        RABBITMQ_CONFIG_FILE: path.join(nodeDir, 'rabbitmq'),
        RABBITMQ_ADVANCED_CONFIG_FILE: path.join(nodeDir, 'advanced.config'),
        RABBITMQ_CONF_ENV_FILE: path.join(nodeDir, 'rabbitmq-env.conf'),
        RABBITMQ_ENABLED_PLUGINS_FILE: path.join(nodeDir, 'enabled_plugins'),
        RABBITMQ_PID_FILE: pidFile,
      },
    });
  }

  // Our own epmd, in the foreground, so its PID is ours to stop; every node registers with it.
  const epmd = spawn('epmd', [], { env: states[0]?.env, stdio: 'ignore' });
  epmd.once('error', () => undefined);

  const onExit = () => {
    // Last resort when the test process dies without stop(): end what we started, by PID.
    for (const state of states) {
      killQuietly(state.beamPid, 'SIGKILL');
      killQuietly(state.server?.pid, 'SIGKILL');
    }
    killQuietly(epmd.pid, 'SIGKILL');
  };
  process.once('exit', onExit);

  const stateOf = (index: number): NodeState => {
    const state = states[index];
    if (state === undefined) throw new RangeError(`no node ${index} (the cluster has ${size})`);
    return state;
  };

  const ctl = (index: number, args: readonly string[], timeoutInMs = 60_000): Promise<string> => {
    const state = stateOf(index);
    return new Promise<string>((resolve, reject) => {
      execFile(
        CTL,
        ['-q', '-n', state.node.name, ...args],
        { env: state.env, timeout: timeoutInMs },
        (error, stdout, stderr) => {
          if (error === null) resolve(stdout);
          else
            reject(new Error(`rabbitmqctl -n ${state.node.name} ${args.join(' ')} failed: ${stderr || error.message}`));
        },
      );
    });
  };

  const launch = async (index: number, until: number) => {
    const state = stateOf(index);
    const out = openSync(path.join(state.dir, 'log', 'server-output.log'), 'a');
    const child = spawn(SERVER, [], { env: state.env, stdio: ['ignore', out, out] });
    state.server = child;
    state.beamPid = undefined;
    while (!(await accepts(state.node.port))) {
      if (child.exitCode !== null || child.signalCode !== null) {
        throw new Error(`${state.node.name} exited during start-up; see ${path.join(state.dir, 'log')}`);
      }
      if (Date.now() > until)
        throw new Error(`${state.node.name} did not accept AMQP connections in time; see ${state.dir}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    state.beamPid = Number.parseInt((await readFile(state.pidFile, 'utf8').catch(() => '')).trim(), 10) || undefined;
  };

  const runningNodes = async (): Promise<string[]> => {
    let lastError: unknown;
    for (const [index, state] of states.entries()) {
      if (state.beamPid === undefined || !alive(state.beamPid)) continue;
      try {
        const status = JSON.parse(await ctl(index, ['cluster_status', '--formatter', 'json'])) as {
          running_nodes?: string[];
        };
        return status.running_nodes ?? [];
      } catch (error) {
        lastError = error;
      }
    }
    throw new Error(`no node answered cluster_status: ${String(lastError)}`);
  };

  const stopAll = async () => {
    await Promise.all(
      states.map(async (state, index) => {
        const child = state.server;
        if (child === undefined) return;
        if (state.beamPid !== undefined && alive(state.beamPid))
          await ctl(index, ['stop'], 30_000).catch(() => undefined);
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([exited(child), new Promise((resolve) => (timer = setTimeout(resolve, 20_000)))]);
        clearTimeout(timer);
        killQuietly(state.beamPid, 'SIGKILL');
        killQuietly(child.pid, 'SIGKILL');
        await exited(child);
        state.server = undefined;
      }),
    );
    epmd.kill('SIGTERM');
    await exited(epmd);
    process.off('exit', onExit);
  };

  try {
    const epmdDeadline = Date.now() + 10_000;
    while (!(await accepts(epmdPort))) {
      if (epmd.exitCode !== null) throw new Error(`epmd exited with code ${epmd.exitCode}`);
      if (Date.now() > epmdDeadline) throw new Error('epmd did not listen within 10 s');
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    await Promise.all(states.map((_, index) => launch(index, deadline)));
    const first = stateOf(0).node.name;
    for (let index = 1; index < size; index++) {
      await ctl(index, ['stop_app']);
      await ctl(index, ['join_cluster', first]);
      await ctl(index, ['start_app']);
    }
    const names = states.map((s) => s.node.name);
    for (;;) {
      const running = await runningNodes();
      if (names.every((name) => running.includes(name))) break;
      if (Date.now() > deadline) throw new Error(`the cluster did not form in time: running ${running.join(', ')}`);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  } catch (error) {
    await stopAll();
    await rm(dir, { recursive: true, force: true });
    throw error;
  }

  let stopped = false;
  return {
    nodes: states.map((s) => s.node),
    urls: states.map((s) => s.node.url),
    dir,
    async kill(index) {
      const state = stateOf(index);
      const child = state.server;
      if (child === undefined) throw new Error(`${state.node.name} is not running`);
      killQuietly(state.beamPid, 'SIGKILL');
      await exited(child);
      state.server = undefined;
      state.beamPid = undefined;
    },
    async start(index) {
      const state = stateOf(index);
      if (state.server !== undefined) throw new Error(`${state.node.name} is running`);
      await launch(index, Date.now() + readyTimeoutInMs);
    },
    runningNodes,
    async leaderOf(queue) {
      for (const [index, state] of states.entries()) {
        if (state.beamPid === undefined || !alive(state.beamPid)) continue;
        const rows = JSON.parse(await ctl(index, ['list_queues', 'name', 'leader', '--formatter', 'json'])) as Array<{
          name: string;
          leader?: string;
        }>;
        return rows.find((row) => row.name === queue)?.leader;
      }
      throw new Error('no node is running');
    },
    indexOf(name) {
      const index = states.findIndex((s) => s.node.name === name);
      if (index < 0) throw new RangeError(`no node named ${name}`);
      return index;
    },
    rabbitmqctl: ctl,
    async stop() {
      if (stopped) return;
      stopped = true;
      await stopAll();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
