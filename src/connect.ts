/**
 * The composition root: entry points that create a module client (choosing the memory transport when none is
 * given), kept out of core/ so the core never imports a transport. Entry points that create a module client: `connect` with explicit options, `fromEnvironment` with the identity
 * IoT Edge injects into a module container and edgekit's own broker variables.
 */
import { type InternalConnectOptions, ModuleClientImpl } from './core/client.js';
import type { ModuleContract } from './core/contract.js';
import type { ConnectOptions, ModuleClient } from './core/types.js';
import { EdgeKitError } from './errors.js';
import { checkName } from './names.js';
import { maskedUrlHint, redactCredentials } from './redact.js';
import type { Transport } from './transport.js';
import { memory } from './transports/memory/index.js';

/**
 * Connects a module. Resolves once connected, subscribed to its routes, desired properties and methods, and marked
 * online; rejects with `connection-failed` (or `timeout`/`aborted`) if the first connection cannot be made in time.
 *
 * @example
 * ```ts
 * const client = await connect(Filter, { deviceId: 'dev1', moduleId: 'filter', transport: mqtt({ url }) });
 * ```
 */
export async function connect<C extends ModuleContract>(
  contract: C,
  options: ConnectOptions,
): Promise<ModuleClient<C>> {
  if (typeof contract !== 'object' || contract === null || typeof contract.codecOf !== 'function') {
    throw new TypeError('connect: the first argument must be a contract from defineModule() (or untypedModule)');
  }
  if (typeof options !== 'object' || options === null) throw new TypeError('connect: options must be an object');
  const client = new ModuleClientImpl(contract, {
    ...(options as InternalConnectOptions),
    transport: options.transport ?? memory(),
  });
  await client.start(options.abortSignal);
  return client as unknown as ModuleClient<C>;
}

/** Options a transport factory receives from {@link fromEnvironment}. */
export interface EnvironmentTransportOptions {
  readonly url: string;
  readonly username?: string;
  readonly password?: string;
  /** PEM texts read from the files the variables name. */
  readonly tls?: { readonly ca?: string; readonly cert?: string; readonly key?: string };
}

/** Creates a transport from environment settings; `mqtt` and `amqp` from `edgekit/mqtt` and `edgekit/amqp` fit. */
export type TransportFactory = (options: EnvironmentTransportOptions) => Transport;

/** Options for {@link fromEnvironment}. */
export interface FromEnvironmentOptions extends Omit<ConnectOptions, 'deviceId' | 'moduleId' | 'transport'> {
  /** Transport factories by URL scheme family: `{ mqtt, amqp }` serves mqtt:, mqtts:, amqp: and amqps: URLs. */
  readonly transports?: Readonly<Record<string, TransportFactory>>;
  /** Where to read variables from; default `process.env`. */
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** Reads the TLS files named by the variables; default `fs.readFileSync(path, 'utf8')`. */
  readonly readFile?: (path: string) => string;
  /** The transport for `memory:` (or no `EDGEKIT_BROKER_URL`); default the process's shared memory broker. */
  readonly memory?: () => Transport;
}

/**
 * The variables {@link fromEnvironment} reads. IoT Edge sets the first two in every module container.
 */
export const ENVIRONMENT_VARIABLES = {
  IOTEDGE_DEVICEID: 'device id (required)',
  IOTEDGE_MODULEID: 'module id (required)',
  EDGEKIT_BROKER_URL: 'mqtt://, mqtts://, amqp://, amqps:// or memory: (default memory:)',
  EDGEKIT_USERNAME: 'broker user name (default <device>/<module> when a password is given)',
  EDGEKIT_PASSWORD_FILE:
    'file holding the broker password (what `edgekit identities` writes); preferred to EDGEKIT_PASSWORD',
  EDGEKIT_PASSWORD:
    'broker password (visible to anything that can read the process environment: use EDGEKIT_PASSWORD_FILE)',
  EDGEKIT_CA_FILE: 'PEM file of the CA that signed the broker certificate',
  EDGEKIT_CERT_FILE: 'PEM client certificate',
  EDGEKIT_KEY_FILE: 'PEM client key',
  EDGEKIT_REPLICA_ID: 'replica id when several instances of one module share its inputs',
} as const;

/**
 * Connects a module configured by its environment, the way it runs in a container. Fails with one
 * `invalid-configuration` error that lists every missing or invalid variable.
 *
 * @example
 * ```ts
 * import { mqtt } from 'edgekit/mqtt';
 * const client = await fromEnvironment(Filter, { transports: { mqtt } });
 * ```
 */
export async function fromEnvironment<C extends ModuleContract>(
  contract: C,
  options: FromEnvironmentOptions = {},
): Promise<ModuleClient<C>> {
  const { transports = {}, env = process.env, readFile, memory: memoryTransport = memory, ...rest } = options;
  const problems: string[] = [];
  const deviceId = env.IOTEDGE_DEVICEID;
  const moduleId = env.IOTEDGE_MODULEID;
  if (!deviceId) problems.push('IOTEDGE_DEVICEID is not set (the device id)');
  if (!moduleId) problems.push('IOTEDGE_MODULEID is not set (the module id)');
  for (const [variable, kind] of [
    ['IOTEDGE_DEVICEID', 'device id'],
    ['IOTEDGE_MODULEID', 'module id'],
    ['EDGEKIT_REPLICA_ID', 'replica id'],
  ] as const) {
    const value = env[variable];
    if (!value) continue;
    try {
      checkName(kind, value);
    } catch (error) {
      problems.push(`${variable}: ${error instanceof Error ? error.message : String(error)}`);
    }
  }
  const transport = await transportFromSettings(
    {
      url: env.EDGEKIT_BROKER_URL,
      // The user name `edgekit identities` gives a module is its identity.
      username:
        env.EDGEKIT_USERNAME ||
        ((env.EDGEKIT_PASSWORD || env.EDGEKIT_PASSWORD_FILE) && deviceId && moduleId
          ? `${deviceId}/${moduleId}`
          : undefined),
      password: env.EDGEKIT_PASSWORD,
      passwordFile: env.EDGEKIT_PASSWORD_FILE,
      caFile: env.EDGEKIT_CA_FILE,
      certFile: env.EDGEKIT_CERT_FILE,
      keyFile: env.EDGEKIT_KEY_FILE,
    },
    { transports, memory: memoryTransport, ...(readFile ? { readFile } : {}), labels: ENVIRONMENT_LABELS },
    problems,
  );
  if (problems.length > 0) {
    throw new EdgeKitError(
      'invalid-configuration',
      `cannot configure the module from its environment:\n- ${problems.join('\n- ')}`,
      {
        details: { problems },
      },
    );
  }
  return connect(contract, {
    ...rest,
    deviceId: deviceId as string,
    moduleId: moduleId as string,
    ...(env.EDGEKIT_REPLICA_ID ? { replicaId: env.EDGEKIT_REPLICA_ID } : {}),
    ...(transport ? { transport } : {}),
  });
}

/** Broker settings, as environment variables or command-line flags give them. */
export interface BrokerSettings {
  /** `mqtt:`, `mqtts:`, `amqp:`, `amqps:` or `memory:` (the default). */
  readonly url?: string | undefined;
  readonly username?: string | undefined;
  readonly password?: string | undefined;
  /** Path of a file holding the password (its trailing line break is not part of it); not with `password`. */
  readonly passwordFile?: string | undefined;
  /** Paths of PEM files. */
  readonly caFile?: string | undefined;
  readonly certFile?: string | undefined;
  readonly keyFile?: string | undefined;
}

/** How a setting is named in problems: a variable (`EDGEKIT_BROKER_URL`) or a flag (`--broker`). */
export type BrokerSettingLabels = Readonly<
  Record<'url' | 'password' | 'passwordFile' | 'caFile' | 'certFile' | 'keyFile', string>
>;

const ENVIRONMENT_LABELS: BrokerSettingLabels = {
  url: 'EDGEKIT_BROKER_URL',
  password: 'EDGEKIT_PASSWORD',
  passwordFile: 'EDGEKIT_PASSWORD_FILE',
  caFile: 'EDGEKIT_CA_FILE',
  certFile: 'EDGEKIT_CERT_FILE',
  keyFile: 'EDGEKIT_KEY_FILE',
};

/** The URL scheme families edgekit has transports for (each from its own entry point). */
const KNOWN_FAMILIES: ReadonlySet<string> = new Set(['mqtt', 'amqp']);

/**
 * @internal The transport for broker settings: the factory of the URL's scheme family (`mqtts:` → `mqtt`), given
 * the URL, credentials and the TLS files' contents. Every problem (bad URL, unreadable file, no factory for the
 * scheme) is pushed to `problems`, naming the setting by `labels`; then nothing is created.
 */
export async function transportFromSettings(
  settings: BrokerSettings,
  options: {
    readonly transports: Readonly<Record<string, TransportFactory>>;
    readonly memory: () => Transport;
    readonly readFile?: (path: string) => string;
    readonly labels: BrokerSettingLabels;
  },
  problems: string[],
): Promise<Transport | undefined> {
  const { labels } = options;
  const url = settings.url || 'memory:';
  let scheme = '';
  try {
    scheme = new URL(url).protocol.replace(/:$/, '');
  } catch {
    const shown = JSON.stringify(redactCredentials(url, [settings.password]));
    problems.push(`${labels.url} ${shown} is not a URL${maskedUrlHint(url)}`);
  }
  let password = settings.password || undefined;
  if (settings.passwordFile) {
    if (password !== undefined) problems.push(`give ${labels.password} or ${labels.passwordFile}, not both`);
    else {
      try {
        password = (options.readFile ?? (await defaultReadFile()))(settings.passwordFile).replace(/\r?\n$/, '');
        if (password === '') problems.push(`${labels.passwordFile}: ${settings.passwordFile} is empty`);
      } catch (error) {
        problems.push(
          `${labels.passwordFile}: cannot read ${settings.passwordFile} (${error instanceof Error ? error.message : String(error)})`,
        );
      }
    }
  }
  const tls: { ca?: string; cert?: string; key?: string } = {};
  for (const [field, setting] of [
    ['ca', 'caFile'],
    ['cert', 'certFile'],
    ['key', 'keyFile'],
  ] as const) {
    const path = settings[setting];
    if (!path) continue;
    try {
      tls[field] = (options.readFile ?? (await defaultReadFile()))(path);
    } catch (error) {
      problems.push(
        `${labels[setting]}: cannot read ${path} (${error instanceof Error ? error.message : String(error)})`,
      );
    }
  }
  if (scheme === 'memory') return options.memory();
  if (!scheme) return undefined;
  const family = scheme.replace(/s$/, '');
  const factory = options.transports[family];
  if (!factory) {
    problems.push(
      KNOWN_FAMILIES.has(family)
        ? `${labels.url} uses ${scheme}: but no ${family} transport was given; pass { transports: { ${family} } } from 'edgekit/${family}'`
        : `${labels.url} uses ${scheme}:, which edgekit does not speak: use mqtt://, mqtts://, amqp://, amqps:// or memory:`,
    );
    return undefined;
  }
  if (problems.length > 0) return undefined;
  return factory({
    url,
    ...(settings.username ? { username: settings.username } : {}),
    ...(password ? { password } : {}),
    ...(Object.keys(tls).length > 0 ? { tls } : {}),
  });
}

async function defaultReadFile(): Promise<(path: string) => string> {
  const fs = await import('node:fs');
  return (path) => fs.readFileSync(path, 'utf8');
}
