/**
 * `edgekit bridge <device> --cloud <url>`: writes the bridge that connects a device's broker to the cloud broker,
 * by the cloud's scheme — for an MQTT cloud the Mosquitto bridge (`mosquittoBridge` in edgekit/mqtt) and optionally
 * the cloud-side role its user needs; for a RabbitMQ cloud the device's shovels and both brokers' definitions
 * (`rabbitmqBridge` in edgekit/amqp). It renders files and connects to nothing.
 */
import { EdgeKitError } from '../../errors.js';
import { readDeployment } from '../../service/deployment.js';
import { rabbitmqBridge } from '../../transports/amqp/bridge.js';
import { mosquittoBridge } from '../../transports/mqtt/bridge.js';
import {
  type CliIo,
  command,
  EXIT,
  nameArgument,
  parseCommand,
  readJsonFile,
  UsageError,
  visibleJson,
  writePrivate,
} from '../shared.js';

const HELP = `Usage: edgekit bridge <device> --cloud <url> [options]

Writes the bridge that links a device's broker to the cloud broker, by the cloud's
scheme. Both carry the device's upstream messages, dead letters, reported properties,
module presence and method replies up, and desired properties, routes, deployments and
method requests down. While the link is down, messages for the cloud wait in the
device's broker, each until its route's time to live ends.

An MQTT cloud (mqtts://, mqtt://): the Mosquitto bridge configuration for the device's
Mosquitto, one outbound MQTT 5 connection; it also carries operator inputs down. The
cloud learns whether the device is connected from the retained link state, which
"edgekit status" shows (docs/cloud.md). Put the output in the device Mosquitto's
include_dir (or append it to mosquitto.conf); its main configuration needs
"persistence true" and a max_queued_messages that holds an outage (Mosquitto's
default, 1000, drops the rest).

A RabbitMQ cloud (amqps://, amqp://): the definitions of the device's RabbitMQ (its
shovels, with the cloud password in their URIs, and what they read and feed), to load
with "rabbitmqctl import_definitions" once the rabbitmq_shovel plugin is enabled, and
with --cloud-definitions those of the cloud's RabbitMQ. It needs the device's modules
(--modules or --deployment): render and import it again when they change. RabbitMQ
cannot write the link state: "edgekit status" shows no link for the device, and a
method call while the link is down answers 404 at once (docs/transports/amqp.md).

Options:
  --cloud <url>            the cloud broker, mqtts://host[:port] or amqps://host[:port][/vhost]
                           (required)
  --username <name>        the user the bridge logs in to the cloud as
  --password-file <file>   file holding its password (written into the output: the
                           output file is then created readable by its owner only)
  --ca <file>              CA of the cloud broker's certificate, as a path on the device
                           (default: the system's CA certificates)
  --cert <file>            the device's client certificate, as a path on the device
  --key <file>             its key, as a path on the device
  --keepalive <s>          keepalive (MQTT) or heartbeat (AMQP) of the cloud connection
                           in seconds (default 30)
  --out <file>             write the configuration (MQTT) or the device's definitions
                           (AMQP) there instead of printing it
  --json                   print everything rendered as JSON
  -h, --help               show this help

MQTT cloud only:
  --client-id <id>         the bridge's client id at the cloud (default edgekit-bridge-<device>)
  --prefix <prefix>        the transports' topic prefix (default edgekit/v1/)
  --cloud-role <file>      also write the dynamic-security role (JSON) the bridge's user
                           needs on the cloud broker: publish what goes up, subscribe
                           to what comes down, for this device only

RabbitMQ cloud only:
  --modules <a,b,...>      the device's modules (or:)
  --deployment <file>      read them from the device's deployment manifest
  --prefix <prefix>        the transports' prefix (default edgekit)
  --priorities             the transports run with priorities: true
  --vhost <vhost>          the device broker's virtual host (default /)
  --cloud-definitions <file>
                           also write the definitions of the cloud's RabbitMQ: the
                           queues, exchanges and bindings the shovels read and feed

Exit status: 0 written, 1 a file could not be read or written, 2 usage error.

Examples:
  edgekit bridge gw-1 --cloud mqtts://cloud.example.com:8883 --username bridge-gw-1 \\
    --password-file bridge.secret --ca /etc/mosquitto/certs/cloud-ca.pem \\
    --out /etc/mosquitto/conf.d/edgekit-bridge.conf --cloud-role bridge-gw-1.role.json
  edgekit bridge gw-1 --cloud amqps://cloud.example.com --deployment deployment.json \\
    --username bridge-gw-1 --password-file bridge.secret --ca /etc/rabbitmq/cloud-ca.pem \\
    --out bridge-device.json --cloud-definitions bridge-cloud.json
`;

function readSecret(io: CliIo, file: string): string {
  try {
    return io.readFile(file).trim();
  } catch (error) {
    throw new EdgeKitError('invalid-configuration', `cannot read --password-file ${file}: ${(error as Error).message}`);
  }
}

/** The TypeError/RangeError of a renderer, as a usage error without the renderer's name. */
function usage<T>(render: () => T): T {
  try {
    return render();
  } catch (error) {
    if (error instanceof TypeError || error instanceof RangeError) {
      throw new UsageError(error.message.replace(/^(?:mosquittoBridge|rabbitmqBridge)\(\): /, ''));
    }
    throw error;
  }
}

const MQTT_ONLY = ['client-id', 'cloud-role'] as const;
const AMQP_ONLY = ['modules', 'deployment', 'priorities', 'vhost', 'cloud-definitions'] as const;

async function bridge(args: readonly string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseCommand(args, {
    cloud: { type: 'string' },
    'client-id': { type: 'string' },
    prefix: { type: 'string' },
    keepalive: { type: 'string' },
    out: { type: 'string' },
    'cloud-role': { type: 'string' },
    modules: { type: 'string' },
    deployment: { type: 'string' },
    priorities: { type: 'boolean' },
    vhost: { type: 'string' },
    'cloud-definitions': { type: 'string' },
  });
  const [device, ...extra] = positionals;
  if (device === undefined) throw new UsageError('missing <device>');
  if (extra.length > 0) throw new UsageError(`unexpected argument "${extra[0]}"`);
  nameArgument('device id', device);
  if (values.cloud === undefined)
    throw new UsageError('missing --cloud <url>, e.g. --cloud mqtts://cloud.example.com:8883');
  if (values.broker !== undefined) {
    throw new UsageError(
      "bridge connects to no broker: name the cloud with --cloud (the output goes to the device's broker)",
    );
  }
  if (values.password !== undefined) {
    throw new UsageError('give the bridge password with --password-file (it is written into the configuration)');
  }
  let keepaliveInSeconds: number | undefined;
  if (values.keepalive !== undefined) {
    if (!/^\d+$/.test(values.keepalive)) {
      throw new UsageError(`--keepalive must be a whole number of seconds, got "${values.keepalive}"`);
    }
    keepaliveInSeconds = Number(values.keepalive);
  }
  const rabbit = /^amqps?:/i.test(values.cloud);
  for (const option of rabbit ? MQTT_ONLY : AMQP_ONLY) {
    if (values[option] !== undefined) {
      throw new UsageError(`--${option} is only for ${rabbit ? 'an MQTT' : 'a RabbitMQ'} cloud`);
    }
  }
  const password = values['password-file'] === undefined ? undefined : readSecret(io, values['password-file']);
  const credentials = {
    ...(values.username === undefined ? {} : { username: values.username }),
    ...(password === undefined ? {} : { password }),
  };
  const tls = {
    ...(values.ca === undefined ? {} : { caFile: values.ca }),
    ...(values.cert === undefined ? {} : { certFile: values.cert }),
    ...(values.key === undefined ? {} : { keyFile: values.key }),
  };
  if (rabbit) {
    return rabbitBridge(io, device, values, { credentials, tls, keepaliveInSeconds });
  }

  const rendered = usage(() =>
    mosquittoBridge({
      deviceId: device,
      cloudUrl: values.cloud as string,
      ...credentials,
      ...(values['client-id'] === undefined ? {} : { clientId: values['client-id'] }),
      ...(values.prefix === undefined ? {} : { topicPrefix: values.prefix }),
      ...(keepaliveInSeconds === undefined ? {} : { keepaliveInSeconds }),
      tls,
    }),
  );
  if (values['cloud-role'] !== undefined) {
    const role = {
      rolename: `edgekit-bridge-${device}`,
      textname: `bridge of device ${device}`,
      acls: rendered.cloudAcls,
    };
    writePrivate(values['cloud-role'], `${JSON.stringify(role, null, 2)}\n`);
  }
  if (values.out !== undefined) {
    writePrivate(values.out, rendered.config);
    io.stderr.write(
      `edgekit bridge: wrote ${values.out}${values['cloud-role'] === undefined ? '' : ` and ${values['cloud-role']}`}\n`,
    );
  }
  if (values.json === true) io.stdout.write(`${visibleJson(rendered, 2)}\n`);
  else if (values.out === undefined) io.stdout.write(rendered.config);
  return EXIT.ok;
}

/** The RabbitMQ side of {@link bridge}: the modules from --modules or --deployment, then `rabbitmqBridge`. */
function rabbitBridge(
  io: CliIo,
  device: string,
  values: {
    cloud?: string;
    modules?: string;
    deployment?: string;
    prefix?: string;
    priorities?: boolean;
    vhost?: string;
    out?: string;
    'cloud-definitions'?: string;
    json?: boolean;
  },
  common: {
    credentials: { username?: string; password?: string };
    tls: { caFile?: string; certFile?: string; keyFile?: string };
    keepaliveInSeconds: number | undefined;
  },
): number {
  if ((values.modules === undefined) === (values.deployment === undefined)) {
    throw new UsageError(
      "a RabbitMQ bridge needs the device's modules: give --modules a,b or --deployment <manifest.json> (one of them)",
    );
  }
  let modules: string[];
  if (values.deployment !== undefined) {
    modules = [...readDeployment(readJsonFile(values.deployment, io)).modules];
    if (modules.length === 0) {
      throw new EdgeKitError('invalid-configuration', `${values.deployment} deploys no modules ($edgeAgent modules)`);
    }
  } else {
    modules = (values.modules ?? '').split(',').map((m) => m.trim());
    for (const m of modules) nameArgument('module id', m);
  }
  const rendered = usage(() =>
    rabbitmqBridge({
      deviceId: device,
      modules,
      cloudUrl: values.cloud as string,
      ...common.credentials,
      ...(Object.keys(common.tls).length === 0 ? {} : { tls: common.tls }),
      ...(values.prefix === undefined ? {} : { prefix: values.prefix }),
      ...(values.priorities === true ? { priorities: true } : {}),
      ...(values.vhost === undefined ? {} : { vhost: values.vhost }),
      ...(common.keepaliveInSeconds === undefined ? {} : { heartbeatInSeconds: common.keepaliveInSeconds }),
    }),
  );
  const deviceJson = `${JSON.stringify(rendered.device, null, 2)}\n`;
  const cloudFile = values['cloud-definitions'];
  if (cloudFile !== undefined) writePrivate(cloudFile, `${JSON.stringify(rendered.cloud, null, 2)}\n`);
  if (values.out !== undefined) {
    writePrivate(values.out, deviceJson);
    io.stderr.write(`edgekit bridge: wrote ${values.out}${cloudFile === undefined ? '' : ` and ${cloudFile}`}\n`);
  }
  if (values.json === true) io.stdout.write(`${visibleJson(rendered, 2)}\n`);
  else if (values.out === undefined) io.stdout.write(deviceJson);
  return EXIT.ok;
}

export const bridgeCommand = command(
  'bridge',
  "write the Mosquitto bridge or RabbitMQ shovels that link a device's broker to the cloud",
  HELP,
  bridge,
);
