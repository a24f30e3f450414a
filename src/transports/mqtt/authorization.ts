/**
 * Least privilege on Mosquitto: renders an access plan (`planAccess` in the service side, one principal per module,
 * replica and operator) into the configuration of Mosquitto's dynamic-security plugin, so that the broker — not the
 * modules' code — decides who may consume, publish, serve, call, read and write what. The topics are this
 * transport's (docs/transports/mqtt.md): a message or request is published to `<topic>/<identity>`, and each user
 * may publish only under its own identity, which is how the broker proves the source a receiver reads.
 * Written for Mosquitto 2.0 (measured on 2.0.11): its plugin has no `%c`/`%u` substitution, so per-client topics are
 * rendered per client.
 */

import { pbkdf2Sync, randomBytes } from 'node:crypto';
import type { Principal } from '../../access.js';
import { checkIdentity, parseIdentity } from '../../names.js';
import { checkTopicPrefix } from './options.js';
import { CLIENT_LEVEL, checkClientId, checkPattern, DEFAULT_TOPIC_PREFIX } from './topics.js';

/** What {@link mosquittoDynamicSecurity} renders: a principal of an access plan (`planAccess`, `issueIdentities`). */
export type MosquittoPrincipal = Principal;

/**
 * A password as the dynamic-security plugin stores it: PBKDF2-HMAC-SHA512 of the UTF-8 password with a 12-byte
 * salt, 64 bytes, base64 (what `mosquitto_ctrl` writes; another salt length is refused by Mosquitto 2.0).
 */
export interface MosquittoPasswordHash {
  readonly password: string;
  readonly salt: string;
  readonly iterations: number;
}

/** Options for {@link hashMosquittoPassword}. */
export interface HashMosquittoPasswordOptions {
  /**
   * PBKDF2 iterations. Mosquitto computes the hash on its one thread at every login, so a reconnect storm of n
   * modules costs n hashes (100 000 iterations: 56 ms each on Mosquitto 2.0.11). Generated credentials are random
   * secrets, which a slow hash protects little; raise it for passwords people choose. Default 1 000.
   */
  readonly iterations?: number;
}

/** One access rule of a dynamic-security role. */
export interface MosquittoAcl {
  readonly acltype:
    | 'publishClientSend'
    | 'publishClientReceive'
    | 'subscribeLiteral'
    | 'subscribePattern'
    | 'unsubscribeLiteral'
    | 'unsubscribePattern';
  readonly topic: string;
  readonly priority: number;
  readonly allow: boolean;
}

export interface MosquittoRole {
  readonly rolename: string;
  readonly textname?: string;
  readonly acls: readonly MosquittoAcl[];
}

export interface MosquittoClient extends Partial<MosquittoPasswordHash> {
  readonly username: string;
  readonly textname?: string;
  /** The only client id this user may connect with (Mosquitto refuses any other with "not authorized"). */
  readonly clientid?: string;
  readonly roles: readonly { readonly rolename: string; readonly priority?: number }[];
}

/** The dynamic-security plugin's configuration file, as it loads it at start (`plugin_opt_config_file`). */
export interface MosquittoDynamicSecurityConfig {
  readonly defaultACLAccess: {
    readonly publishClientSend: boolean;
    readonly publishClientReceive: boolean;
    readonly subscribe: boolean;
    readonly unsubscribe: boolean;
  };
  readonly clients: readonly MosquittoClient[];
  readonly groups: readonly never[];
  readonly roles: readonly MosquittoRole[];
}

/** Options for {@link mosquittoDynamicSecurity}. */
export interface MosquittoDynamicSecurityOptions {
  /** The transports' `topicPrefix`; default `edgekit/v1/`. */
  readonly topicPrefix?: string;
}

const DEFAULT_ITERATIONS = 1_000;
const SALT_BYTES = 12;
const HASH_BYTES = 64;
/**
 * Reply topics have a client id of one to three levels: a service's (`edgekit-service-<uuid>`), a module's
 * (`<device>/<module>`) or a replica's (`<device>/<module>/<replica>`).
 */
const REPLY_CLIENT_LEVELS = 3;

/**
 * Hashes a password for {@link mosquittoDynamicSecurity}: PBKDF2-HMAC-SHA512, a random 12-byte salt, 64 bytes.
 *
 * @example
 * ```ts
 * const passwords = new Map([['gw-1/filter', hashMosquittoPassword(process.env.FILTER_PASSWORD!)]]);
 * ```
 */
export function hashMosquittoPassword(
  password: string,
  options: HashMosquittoPasswordOptions = {},
): MosquittoPasswordHash {
  if (typeof password !== 'string') throw new TypeError(`password must be a string, got ${typeof password}`);
  if (password.length === 0) throw new RangeError('password must not be empty');
  const iterations = options.iterations ?? DEFAULT_ITERATIONS;
  if (!Number.isInteger(iterations) || iterations < 1 || iterations > 0x7fff_ffff) {
    throw new RangeError(`iterations must be an integer from 1 to 2147483647, got ${String(iterations)}`);
  }
  const salt = randomBytes(SALT_BYTES);
  const hash = pbkdf2Sync(Buffer.from(password, 'utf8'), salt, iterations, HASH_BYTES, 'sha512');
  return { password: hash.toString('base64'), salt: salt.toString('base64'), iterations };
}

const allow = (acltype: MosquittoAcl['acltype'], topic: string): MosquittoAcl => ({
  acltype,
  topic,
  priority: 0,
  allow: true,
});

/** The topic filter of an address pattern: the prefix, and `*` as `+`. */
function filterOf(prefix: string, pattern: unknown): string {
  return (
    prefix +
    checkPattern(pattern)
      .map((segment) => (segment === '*' ? '+' : segment))
      .join('/')
  );
}

function checkList(principal: string, name: string, value: unknown): readonly unknown[] {
  if (!Array.isArray(value)) throw new TypeError(`principal ${principal}: ${name} must be an array`);
  return value;
}

/**
 * What a consumer or server of the addresses matching `filter` needs: to subscribe `<filter>/#` (every publisher's
 * messages, and the old layout's topic, which `#` also matches) plainly or in any share group, to remove those
 * subscriptions, and to receive what they match.
 */
function consumerAcls(filter: string): MosquittoAcl[] {
  const all = `${filter}/#`;
  const shared = `$share/+/${all}`;
  return [
    allow('subscribePattern', all),
    allow('subscribePattern', shared),
    allow('unsubscribePattern', all),
    allow('unsubscribePattern', shared),
    allow('publishClientReceive', all),
  ];
}

/** The rights of one principal (shared by a module's replicas), as dynamic-security ACLs. */
function roleAcls(principal: MosquittoPrincipal, prefix: string): MosquittoAcl[] {
  const who = principal.username;
  if (principal.all) {
    // Everything edgekit puts on the broker, and nothing else ($SYS included).
    const everything = `${prefix}#`;
    return [
      allow('publishClientSend', everything),
      allow('publishClientReceive', everything),
      allow('subscribePattern', everything),
      allow('subscribePattern', `$share/+/${everything}`),
      allow('unsubscribePattern', everything),
      allow('unsubscribePattern', `$share/+/${everything}`),
    ];
  }
  const acls: MosquittoAcl[] = [];
  for (const address of checkList(who, 'consume', principal.consume))
    acls.push(...consumerAcls(filterOf(prefix, address)));
  for (const address of checkList(who, 'serve', principal.serve)) acls.push(...consumerAcls(filterOf(prefix, address)));
  // Messages and requests only under its own identity: the broker's proof of the publisher.
  for (const address of checkList(who, 'publish', principal.publish)) {
    acls.push(allow('publishClientSend', `${filterOf(prefix, address)}/${principal.identity}`));
  }
  for (const address of checkList(who, 'request', principal.request)) {
    acls.push(allow('publishClientSend', `${filterOf(prefix, address)}/${principal.identity}`));
  }
  for (const key of checkList(who, 'readRetained', principal.readRetained)) {
    const filter = filterOf(prefix, key);
    acls.push(
      allow('subscribePattern', filter),
      allow('unsubscribePattern', filter),
      allow('publishClientReceive', filter),
    );
  }
  for (const key of checkList(who, 'writeRetained', principal.writeRetained)) {
    acls.push(allow('publishClientSend', filterOf(prefix, key)));
  }
  if (principal.serve.length > 0) {
    // Replies go to the caller's reply topic, whichever client it is; a server of this transport replies nowhere else.
    for (let levels = 1; levels <= REPLY_CLIENT_LEVELS; levels++) {
      acls.push(allow('publishClientSend', `${prefix}${CLIENT_LEVEL}/${Array(levels).fill('+').join('/')}/reply`));
    }
  }
  return acls;
}

/** A client's own topics: its replies and the sentinels of its retained reads (`<prefix>@client/<clientId>/…`). */
function clientAcls(clientId: string, prefix: string): MosquittoAcl[] {
  const own = `${prefix}${CLIENT_LEVEL}/${clientId}`;
  return [
    allow('subscribePattern', `${own}/#`),
    allow('unsubscribePattern', `${own}/#`),
    allow('publishClientReceive', `${own}/#`),
    allow('publishClientSend', `${own}/sync`),
  ];
}

/**
 * Renders principals (from `planAccess`) as the configuration of Mosquitto's dynamic-security plugin: everything
 * denied by default; one role per identity with its rights (a module's replicas share it); for each module user one
 * more role with its own per-client topics, and its client id bound to its user name (Mosquitto refuses another
 * client id, so no module can take over another's session); operators get everything under the prefix and no
 * client id binding. Write the result as JSON to the file `mosquittoSecurityConfig` names, and restart Mosquitto:
 * the plugin reads the file at start (a SIGHUP does not reload it).
 *
 * The topics: consuming and serving an address is subscribing `<topic>/#` (plainly or shared) and receiving it;
 * publishing a message or request is `<topic>/<identity>` with the user's own identity only; a retained key is its
 * topic; replies may go to any `<prefix>@client/+[/+[/+]]/reply`; a client's own topics are
 * `<prefix>@client/<clientId>/#`. A principal without a password (not in `passwords`) can log in only with a
 * certificate (`use_identity_as_username`).
 *
 * @example
 * ```ts
 * import { planAccess, readDeployment } from 'edgekit';
 * import { hashMosquittoPassword, mosquittoDynamicSecurity } from 'edgekit/mqtt';
 *
 * const plan = planAccess(readDeployment(manifest), 'gw-1');
 * const passwords = new Map(plan.principals.map((p) => [p.username, hashMosquittoPassword(secretOf(p.username))]));
 * writeFileSync('/var/lib/mosquitto/dynamic-security.json', JSON.stringify(mosquittoDynamicSecurity(plan.principals, passwords)));
 * ```
 */
export function mosquittoDynamicSecurity(
  principals: readonly MosquittoPrincipal[],
  passwords: ReadonlyMap<string, MosquittoPasswordHash>,
  options: MosquittoDynamicSecurityOptions = {},
): MosquittoDynamicSecurityConfig {
  if (!Array.isArray(principals)) throw new TypeError('mosquittoDynamicSecurity: principals must be an array');
  if (!(passwords instanceof Map)) throw new TypeError('mosquittoDynamicSecurity: passwords must be a Map');
  if (typeof options !== 'object' || options === null) {
    throw new TypeError('mosquittoDynamicSecurity: options must be an object');
  }
  const prefix = options.topicPrefix === undefined ? DEFAULT_TOPIC_PREFIX : checkTopicPrefix(options.topicPrefix);
  const roles = new Map<string, MosquittoRole>();
  const clients: MosquittoClient[] = [];
  const usernames = new Set<string>();
  for (const principal of principals as readonly unknown[]) {
    if (typeof principal !== 'object' || principal === null) {
      throw new TypeError('mosquittoDynamicSecurity: each principal must be an object');
    }
    const p = principal as MosquittoPrincipal;
    if (typeof p.username !== 'string' || p.username.length === 0) {
      throw new TypeError('mosquittoDynamicSecurity: each principal needs a non-empty username');
    }
    if (usernames.has(p.username)) {
      throw new RangeError(`mosquittoDynamicSecurity: user ${JSON.stringify(p.username)} is given twice`);
    }
    usernames.add(p.username);
    const identity = checkIdentity(p.identity);
    if (p.kind !== 'module' && p.kind !== 'operator') {
      throw new RangeError(`principal ${p.username}: kind must be 'module' or 'operator'`);
    }
    if (p.kind === 'module' && parseIdentity(identity)?.kind !== 'module') {
      throw new RangeError(`principal ${p.username}: a module's identity must be <device>/<module>, got ${identity}`);
    }
    const clientId =
      p.clientId === undefined ? undefined : checkClientId(p.clientId, `principal ${p.username}: clientId`);
    if (!p.all && clientId === undefined) {
      // Its per-client topics need a client id: the plugin cannot substitute one (%c) in Mosquitto 2.0.
      throw new RangeError(`principal ${p.username}: a principal without all rights needs a clientId`);
    }
    const rolename = `edgekit:${p.kind}:${identity}`;
    const rights: MosquittoRole = { rolename, textname: `edgekit ${p.kind} ${identity}`, acls: roleAcls(p, prefix) };
    const same = roles.get(rolename);
    if (same !== undefined && JSON.stringify(same.acls) !== JSON.stringify(rights.acls)) {
      throw new RangeError(`mosquittoDynamicSecurity: the users of identity ${identity} differ in their rights`);
    }
    roles.set(rolename, rights);
    const clientRoles = [{ rolename }];
    if (!p.all && clientId !== undefined) {
      const own = `edgekit:client:${clientId}`;
      roles.set(own, { rolename: own, textname: `edgekit client ${clientId}`, acls: clientAcls(clientId, prefix) });
      clientRoles.push({ rolename: own });
    }
    const hash = passwords.get(p.username);
    clients.push({
      username: p.username,
      textname: `edgekit ${p.kind} ${identity}`,
      ...(clientId === undefined || p.all ? {} : { clientid: clientId }),
      ...(hash === undefined ? {} : checkHash(p.username, hash)),
      roles: clientRoles,
    });
  }
  for (const username of passwords.keys()) {
    if (!usernames.has(username)) {
      throw new RangeError(
        `mosquittoDynamicSecurity: a password is given for ${JSON.stringify(username)}, who is no principal`,
      );
    }
  }
  return {
    defaultACLAccess: { publishClientSend: false, publishClientReceive: false, subscribe: false, unsubscribe: false },
    clients,
    groups: [],
    roles: [...roles.values()],
  };
}

function checkHash(username: string, hash: MosquittoPasswordHash): MosquittoPasswordHash {
  const { password, salt, iterations } = hash;
  if (
    typeof password !== 'string' ||
    Buffer.from(password, 'base64').length !== HASH_BYTES ||
    typeof salt !== 'string' ||
    Buffer.from(salt, 'base64').length !== SALT_BYTES ||
    !Number.isInteger(iterations) ||
    iterations < 1
  ) {
    throw new RangeError(
      `the password hash of ${JSON.stringify(username)} is not one of hashMosquittoPassword (64-byte hash, 12-byte salt)`,
    );
  }
  return { password, salt, iterations };
}

/** A TLS listener on which clients log in with a certificate whose common name is their user name. */
export interface MosquittoCertificateListener {
  readonly port: number;
  /** Address to listen on; default all. */
  readonly host?: string;
  readonly certFile: string;
  readonly keyFile: string;
  /** The CA that signs the clients' certificates. */
  readonly caFile: string;
}

/** Options for {@link mosquittoSecurityConfig}. */
export interface MosquittoSecurityConfigOptions {
  /** Where the JSON of {@link mosquittoDynamicSecurity} is (readable, and writable: the plugin saves changes there). */
  readonly dynamicSecurityFile: string;
  /** The plugin; default Debian's and Ubuntu's path for this machine's architecture. */
  readonly pluginPath?: string;
  /** Also a listener for client certificates instead of passwords. */
  readonly certificates?: MosquittoCertificateListener;
}

const DEBIAN_MULTIARCH: Readonly<Record<string, string>> = {
  x64: 'x86_64-linux-gnu',
  arm64: 'aarch64-linux-gnu',
  arm: 'arm-linux-gnueabihf',
  ia32: 'i386-linux-gnu',
};

function checkLine(what: string, value: unknown): string {
  if (typeof value !== 'string') throw new TypeError(`mosquittoSecurityConfig: ${what} must be a string`);
  if (value.length === 0 || /[\r\n]/.test(value)) {
    throw new RangeError(`mosquittoSecurityConfig: ${what} must be non-empty, on one line`);
  }
  return value;
}

/**
 * The mosquitto.conf lines that turn on the authorization of {@link mosquittoDynamicSecurity}: the plugin with its
 * file, anonymous clients refused, one set of settings for all listeners; and, with `certificates`, a TLS listener
 * that requires a client certificate and takes its common name as the user name — and as the client id, because
 * the plugin checks a user's client id only at a password login (measured on Mosquitto 2.0.11), so without it a
 * certificate could take over another module's session. Operators who log in by certificate then run one client
 * at a time per certificate.
 *
 * @example
 * ```ts
 * const lines = mosquittoSecurityConfig({ dynamicSecurityFile: '/var/lib/mosquitto/dynamic-security.json' });
 * appendFileSync('/etc/mosquitto/conf.d/edgekit.conf', `${lines.join('\n')}\n`);
 * ```
 */
export function mosquittoSecurityConfig(options: MosquittoSecurityConfigOptions): readonly string[] {
  if (typeof options !== 'object' || options === null) {
    throw new TypeError('mosquittoSecurityConfig: options must be an object');
  }
  const file = checkLine('dynamicSecurityFile', options.dynamicSecurityFile);
  const plugin =
    options.pluginPath === undefined
      ? `/usr/lib/${DEBIAN_MULTIARCH[process.arch] ?? 'x86_64-linux-gnu'}/mosquitto_dynamic_security.so`
      : checkLine('pluginPath', options.pluginPath);
  const lines = [
    '# edgekit: authorization by the dynamic-security plugin (docs/transports/mqtt.md)',
    'per_listener_settings false',
    'allow_anonymous false',
    `plugin ${plugin}`,
    `plugin_opt_config_file ${file}`,
  ];
  const certificates = options.certificates;
  if (certificates !== undefined) {
    const { port, host } = certificates;
    if (!Number.isInteger(port) || port < 1 || port > 65535) {
      throw new RangeError(`mosquittoSecurityConfig: certificates.port must be 1–65535, got ${String(port)}`);
    }
    lines.push(
      `listener ${port}${host === undefined ? '' : ` ${checkLine('certificates.host', host)}`}`,
      `certfile ${checkLine('certificates.certFile', certificates.certFile)}`,
      `keyfile ${checkLine('certificates.keyFile', certificates.keyFile)}`,
      `cafile ${checkLine('certificates.caFile', certificates.caFile)}`,
      'require_certificate true',
      'use_identity_as_username true',
      'use_username_as_clientid true',
    );
  }
  return lines;
}
