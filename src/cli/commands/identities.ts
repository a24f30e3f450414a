/**
 * `edgekit identities <manifest.json> --device <id>`: broker credentials for a device's modules and its operator,
 * and the broker configuration that lets each do only what the deployment allows — Mosquitto's dynamic-security
 * file and RabbitMQ definitions, rendered from one access plan — plus, with a CA, client certificates and a
 * revocation list. The identity store it keeps (no passwords) makes re-runs incremental: new modules get
 * credentials, removed ones lose theirs, `--rotate` replaces one.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { EdgeKitError, messageOf } from '../../errors.js';
import { parseIdentity } from '../../names.js';
import { redactCredentials } from '../../redact.js';
import { createRevocationList, issueClientCertificate } from '../../service/certificates.js';
import { readDeployment } from '../../service/deployment.js';
import {
  emptyIdentityStore,
  type IdentityStore,
  type IssuedCredential,
  issueIdentities,
  principalsOf,
  readIdentityStore,
  withCertificate,
} from '../../service/identities.js';
import { declareRabbitAccess, hashRabbitPassword, rabbitmqDefinitions } from '../../transports/amqp/authorization.js';
import {
  hashMosquittoPassword,
  mosquittoDynamicSecurity,
  mosquittoSecurityConfig,
} from '../../transports/mqtt/authorization.js';
import {
  type CliIo,
  command,
  EXIT,
  nameArgument,
  parseCommand,
  readJsonFile,
  transportOf,
  UsageError,
  visible,
  visibleJson,
  writePrivate,
} from '../shared.js';

const HELP = `Usage: edgekit identities <manifest.json> --device <device-id> [options]

Creates a broker credential for every module of the deployment and for an operator,
and the broker configuration under which each module can do only what its
deployment allows (docs/security.md): consume its own inputs, publish only where
its routes lead (under its own identity, so receivers can trust the sender), write
only its own reported properties, presence and dead letters, read its own desired
properties and the device's routes. The operator may do everything.

It keeps an identity store (identities.json, no passwords) in --out: run it again
after a deployment changes — new modules get credentials, removed ones lose them —
or with --rotate to replace a credential (the old one stops working once the
broker has the new configuration).

Options:
  --device <id>              the device (required)
  --out <dir>                the identity store and the files it writes (default ./edgekit-identities)
  --operator <name>          the operator: user $operator/<name> (default operator)
  --rotate <ids>             comma-separated module ids (or $operator/<name>) to give new credentials
  --publish routes|device    inputs a module may publish to: those its routes reach (default),
                             or any input of its device (routes may then change without a re-run)
  --replica <module>/<id>    a replica of a module, with its own user and client id (repeatable)
  --ca <file>                also issue client certificates (CN = user name) signed by this CA …
  --ca-key <file>            … with this key (--ca-passphrase-file <file> if it is encrypted)
  --ca-passphrase-file <f>
  --mqtt-topic-prefix <p>    the mqtt transport's topicPrefix (default edgekit/v1/)
  --amqp-prefix <p>          the amqp transport's prefix (default edgekit)
  --amqp-vhost <v>           the RabbitMQ virtual host (default /)
  --broker amqp://…          also apply the plan's exchanges, queues and bindings to this RabbitMQ
                             (log in as the operator: --username, --password-file; see edgekit --help)
  --json                     print what was done as JSON
  -h, --help                 show this help

Files written in --out (directories 0700, secrets 0600):
  identities.json                             the store: principals and password hashes
  credentials/<device>/<module>/password      a new credential, for EDGEKIT_PASSWORD_FILE (+ cert.pem, key.pem)
  credentials/$operator/<name>/password       the operator's (edgekit … --username '$operator/<name>' --password-file …)
  mosquitto/dynamic-security.json             for Mosquitto's dynamic-security plugin
  mosquitto/edgekit.conf                      the mosquitto.conf lines that load it
  rabbitmq/definitions.json                   for rabbitmqctl import_definitions
  ca/crl.pem                                  certificates revoked by rotation (with --ca)

Exit status: 0 done, 1 the manifest or the store could not be used, 2 usage error.

Example:
  edgekit identities deployment.json --device gw-1 --out /etc/edgekit/identities
  edgekit identities deployment.json --device gw-1 --out /etc/edgekit/identities --rotate filter
`;

/** Where a principal's credential files go: credentials/<device>/<module>[/<replica>] or credentials/$operator/<name>. */
function credentialDir(out: string, username: string): string {
  return path.join(out, 'credentials', ...username.split('/'));
}

function readStore(file: string): IdentityStore | undefined {
  if (!existsSync(file)) return undefined;
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(file, 'utf8'));
  } catch (error) {
    throw new EdgeKitError('invalid-configuration', `cannot read the identity store ${file}: ${messageOf(error)}`);
  }
  return readIdentityStore(json);
}

function listOption(value: string | boolean | undefined): string[] {
  if (typeof value !== 'string') return [];
  return value
    .split(',')
    .map((part) => part.trim())
    .filter((part) => part !== '');
}

async function identities(args: readonly string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseCommand(args, {
    device: { type: 'string' },
    out: { type: 'string' },
    operator: { type: 'string' },
    rotate: { type: 'string' },
    publish: { type: 'string' },
    replica: { type: 'string', multiple: true },
    ca: { type: 'string' },
    'ca-key': { type: 'string' },
    'ca-passphrase-file': { type: 'string' },
    'mqtt-topic-prefix': { type: 'string' },
    'amqp-prefix': { type: 'string' },
    'amqp-vhost': { type: 'string' },
  });
  const [file, ...extra] = positionals;
  if (file === undefined) throw new UsageError('missing the manifest file');
  if (extra.length > 0) throw new UsageError(`unexpected argument "${extra[0]}"`);
  const deviceId = values.device;
  if (typeof deviceId !== 'string') throw new UsageError('missing --device <device-id>');
  nameArgument('device id', deviceId);
  const publish = values.publish ?? 'routes';
  if (publish !== 'routes' && publish !== 'device') throw new UsageError('--publish must be routes or device');
  const operator = typeof values.operator === 'string' ? nameArgument('operator name', values.operator) : 'operator';
  const replicas: Record<string, string[]> = {};
  for (const entry of (values.replica as unknown as string[] | undefined) ?? []) {
    const [moduleId, replica, ...rest] = entry.split('/');
    if (moduleId === undefined || replica === undefined || rest.length > 0) {
      throw new UsageError(`--replica must be <module>/<replica-id>, got ${JSON.stringify(entry)}`);
    }
    const id = nameArgument('module id', moduleId);
    replicas[id] = [...(replicas[id] ?? []), nameArgument('replica id', replica)];
  }
  const caFile = values.ca;
  const caKeyFile = values['ca-key'];
  if ((typeof caFile === 'string') !== (typeof caKeyFile === 'string')) {
    throw new UsageError('--ca and --ca-key go together');
  }
  const out = path.resolve(typeof values.out === 'string' ? values.out : 'edgekit-identities');

  const manifest = readJsonFile(file, io);
  const deployment = readDeployment(manifest);
  const storeFile = path.join(out, 'identities.json');
  const previousStore = readStore(storeFile) ?? emptyIdentityStore();
  const result = issueIdentities(previousStore, deployment, deviceId, {
    hashers: { mosquitto: hashMosquittoPassword, rabbitmq: hashRabbitPassword },
    operator,
    publish,
    replicas,
    rotate: listOption(values.rotate),
  });
  let store = result.store;

  // Client certificates for the principals that got a new credential; replaced ones go on the revocation list.
  const ca =
    typeof caFile === 'string' && typeof caKeyFile === 'string'
      ? {
          cert: io.readFile(caFile),
          key: io.readFile(caKeyFile),
          ...(typeof values['ca-passphrase-file'] === 'string'
            ? { passphrase: io.readFile(values['ca-passphrase-file']).replace(/\r?\n$/, '') }
            : {}),
        }
      : undefined;
  const certificates = new Map<string, { cert: string; key: string }>();
  if (ca !== undefined) {
    for (const credential of result.issued) {
      const issued = issueClientCertificate({ ca, commonName: credential.username });
      certificates.set(credential.username, issued);
      store = withCertificate(store, credential.username, {
        serialNumber: issued.serialNumber,
        notAfter: issued.notAfter.getTime(),
      });
    }
  }

  // Secrets first, the store last: a run that fails part-way leaves the old store, and running again starts over.
  for (const credential of result.issued) {
    const dir = credentialDir(out, credential.username);
    writePrivate(path.join(dir, 'password'), `${credential.password}\n`);
    const certificate = certificates.get(credential.username);
    if (certificate !== undefined) {
      writePrivate(path.join(dir, 'cert.pem'), certificate.cert);
      writePrivate(path.join(dir, 'key.pem'), certificate.key);
    }
  }
  const hashesOf = (kind: string) =>
    new Map(Object.entries(store.credentials).map(([username, credential]) => [username, credential.hashes[kind]]));
  const topicPrefix = typeof values['mqtt-topic-prefix'] === 'string' ? values['mqtt-topic-prefix'] : undefined;
  const dynamicSecurity = mosquittoDynamicSecurity(
    result.principals,
    hashesOf('mosquitto') as Parameters<typeof mosquittoDynamicSecurity>[1],
    topicPrefix === undefined ? {} : { topicPrefix },
  );
  const dynamicSecurityFile = path.join(out, 'mosquitto', 'dynamic-security.json');
  writePrivate(dynamicSecurityFile, `${JSON.stringify(dynamicSecurity, null, 2)}\n`);
  writePrivate(
    path.join(out, 'mosquitto', 'edgekit.conf'),
    `${mosquittoSecurityConfig({ dynamicSecurityFile }).join('\n')}\n`,
  );
  // RabbitMQ needs a binding per destination: `--publish device` cannot be said there.
  const rabbitmq = publish === 'routes';
  if (rabbitmq) {
    const definitions = rabbitmqDefinitions(result.principals, hashesOf('rabbitmq') as Map<string, string>, {
      ...(typeof values['amqp-prefix'] === 'string' ? { prefix: values['amqp-prefix'] } : {}),
      ...(typeof values['amqp-vhost'] === 'string' ? { vhost: values['amqp-vhost'] } : {}),
    });
    writePrivate(path.join(out, 'rabbitmq', 'definitions.json'), `${JSON.stringify(definitions, null, 2)}\n`);
  }
  if (ca !== undefined) {
    const crl = createRevocationList({
      ca,
      revoked: store.revokedCertificates.map((r) => ({
        serialNumber: r.serialNumber,
        revokedAt: new Date(r.revokedAt),
      })),
    });
    writePrivate(path.join(out, 'ca', 'crl.pem'), crl);
  }
  writePrivate(storeFile, `${JSON.stringify(store, null, 2)}\n`);

  // On RabbitMQ the operator can apply the plan's exchanges, queues and bindings at once (and remove what the
  // previous plan allowed): then route changes take effect for senders without an import.
  let applied: string | undefined;
  if (typeof values.broker === 'string' && /^amqps?:/i.test(values.broker)) {
    if (!rabbitmq)
      throw new UsageError('--publish device cannot be applied to RabbitMQ (it needs a binding per input)');
    const transport = await transportOf(values, io);
    const connection = await transport.connect({
      clientId: `edgekit-identities-${process.pid}`,
      identity:
        values.username !== undefined && parseIdentity(values.username)?.kind === 'operator'
          ? values.username
          : `$operator/${operator}`,
    });
    try {
      const done = await declareRabbitAccess(connection, result.principals, { previous: principalsOf(previousStore) });
      applied = `applied to ${visible(redactCredentials(values.broker, [values.password]))}: ${done.bindings} bindings, ${done.unbound} removed`;
    } finally {
      await connection.close();
    }
  }

  const summary = {
    deviceId,
    out,
    issued: result.issued.map(({ password: _, ...rest }) => ({
      ...rest,
      passwordFile: path.join(credentialDir(out, rest.username), 'password'),
    })),
    revoked: result.revoked,
    principals: result.principals.map((p) => p.username),
    ...(applied === undefined ? {} : { applied }),
  };
  if (values.json === true) {
    io.stdout.write(`${visibleJson(summary, 2)}\n`);
    return EXIT.ok;
  }
  const lines = [
    `identities for ${deviceId} in ${visible(out)}:`,
    ...describeIssued(result.issued, out),
    ...result.revoked.map(
      (username) => `  revoked ${visible(username)} (its old credential stops working once the broker reloads)`,
    ),
    `  ${result.principals.length} principals in the broker configuration:`,
    `    mosquitto/dynamic-security.json + mosquitto/edgekit.conf (restart Mosquitto to load them)`,
    rabbitmq
      ? `    rabbitmq/definitions.json (rabbitmqctl import_definitions ${path.join(out, 'rabbitmq', 'definitions.json')})`
      : '    no RabbitMQ definitions: --publish device cannot be said there',
    ...(applied === undefined ? [] : [`  ${applied}`]),
  ];
  if (result.issued.length === 0 && result.revoked.length === 0)
    lines.splice(1, 0, '  nothing new: every principal has a credential');
  io.stdout.write(`${lines.join('\n')}\n`);
  return EXIT.ok;
}

function describeIssued(issued: readonly IssuedCredential[], out: string): string[] {
  return issued.map((c) => {
    const who = parseIdentity(c.identity)?.kind === 'operator' ? 'operator' : 'module';
    return `  new credential for ${who} ${visible(c.username)}: ${visible(path.relative(out, path.join(credentialDir(out, c.username), 'password')))}`;
  });
}

export const identitiesCommand = command(
  'identities',
  'broker credentials and least-privilege permissions for a deployment',
  HELP,
  identities,
);
