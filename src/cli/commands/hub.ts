/**
 * `edgekit hub`: serves the edgeHub module protocol (edgekit/hub) for one device on a broker, so modules written on
 * Microsoft's Azure IoT device SDKs run unchanged beside edgekit modules; `edgekit hub env <module>` prints the
 * environment such a module needs. Keys and the development TLS material live in a state folder; with
 * `--identities`, each module's key comes from the credential `edgekit identities` issued it, and the hub logs each
 * module in to the broker as itself.
 */
import { randomBytes, X509Certificate } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
import path from 'node:path';
import { EdgeKitError } from '../../errors.js';
import { startHub } from '../../hub/index.js';
import { deriveModuleKey } from '../../hub/sas.js';
import { createCertificateAuthority, issueServerCertificate } from '../../service/certificates.js';
import type { Transport } from '../../transport.js';
import { amqp } from '../../transports/amqp/index.js';
import { mqtt } from '../../transports/mqtt/index.js';
import {
  BROKER_HELP,
  type CliIo,
  command,
  EXIT,
  nameArgument,
  oneLine,
  parseCommand,
  transportOf,
  UsageError,
  visible,
  writePrivate,
} from '../shared.js';

const HELP = `Usage: edgekit hub --device <id> [options]
       edgekit hub env <module> --device <id> [options]

Serves the IoT Edge hub's module protocol, so modules written on Microsoft's Azure
IoT device SDKs (C#, Python, Node, C) run unchanged in an edgekit deployment: their
messages follow the deployment's routes, their twins and direct methods are edgekit's,
and "edgekit status" shows them like any module (docs/iotedge.md). It listens for
MQTT over TLS (8883) and HTTPS (443, module-to-module methods), and optionally the
IoT Edge workload API on a unix socket (for ModuleClient.fromEnvironment).

"edgekit hub env <module>" prints the variables that module needs — a connection
string with GatewayHostName and the CA file (the IoT Edge local-debug form), or with
--workload the IOTEDGE_* variables of a module container. It creates the module's
key the first time.

Options:
  --device <id>              the device (required)
  --state <dir>              keys.json (each module's SAS key) and, unless --tls-* are
                             given, a development CA and server certificate, created on
                             first use (default ./edgekit-hub)
  --identities <dir>         the directory "edgekit identities" wrote: each module's key is
                             derived from its credential, and the hub logs each module in to
                             the broker with it (no keys.json)
  --host <address>           address to listen on (default 127.0.0.1)
  --mqtt-port <port>         MQTT over TLS (default 8883)
  --https-port <port>        HTTPS for invokeMethod (default 443)
  --gateway-host <name>      the name modules reach the hub by: the server certificate's
                             name and GatewayHostName (default localhost)
  --hub-host <name>          the IoT Hub host name in the modules' tokens (default edgekit.local)
  --workload-socket <path>   also serve the workload API on this socket
  --tls-cert <file>          the hub's server certificate (PEM) instead of the development one …
  --tls-key <file>           … its key …
  --tls-ca <file>            … and the CA chain modules trust (the trust bundle)
  --workload                 (hub env) print the IOTEDGE_* variables instead of a connection string

${BROKER_HELP.replace('[EDGEKIT_BROKER_URL]', '[EDGEKIT_BROKER_URL] (hub: required)')}

Exit status: 0 stopped by Ctrl-C or SIGTERM (hub) or printed (env), 1 the hub could not
start, 2 usage error.

Examples:
  edgekit hub --device gw-1 --broker mqtt://127.0.0.1:1883
  edgekit hub env azure-filter --device gw-1 > azure-filter.env
  docker run --env-file azure-filter.env -v $PWD/edgekit-hub:$PWD/edgekit-hub:ro …
`;

const MODULE_TRANSPORTS = { mqtt, amqp };

/** The label HMAC'd with a module's edgekit password to give its SAS key (with --identities). */
export const SAS_KEY_LABEL = 'edgekit/hub/sas-key/v1';

const HUB_OPTIONS = {
  device: { type: 'string' },
  state: { type: 'string' },
  identities: { type: 'string' },
  host: { type: 'string' },
  'mqtt-port': { type: 'string' },
  'https-port': { type: 'string' },
  'gateway-host': { type: 'string' },
  'hub-host': { type: 'string' },
  'workload-socket': { type: 'string' },
  'tls-cert': { type: 'string' },
  'tls-key': { type: 'string' },
  'tls-ca': { type: 'string' },
  workload: { type: 'boolean' },
} as const;

type HubValues = ReturnType<typeof parseCommand<typeof HUB_OPTIONS>>['values'];

function portOption(name: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const port = Number(value);
  if (!/^\d+$/.test(value) || port < 1 || port > 65_535) {
    throw new UsageError(`--${name} must be a port from 1 to 65535, got ${JSON.stringify(value)}`);
  }
  return port;
}

/** The hub's state folder: module keys and the development TLS material. */
class HubState {
  constructor(readonly dir: string) {}

  private file(name: string): string {
    return path.join(this.dir, name);
  }

  readKeys(): Record<string, string> {
    const file = this.file('keys.json');
    if (!existsSync(file)) return {};
    let json: unknown;
    try {
      json = JSON.parse(readFileSync(file, 'utf8'));
    } catch (error) {
      throw new EdgeKitError('invalid-configuration', `${file} is not valid JSON: ${oneLine(error)}`);
    }
    if (typeof json !== 'object' || json === null || Array.isArray(json)) {
      throw new EdgeKitError('invalid-configuration', `${file} must be an object of module ids to base64 keys`);
    }
    // A map without a prototype: a module named "constructor" has no key unless the file gives it one.
    return Object.assign(
      Object.create(null) as Record<string, string>,
      Object.fromEntries(Object.entries(json).filter((e): e is [string, string] => typeof e[1] === 'string')),
    );
  }

  /** The module's key, created (32 random bytes) if it has none. */
  keyFor(moduleId: string): string {
    const keys = this.readKeys();
    const existing = keys[moduleId];
    if (existing !== undefined) return existing;
    const key = randomBytes(32).toString('base64');
    writePrivate(this.file('keys.json'), `${JSON.stringify({ ...keys, [moduleId]: key }, null, 2)}\n`);
    return key;
  }

  caFile(): string {
    return this.file('ca.pem');
  }

  /** The development CA and a server certificate for `names`, created or re-issued when the names changed. */
  developmentTls(names: readonly string[]): { cert: string; key: string; ca: string } {
    const caFile = this.caFile();
    const caKeyFile = this.file('ca-key.pem');
    if (!existsSync(caFile) || !existsSync(caKeyFile)) {
      const ca = createCertificateAuthority({ commonName: 'edgekit hub development CA' });
      writePrivate(caKeyFile, ca.key);
      writeFileSync(caFile, ca.cert);
    }
    const ca = { cert: readFileSync(caFile, 'utf8'), key: readFileSync(caKeyFile, 'utf8') };
    const certFile = this.file('server.pem');
    const keyFile = this.file('server-key.pem');
    const covers = (pem: string) => {
      const cert = new X509Certificate(pem);
      return (
        cert.validTo !== '' &&
        Date.parse(cert.validTo) > Date.now() + 86_400_000 &&
        cert.checkIssued(new X509Certificate(ca.cert)) &&
        names.every((n) => (isIP(n) ? cert.checkIP(n) : cert.checkHost(n)) !== undefined)
      );
    };
    if (!existsSync(certFile) || !existsSync(keyFile) || !covers(readFileSync(certFile, 'utf8'))) {
      const server = issueServerCertificate({
        ca,
        dnsNames: names.filter((n) => !isIP(n)),
        ipAddresses: names.filter((n) => isIP(n) !== 0),
      });
      writePrivate(keyFile, server.key);
      writeFileSync(certFile, server.cert);
    }
    return { cert: readFileSync(certFile, 'utf8'), key: readFileSync(keyFile, 'utf8'), ca: ca.cert };
  }
}

interface Settings {
  readonly deviceId: string;
  readonly state: HubState;
  readonly identities: string | undefined;
  readonly host: string;
  readonly mqttPort: number;
  readonly httpsPort: number;
  readonly gatewayHost: string;
  readonly hubHost: string;
}

function settingsOf(values: HubValues, io: CliIo): Settings {
  if (typeof values.device !== 'string') throw new UsageError('missing --device <id>');
  const gatewayHost = values['gateway-host'] ?? 'localhost';
  if (!/^[A-Za-z0-9.:-]{1,253}$/.test(gatewayHost)) {
    throw new UsageError(`--gateway-host must be a host name or address, got ${JSON.stringify(gatewayHost)}`);
  }
  const hubHost = values['hub-host'] ?? 'edgekit.local';
  if (!/^[A-Za-z0-9.-]{1,253}$/.test(hubHost)) {
    throw new UsageError(`--hub-host must be a host name, got ${JSON.stringify(hubHost)}`);
  }
  const cwd = io.env?.PWD ?? process.cwd();
  return {
    deviceId: nameArgument('device id', values.device),
    state: new HubState(path.resolve(cwd, values.state ?? 'edgekit-hub')),
    identities: values.identities === undefined ? undefined : path.resolve(cwd, values.identities),
    host: values.host ?? '127.0.0.1',
    mqttPort: portOption('mqtt-port', values['mqtt-port'], 8883),
    httpsPort: portOption('https-port', values['https-port'], 443),
    gatewayHost,
    hubHost,
  };
}

function passwordFile(identities: string, deviceId: string, moduleId: string): string {
  return path.join(identities, 'credentials', deviceId, moduleId, 'password');
}

/**
 * A module's SAS key: derived from its edgekit credential with --identities, else from keys.json (created there
 * when `create`). Read at each connection, so a module added by "hub env" can connect at once.
 */
function moduleKey(settings: Settings, moduleId: string, create: boolean): string | undefined {
  if (settings.identities === undefined) {
    return create ? settings.state.keyFor(moduleId) : settings.state.readKeys()[moduleId];
  }
  const file = passwordFile(settings.identities, settings.deviceId, moduleId);
  if (!existsSync(file)) {
    if (create)
      throw new UsageError(`${file} does not exist: run "edgekit identities" for a deployment with this module`);
    return undefined;
  }
  return deriveModuleKey(readFileSync(file, 'utf8').trim(), SAS_KEY_LABEL);
}

function env(values: HubValues, positionals: readonly string[], io: CliIo): number {
  const [moduleArgument, ...extra] = positionals;
  if (extra.length > 0) throw new UsageError(`unexpected argument "${extra[0]}"`);
  if (moduleArgument === undefined) throw new UsageError('missing the module id: edgekit hub env <module>');
  const moduleId = nameArgument('module id', moduleArgument);
  const settings = settingsOf(values, io);
  const key = moduleKey(settings, moduleId, true) as string;
  const gateway = settings.mqttPort === 8883 ? settings.gatewayHost : `${settings.gatewayHost}:${settings.mqttPort}`;
  const caFile = values['tls-ca'] === undefined ? settings.state.caFile() : path.resolve(values['tls-ca']);
  if (values['tls-ca'] === undefined) settings.state.developmentTls([settings.gatewayHost, '127.0.0.1']);
  let variables: Record<string, string>;
  if (values.workload === true) {
    const socket = values['workload-socket'];
    if (socket === undefined)
      throw new UsageError('--workload needs --workload-socket <path> (the one the hub serves)');
    variables = {
      IOTEDGE_WORKLOADURI: `unix://${path.resolve(socket)}`,
      IOTEDGE_DEVICEID: settings.deviceId,
      IOTEDGE_MODULEID: moduleId,
      IOTEDGE_MODULEGENERATIONID: '1',
      IOTEDGE_IOTHUBHOSTNAME: settings.hubHost,
      IOTEDGE_GATEWAYHOSTNAME: gateway,
      IOTEDGE_AUTHSCHEME: 'sasToken',
      IOTEDGE_APIVERSION: '2018-06-28',
    };
  } else {
    variables = {
      EdgeHubConnectionString: `HostName=${settings.hubHost};GatewayHostName=${gateway};DeviceId=${settings.deviceId};ModuleId=${moduleId};SharedAccessKey=${key}`,
      EdgeModuleCACertificateFile: caFile,
    };
  }
  if (values.json === true) io.stdout.write(`${JSON.stringify(variables)}\n`);
  else for (const [name, value] of Object.entries(variables)) io.stdout.write(`${name}=${value}\n`);
  return EXIT.ok;
}

async function serve(values: HubValues, io: CliIo): Promise<number> {
  const settings = settingsOf(values, io);
  const { 'tls-cert': certFile, 'tls-key': keyFile, 'tls-ca': caFile } = values;
  if ((certFile === undefined) !== (keyFile === undefined)) {
    throw new UsageError('--tls-cert and --tls-key go together');
  }
  const read = (file: string) => (io.readFile ?? ((f: string) => readFileSync(f, 'utf8')))(file);
  const tls =
    certFile !== undefined && keyFile !== undefined
      ? { cert: read(certFile), key: read(keyFile), ...(caFile ? { ca: read(caFile) } : {}) }
      : settings.state.developmentTls([settings.gatewayHost, '127.0.0.1']);
  const brokerUrl = values.broker ?? io.env?.EDGEKIT_BROKER_URL;
  if (brokerUrl === undefined || brokerUrl === '') {
    throw new UsageError('no broker: pass --broker <url> or set EDGEKIT_BROKER_URL (the hub joins a deployment on it)');
  }
  // Resolve the broker settings once, so a wrong option is a usage error now rather than at the first connection.
  // The module transports, not the operator's: each Azure module's session keeps its broker session (MQTT), so its
  // inputs wait for it while it is away, as an edgekit module's do.
  const shared = await transportOf(values, io, undefined, MODULE_TRANSPORTS);
  const identities = settings.identities;
  const transport =
    identities === undefined
      ? shared
      : (moduleId: string): Promise<Transport> =>
          transportOf(
            {
              ...values,
              username: `${settings.deviceId}/${moduleId}`,
              password: undefined,
              'password-file': passwordFile(identities, settings.deviceId, moduleId),
            },
            io,
            undefined,
            MODULE_TRANSPORTS,
          );
  let hub: Awaited<ReturnType<typeof startHub>>;
  try {
    hub = await startHub({
      deviceId: settings.deviceId,
      hubHostName: settings.hubHost,
      transport,
      keys: (moduleId) => moduleKey(settings, moduleId, false),
      tls,
      host: settings.host,
      mqttPort: settings.mqttPort,
      httpsPort: settings.httpsPort,
      ...(values['workload-socket'] ? { workloadSocket: path.resolve(values['workload-socket']) } : {}),
      onError: (error) => io.stderr.write(`edgekit hub: ${error.code}: ${visible(error.message)}\n`),
    });
  } catch (error) {
    io.stderr.write(`edgekit hub: ${visible(oneLine(error))}\n`);
    return EXIT.failed;
  }
  io.stdout.write(
    `edgekit hub for device ${settings.deviceId}: MQTT/TLS on ${settings.host}:${hub.mqttPort}, HTTPS on ${settings.host}:${hub.httpsPort}` +
      `${hub.workloadSocket ? `, workload API on ${hub.workloadSocket}` : ''}\n`,
  );
  await new Promise<void>((resolve) => {
    if (io.signal?.aborted) return resolve();
    io.signal?.addEventListener('abort', () => resolve(), { once: true });
  });
  await hub.close();
  const s = hub.stats();
  io.stdout.write(
    `edgekit hub stopped: ${s.connections} connections (${s.refused} refused), ${s.outputs} outputs, ${s.inputs} inputs\n`,
  );
  return EXIT.ok;
}

async function hub(args: readonly string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseCommand(args, HUB_OPTIONS);
  if (positionals[0] === 'env') return env(values, positionals.slice(1), io);
  if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0]}"`);
  if (values.workload === true) throw new UsageError('--workload goes with "hub env"');
  return serve(values, io);
}

export const hubCommand = command(
  'hub',
  'serve the IoT Edge hub protocol so Azure SDK modules join the deployment',
  HELP,
  hub,
);
