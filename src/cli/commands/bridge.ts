/**
 * `edgekit bridge <device> --cloud <url>`: writes the Mosquitto bridge that connects a device's broker to the cloud
 * broker (`mosquittoBridge` in edgekit/mqtt), and optionally the cloud-side role the bridge's user needs. It renders
 * files and connects to nothing.
 */
import { EdgeKitError } from '../../errors.js';
import { mosquittoBridge } from '../../transports/mqtt/bridge.js';
import {
  type CliIo,
  command,
  EXIT,
  nameArgument,
  parseCommand,
  UsageError,
  visibleJson,
  writePrivate,
} from '../shared.js';

const HELP = `Usage: edgekit bridge <device> --cloud <url> [options]

Writes the Mosquitto bridge configuration for a device's broker: one outbound MQTT 5
connection to the cloud broker that carries the device's upstream messages, dead
letters, reported properties, module presence and method replies up, and desired
properties, routes, deployments, method requests and operator inputs down. While the
link is down, messages for the cloud wait in the device's broker, each until its
route's time to live ends. The cloud learns whether the device is connected from the
retained link state, which "edgekit status" shows (docs/cloud.md).

Put the output in the device Mosquitto's include_dir (or append it to mosquitto.conf);
its main configuration needs "persistence true" and a max_queued_messages that holds
an outage (Mosquitto's default, 1000, drops the rest).

Options:
  --cloud <url>            the cloud broker, mqtts://host[:port] (required)
  --username <name>        the user the bridge logs in to the cloud as
  --password-file <file>   file holding its password (written into the output: the
                           output file is then created readable by its owner only)
  --ca <file>              CA of the cloud broker's certificate, as a path on the device
                           (default: the system's CA certificates)
  --cert <file>            the device's client certificate, as a path on the device
  --key <file>             its key, as a path on the device
  --client-id <id>         the bridge's client id at the cloud (default edgekit-bridge-<device>)
  --prefix <prefix>        the transports' topic prefix (default edgekit/v1/)
  --keepalive <s>          keepalive of the cloud connection in seconds (default 30)
  --out <file>             write the configuration there instead of printing it
  --cloud-role <file>      also write the dynamic-security role (JSON) the bridge's user
                           needs on the cloud broker: publish what goes up, subscribe
                           to what comes down, for this device only
  --json                   print { config, topics, linkTopic, cloudAcls } as JSON
  -h, --help               show this help

Exit status: 0 written, 1 a file could not be read or written, 2 usage error.

Example:
  edgekit bridge gw-1 --cloud mqtts://cloud.example.com:8883 --username bridge-gw-1 \\
    --password-file bridge.secret --ca /etc/mosquitto/certs/cloud-ca.pem \\
    --out /etc/mosquitto/conf.d/edgekit-bridge.conf --cloud-role bridge-gw-1.role.json
`;

function readSecret(io: CliIo, file: string): string {
  try {
    return io.readFile(file).trim();
  } catch (error) {
    throw new EdgeKitError('invalid-configuration', `cannot read --password-file ${file}: ${(error as Error).message}`);
  }
}

async function bridge(args: readonly string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseCommand(args, {
    cloud: { type: 'string' },
    'client-id': { type: 'string' },
    prefix: { type: 'string' },
    keepalive: { type: 'string' },
    out: { type: 'string' },
    'cloud-role': { type: 'string' },
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
  if (/^amqps?:/i.test(values.cloud)) {
    throw new UsageError(
      "a RabbitMQ cloud is not bridged yet: the bridge is Mosquitto's, and RabbitMQ 3.10 speaks MQTT 3.1.1 only, while edgekit/mqtt needs MQTT 5 (docs/cloud.md)",
    );
  }
  let keepaliveInSeconds: number | undefined;
  if (values.keepalive !== undefined) {
    if (!/^\d+$/.test(values.keepalive)) {
      throw new UsageError(`--keepalive must be a whole number of seconds, got "${values.keepalive}"`);
    }
    keepaliveInSeconds = Number(values.keepalive);
  }
  const password = values['password-file'] === undefined ? undefined : readSecret(io, values['password-file']);
  let rendered: ReturnType<typeof mosquittoBridge>;
  try {
    rendered = mosquittoBridge({
      deviceId: device,
      cloudUrl: values.cloud,
      ...(values.username === undefined ? {} : { username: values.username }),
      ...(password === undefined ? {} : { password }),
      ...(values['client-id'] === undefined ? {} : { clientId: values['client-id'] }),
      ...(values.prefix === undefined ? {} : { topicPrefix: values.prefix }),
      ...(keepaliveInSeconds === undefined ? {} : { keepaliveInSeconds }),
      tls: {
        ...(values.ca === undefined ? {} : { caFile: values.ca }),
        ...(values.cert === undefined ? {} : { certFile: values.cert }),
        ...(values.key === undefined ? {} : { keyFile: values.key }),
      },
    });
  } catch (error) {
    if (error instanceof TypeError || error instanceof RangeError) {
      throw new UsageError(error.message.replace(/^mosquittoBridge\(\): /, ''));
    }
    throw error;
  }
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

export const bridgeCommand = command(
  'bridge',
  "write the Mosquitto bridge that links a device's broker to the cloud",
  HELP,
  bridge,
);
