/**
 * Broker identities for deployments: a credential per module (and replica) and per operator, kept in an
 * {@link IdentityStore} between runs. The store holds what each principal may do ({@link planAccess}) and its password
 * hashed for each broker kind — never a password: a password is handed out once, when it is issued, to be put where
 * its module reads it. Re-running for a device updates its principals; rotating a principal replaces its hash, which
 * revokes the old password once the broker has the new configuration. Broker-neutral: each transport renders the
 * store's principals into its broker's configuration (`mosquittoDynamicSecurity` from `edgekit/mqtt`,
 * `rabbitmqDefinitions` from `edgekit/amqp`); the `edgekit identities` command writes all of it to files.
 */
import { randomBytes } from 'node:crypto';
import { EdgeKitError } from '../errors.js';
import { checkName, operatorIdentity, parseIdentity } from '../names.js';
import { type PlanAccessOptions, type Principal, planAccess } from './access.js';
import type { Deployment } from './deployment.js';

/** The hash of one principal's password for each broker kind (`mosquitto`, `rabbitmq`), in that broker's form. */
export type PasswordHashes = Readonly<Record<string, unknown>>;

/** A client certificate issued to a principal (its serial number, to revoke it when the principal is rotated). */
export interface IssuedCertificate {
  readonly serialNumber: string;
  readonly notAfter: number;
}

/** What the store keeps of one principal's credential. */
export interface StoredCredential {
  readonly hashes: PasswordHashes;
  /** Epoch ms the password was issued. */
  readonly issuedAt: number;
  readonly certificate?: IssuedCertificate;
}

/** The identities of every device and operator made so far; JSON, safe to keep (it holds no password). */
export interface IdentityStore {
  readonly version: 1;
  /** The principals of each device's deployment (modules and replicas), with the options they were planned with. */
  readonly devices: Readonly<Record<string, { readonly principals: readonly Principal[] }>>;
  /** Operators, by name: they act on every device. */
  readonly operators: Readonly<Record<string, Principal>>;
  /** Credentials by user name. */
  readonly credentials: Readonly<Record<string, StoredCredential>>;
  /** Certificates that no longer stand for their principal: for the certificate revocation list. */
  readonly revokedCertificates: ReadonlyArray<{ readonly serialNumber: string; readonly revokedAt: number }>;
}

/** A password handed out once, when issued: put it where its principal reads it, then forget it. */
export interface IssuedCredential {
  readonly username: string;
  readonly identity: string;
  readonly kind: Principal['kind'];
  readonly password: string;
}

/** Options for {@link issueIdentities}. */
export interface IssueIdentitiesOptions extends PlanAccessOptions {
  /**
   * Hashes a password for each broker kind the store should be able to configure, e.g.
   * `{ mosquitto: hashMosquittoPassword, rabbitmq: hashRabbitPassword }`.
   */
  readonly hashers: Readonly<Record<string, (password: string) => unknown>>;
  /**
   * Module ids of the device (or `$operator/<name>` user names) whose credentials are replaced: a new password is
   * issued and the old one stops working once the broker has the new configuration.
   */
  readonly rotate?: readonly string[];
  /** Epoch ms; default now. */
  readonly now?: number;
}

/** What {@link issueIdentities} did. */
export interface IssueIdentitiesResult {
  readonly store: IdentityStore;
  /** New credentials: principals that had none, and rotated ones. */
  readonly issued: readonly IssuedCredential[];
  /** User names whose previous credential is revoked: rotated, or no longer in the deployment. */
  readonly revoked: readonly string[];
  /** Every principal the store now configures (all devices and operators): what the broker renderers take. */
  readonly principals: readonly Principal[];
}

/** An empty store. */
export function emptyIdentityStore(): IdentityStore {
  return { version: 1, devices: {}, operators: {}, credentials: {}, revokedCertificates: [] };
}

/** A random password: 24 bytes, base64url (192 bits; no character that needs escaping in a URL or a file). */
export function newPassword(): string {
  return randomBytes(24).toString('base64url');
}

/** Reads a store from its JSON; checks its shape, so a damaged file fails with a clear error, not later. */
export function readIdentityStore(json: unknown): IdentityStore {
  const fail = (why: string): never => {
    throw new EdgeKitError('invalid-configuration', `the identity store is not valid: ${why}`);
  };
  if (typeof json !== 'object' || json === null || Array.isArray(json)) return fail('not an object');
  const store = json as Partial<IdentityStore>;
  if (store.version !== 1) return fail(`version ${String(store.version)} (this edgekit reads version 1)`);
  for (const field of ['devices', 'operators', 'credentials'] as const) {
    const value = store[field];
    if (typeof value !== 'object' || value === null || Array.isArray(value)) return fail(`"${field}" is not an object`);
  }
  if (!Array.isArray(store.revokedCertificates)) return fail('"revokedCertificates" is not an array');
  for (const [device, entry] of Object.entries(store.devices ?? {})) {
    if (!Array.isArray(entry?.principals)) return fail(`device ${JSON.stringify(device)} has no principals`);
  }
  for (const username of Object.keys(store.credentials ?? {})) {
    const credential = store.credentials?.[username];
    if (typeof credential?.hashes !== 'object' || credential.hashes === null) {
      return fail(`the credential of ${JSON.stringify(username)} has no hashes`);
    }
  }
  return store as IdentityStore;
}

/** Every principal a store configures: each device's, then the operators. */
export function principalsOf(store: IdentityStore): Principal[] {
  return [
    ...Object.keys(store.devices)
      .sort()
      .flatMap((device) => store.devices[device]?.principals ?? []),
    ...Object.keys(store.operators)
      .sort()
      .map((name) => store.operators[name] as Principal),
  ];
}

/**
 * Plans a device's principals from its deployment, issues a credential to each one that has none (and to each one
 * to rotate), and drops the credentials of principals the deployment no longer has. Pure apart from the random
 * passwords: the caller saves the returned store and hands out `issued`.
 *
 * @example
 * ```ts
 * const { store, issued } = issueIdentities(undefined, readDeployment(manifest), 'gw-1', {
 *   hashers: { mosquitto: hashMosquittoPassword, rabbitmq: hashRabbitPassword },
 * });
 * for (const c of issued) writeFileSync(`${c.username}.password`, c.password, { mode: 0o600 });
 * ```
 */
export function issueIdentities(
  current: IdentityStore | undefined,
  deployment: Deployment,
  deviceId: string,
  options: IssueIdentitiesOptions,
): IssueIdentitiesResult {
  checkName('device id', deviceId);
  if (typeof options !== 'object' || options === null) throw new TypeError('issueIdentities: options are required');
  const hashers = options.hashers;
  if (typeof hashers !== 'object' || hashers === null || Object.keys(hashers).length === 0) {
    throw new TypeError('issueIdentities: hashers must name at least one broker kind');
  }
  for (const [kind, hash] of Object.entries(hashers)) {
    if (typeof hash !== 'function') throw new TypeError(`issueIdentities: hashers.${kind} must be a function`);
  }
  const now = options.now ?? Date.now();
  const store = current ?? emptyIdentityStore();
  const plan = planAccess(deployment, deviceId, options);
  const devicePrincipals = plan.principals.filter((p) => p.kind === 'module');
  const operator = plan.principals.find((p) => p.kind === 'operator') as Principal;

  const rotate = new Set<string>();
  for (const name of options.rotate ?? []) {
    const username = parseIdentity(name)?.kind === 'operator' ? name : `${deviceId}/${checkName('module id', name)}`;
    const known = [...devicePrincipals, operator].some((p) => p.username === username || p.identity === username);
    if (!known) {
      throw new RangeError(
        `issueIdentities: cannot rotate ${JSON.stringify(name)}: it is not a principal of ${deviceId}`,
      );
    }
    rotate.add(username);
  }

  const previous = new Set((store.devices[deviceId]?.principals ?? []).map((p) => p.username));
  const credentials: Record<string, StoredCredential> = { ...store.credentials };
  const revokedCertificates = [...store.revokedCertificates];
  const issued: IssuedCredential[] = [];
  const revoked: string[] = [];
  const retire = (username: string) => {
    const old = credentials[username];
    if (old === undefined) return;
    revoked.push(username);
    if (old.certificate) revokedCertificates.push({ serialNumber: old.certificate.serialNumber, revokedAt: now });
    delete credentials[username];
  };
  // Principals the deployment no longer has (a module removed, a replica gone) lose their credentials.
  const planned = new Set(devicePrincipals.map((p) => p.username));
  for (const username of previous) if (!planned.has(username)) retire(username);

  for (const principal of [...devicePrincipals, operator]) {
    const username = principal.username;
    // Rotating a module rotates its replicas too: they share its identity.
    const rotating = rotate.has(username) || rotate.has(principal.identity);
    if (credentials[username] !== undefined && !rotating) continue;
    if (rotating) retire(username);
    const password = newPassword();
    const hashes: Record<string, unknown> = {};
    for (const [kind, hash] of Object.entries(hashers)) hashes[kind] = hash(password);
    credentials[username] = { hashes, issuedAt: now };
    issued.push({ username, identity: principal.identity, kind: principal.kind, password });
  }

  const operatorName = parseIdentity(operator.identity);
  const next: IdentityStore = {
    version: 1,
    devices: { ...store.devices, [deviceId]: { principals: devicePrincipals } },
    operators: {
      ...store.operators,
      [operatorName?.kind === 'operator' ? operatorName.name : operatorIdentity('operator')]: operator,
    },
    credentials,
    revokedCertificates,
  };
  return { store: next, issued, revoked, principals: principalsOf(next) };
}

/** The store with a certificate recorded for `username` (the one issued along with its credential). */
export function withCertificate(store: IdentityStore, username: string, certificate: IssuedCertificate): IdentityStore {
  const credential = store.credentials[username];
  if (credential === undefined) throw new RangeError(`no credential for ${JSON.stringify(username)}`);
  return { ...store, credentials: { ...store.credentials, [username]: { ...credential, certificate } } };
}
