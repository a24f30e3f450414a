/**
 * RabbitMQ's own authorization, rendered from an access plan (the service side's `planAccess`): users, vhost
 * permissions, topic permissions and the topology — exchanges, queues, bindings — that together let each principal do
 * exactly what its plan says, enforced by the broker. docs/transports/amqp.md (Permissions) explains the rules.
 *
 * What a principal may write is decided by bindings, not routing keys: every identity publishes to its own exchange,
 * which only it may write and only the operator binds. RabbitMQ 3.10 checks topic permissions against a publish's
 * routing key but not its `CC`/`BCC` headers, nor a queue's dead-letter routing key, nor an alternate exchange's
 * routing, so a topic permission cannot keep a user from reaching a queue; it is used here only where it does hold:
 * to confine which reply keys a user may bind (read) on the replies exchange.
 */

import { createHash, randomBytes } from 'node:crypto';
import type { Channel, ConfirmChannel } from 'amqplib';
import type { Principal } from '../../access.js';
import { checkAddressPattern, checkIdentity, matchesAddressPattern, parseIdentity } from '../../names.js';
import type { TransportConnection } from '../../transport.js';
import { amqpInternalsOf, peekLatest } from './connection.js';
import { AmqpReplyCode, replyCodeOf } from './errors.js';
import {
  checkAddress,
  checkPrefix,
  DEFAULT_PREFIX,
  messageQueueArguments,
  RETAINED_QUEUE_ARGUMENTS,
  type Topology,
  topology,
} from './topology.js';

/**
 * What {@link rabbitmqDefinitions} renders: a principal of an access plan (`planAccess`, `issueIdentities`). Its
 * `publish` addresses must be concrete (RabbitMQ needs a binding per queue), so a plan made with `publish: 'device'`
 * cannot be rendered.
 */
export type RabbitPrincipal = Principal;

/** Options of {@link rabbitmqDefinitions}. */
export interface RabbitDefinitionsOptions {
  /** The transport's `prefix`; default `edgekit`. */
  readonly prefix?: string;
  /** The virtual host the permissions are for; default `/`. */
  readonly vhost?: string;
  /** The transport's `priorities`: message queues are declared with `x-max-priority` when true; default false. */
  readonly priorities?: boolean;
}

/** A user in RabbitMQ's definitions format. */
export interface RabbitUserDefinition {
  readonly name: string;
  readonly password_hash: string;
  readonly hashing_algorithm: 'rabbit_password_hashing_sha256';
  readonly tags: readonly string[];
}

/** A user's vhost permissions: regular expressions over the names of exchanges and queues. */
export interface RabbitPermissionDefinition {
  readonly user: string;
  readonly vhost: string;
  readonly configure: string;
  readonly write: string;
  readonly read: string;
}

/** A user's topic permissions on one topic exchange: regular expressions over routing and binding keys. */
export interface RabbitTopicPermissionDefinition {
  readonly user: string;
  readonly vhost: string;
  readonly exchange: string;
  readonly write: string;
  readonly read: string;
}

/** An exchange in RabbitMQ's definitions format. */
export interface RabbitExchangeDefinition {
  readonly name: string;
  readonly vhost: string;
  readonly type: 'direct' | 'topic' | 'fanout';
  readonly durable: true;
  readonly auto_delete: false;
  readonly internal: false;
  readonly arguments: Readonly<Record<string, unknown>>;
}

/** A queue in RabbitMQ's definitions format. */
export interface RabbitQueueDefinition {
  readonly name: string;
  readonly vhost: string;
  readonly durable: true;
  readonly auto_delete: false;
  readonly arguments: Readonly<Record<string, unknown>>;
}

/** A binding (to a queue or, exchange-to-exchange, to an exchange) in RabbitMQ's definitions format. */
export interface RabbitBindingDefinition {
  readonly source: string;
  readonly vhost: string;
  readonly destination: string;
  readonly destination_type: 'queue' | 'exchange';
  readonly routing_key: string;
  readonly arguments: Readonly<Record<string, unknown>>;
}

/**
 * A RabbitMQ definitions document, as `rabbitmqctl import_definitions` (or `load_definitions` at boot) takes it. It
 * adds and updates; it never deletes a user, permission, queue or binding that is not in it, and leaves an existing
 * queue or exchange as it is even where its arguments differ.
 */
export interface RabbitDefinitions {
  readonly users: readonly RabbitUserDefinition[];
  readonly vhosts: readonly { readonly name: string }[];
  readonly permissions: readonly RabbitPermissionDefinition[];
  readonly topic_permissions: readonly RabbitTopicPermissionDefinition[];
  readonly exchanges: readonly RabbitExchangeDefinition[];
  readonly queues: readonly RabbitQueueDefinition[];
  readonly bindings: readonly RabbitBindingDefinition[];
}

/** Server-named queues (watches, observers, replies): exclusive to the connection that declared them. */
const SERVER_NAMED = 'amq\\.gen-.*';

/** Escapes `text` for a regular expression (RabbitMQ's are Erlang's `re`, PCRE). */
export function escapeRegex(text: string): string {
  return text.replace(/[\\^$.|?*+()[\]{}]/g, '\\$&');
}

/** A regex matching exactly the given names and patterns (patterns are regex sources already); none: nothing. */
function anyOf(exact: Iterable<string>, patterns: Iterable<string> = []): string {
  const alternatives = [...new Set([...[...exact].map(escapeRegex), ...patterns])];
  if (alternatives.length === 0) return '^$';
  return `^(?:${alternatives.join('|')})$`;
}

/**
 * RabbitMQ's stored form of a password for the `rabbit_password_hashing_sha256` algorithm: base64 of a random 4-byte
 * salt followed by SHA-256(salt ‖ UTF-8 password). Put it in {@link rabbitmqDefinitions}' `passwords`.
 *
 * @example
 * ```ts
 * const passwords = new Map([['gw-1/filter', hashRabbitPassword(process.env.FILTER_PASSWORD ?? '')]]);
 * ```
 */
export function hashRabbitPassword(password: string): string {
  if (typeof password !== 'string') throw new TypeError(`password must be a string, got ${typeof password}`);
  if (password.length === 0) throw new RangeError('password must not be empty');
  const salt = randomBytes(4);
  const digest = createHash('sha256')
    .update(Buffer.concat([salt, Buffer.from(password, 'utf8')]))
    .digest();
  return Buffer.concat([salt, digest]).toString('base64');
}

function checkPasswordHash(username: string, hash: unknown): string {
  if (typeof hash !== 'string' || !/^[A-Za-z0-9+/]{48}$/.test(hash)) {
    throw new RangeError(
      `the password hash of ${JSON.stringify(username)} is not RabbitMQ's salted SHA-256 form (48 base64 characters): ` +
        'make it with hashRabbitPassword(password), never pass the password itself',
    );
  }
  return hash;
}

function checkList(principal: string, name: string, value: unknown, patterns: boolean): readonly string[] {
  if (!Array.isArray(value)) throw new TypeError(`principal ${principal}: ${name} must be an array`);
  for (const item of value) {
    if (patterns) checkAddressPattern(item);
    else checkAddress('address', item);
  }
  return value as readonly string[];
}

const isPattern = (address: string) => address.split('/').includes('*');

/** A checked principal, with the lists patterns may stand in. */
interface Checked {
  readonly principal: RabbitPrincipal;
  readonly identity: string;
}

function checkPrincipals(principals: unknown): readonly Checked[] {
  if (!Array.isArray(principals)) throw new TypeError('principals must be an array');
  const seen = new Set<string>();
  return principals.map((value: unknown, index) => {
    if (typeof value !== 'object' || value === null) throw new TypeError(`principals[${index}] must be an object`);
    const principal = value as RabbitPrincipal;
    const { kind, username } = principal;
    if (kind !== 'module' && kind !== 'operator') {
      throw new RangeError(`principals[${index}].kind must be 'module' or 'operator', got ${String(kind)}`);
    }
    if (typeof username !== 'string' || username.length === 0 || Buffer.byteLength(username) > 255) {
      throw new RangeError(`principals[${index}].username must be a string of 1 to 255 bytes`);
    }
    if (seen.has(username)) throw new RangeError(`principal ${JSON.stringify(username)} is listed twice`);
    seen.add(username);
    const identity = checkIdentity(principal.identity);
    const who = JSON.stringify(username);
    if (typeof principal.all !== 'boolean') throw new TypeError(`principal ${who}: all must be a boolean`);
    if (kind === 'operator') {
      if (parseIdentity(identity)?.kind !== 'operator' || !principal.all) {
        throw new RangeError(`operator ${who} must have an operator identity ($operator/<name>) and all: true`);
      }
      return { principal, identity };
    }
    if (parseIdentity(identity)?.kind !== 'module' || principal.all) {
      throw new RangeError(`module ${who} must have a module identity (<device>/<module>) and all: false`);
    }
    if (typeof principal.clientId !== 'string' || principal.clientId.length === 0) {
      throw new RangeError(`module ${who} must have a clientId: its will queue is named after it`);
    }
    checkList(who, 'consume', principal.consume, true);
    for (const address of checkList(who, 'publish', principal.publish, true)) {
      if (isPattern(address)) {
        throw new RangeError(
          `module ${who} may publish to the pattern ${address}: RabbitMQ needs a binding per destination queue, so ` +
            "plan with publish: 'routes' (each input the routes reach) for RabbitMQ",
        );
      }
    }
    checkList(who, 'serve', principal.serve, false);
    checkList(who, 'request', principal.request, true);
    checkList(who, 'readRetained', principal.readRetained, true);
    checkList(who, 'writeRetained', principal.writeRetained, false);
    return { principal, identity };
  });
}

/** The concrete addresses among `candidates` that `patterns` (concrete or with `*`) name. */
function expand(patterns: readonly string[], candidates: ReadonlySet<string>): string[] {
  const out = new Set<string>();
  for (const pattern of patterns) {
    if (!isPattern(pattern)) {
      out.add(pattern);
      continue;
    }
    const segments = checkAddressPattern(pattern);
    for (const candidate of candidates) if (matchesAddressPattern(segments, candidate)) out.add(candidate);
  }
  return [...out].sort();
}

/** A regex source for the plain names of the message queues an address pattern names (`*`: one word). */
function queuePatternSource(names: Topology, pattern: string): string {
  const plain = names.messageQueue(pattern);
  // messageQueue keeps `*` as a word (it is no name character); a hashed name means no plain name can match.
  if (plain.includes('.=')) return '(?!)';
  return plain
    .split('.')
    .map((word) => (word === '*' ? '[^.=][^.]*' : escapeRegex(word)))
    .join('\\.');
}

/** What a module principal may name, in this topology. */
interface ModuleRights {
  readonly configure: string;
  readonly write: string;
  readonly read: string;
  readonly topics: readonly { readonly exchange: string; readonly write: string; readonly read: string }[];
}

/** Everything the plan involves, expanded to concrete addresses. */
interface Plan {
  readonly names: Topology;
  readonly checked: readonly Checked[];
  /** Concrete addresses some principal serves (what `request` patterns expand over). */
  readonly served: ReadonlySet<string>;
  /** Concrete retained keys the plan names (what `readRetained` patterns expand over). */
  readonly keys: ReadonlySet<string>;
  /** Concrete message addresses the plan names. */
  readonly queues: ReadonlySet<string>;
}

function planOf(principals: readonly RabbitPrincipal[], prefix: string): Plan {
  const names = topology(checkPrefix(prefix));
  const checked = checkPrincipals(principals);
  const concrete = (pick: (p: RabbitPrincipal) => readonly string[]) =>
    new Set(checked.flatMap(({ principal }) => (principal.all ? [] : pick(principal).filter((a) => !isPattern(a)))));
  return {
    names,
    checked,
    served: concrete((p) => p.serve),
    keys: concrete((p) => [...p.readRetained, ...p.writeRetained]),
    queues: concrete((p) => [...p.publish, ...p.consume]),
  };
}

function moduleRights(plan: Plan, principal: RabbitPrincipal, identity: string): ModuleRights {
  const { names } = plan;
  const from = names.fromExchange(identity);
  const will = names.willQueue(principal.clientId ?? '');
  const rpc = principal.serve.map((address) => names.requestQueue(address));
  const inputs = expand(principal.consume, plan.queues).map((address) => names.messageQueue(address));
  const inputPatterns = principal.consume.filter(isPattern).map((pattern) => queuePatternSource(names, pattern));
  const readable = expand(principal.readRetained, plan.keys);
  const views = readable.map((key) => names.viewQueue(identity, key));
  const updates = readable.map((key) => names.updatesExchange(key));
  const calls = principal.serve.map((address) => names.callsExchange(address));
  return {
    // Server-named queues (watches, replies), its will queue, its request queues and its inputs (so a module may
    // consume an input no route reaches yet). No exchange: an exchange it declared could name an alternate exchange.
    configure: anyOf([will, ...rpc, ...inputs], [SERVER_NAMED, ...inputPatterns]),
    // Its own exchange (every publish), the replies exchange (answers), and as binding destinations its own queues.
    write: anyOf([from, names.repliesExchange, will, ...rpc], [SERVER_NAMED]),
    // Its queues and views; as binding sources its own exchange (the will), the updates exchanges of the keys it may
    // read (watches), the calls exchanges of the addresses it serves, and the replies exchange, where the topic
    // permission below confines the keys it may bind to its own.
    read: anyOf(
      [from, names.repliesExchange, ...updates, ...calls, will, ...rpc, ...inputs, ...views],
      [SERVER_NAMED, ...inputPatterns],
    ),
    topics: [
      {
        exchange: names.repliesExchange,
        // Replies go to whatever key a caller asked for; only reply queues are bound there.
        write: '.*',
        read: `^${escapeRegex(names.replyKeyStem(identity))}\\.[^.]+$`,
      },
    ],
  };
}

/** The exchanges, queues and bindings a plan needs, deduplicated. */
interface Layout {
  readonly exchanges: Map<string, 'direct' | 'topic' | 'fanout'>;
  /** Queue name → arguments. */
  readonly queues: Map<string, Readonly<Record<string, unknown>>>;
  /** `source|type|destination|key` → binding. */
  readonly bindings: Map<string, Omit<RabbitBindingDefinition, 'vhost' | 'arguments'>>;
  /** View queue → the key's last-value queue (what to copy into it when it is new). */
  readonly views: Map<string, string>;
}

function layoutOf(plan: Plan, priorities: boolean): Layout {
  const { names } = plan;
  const exchanges = new Map<string, 'direct' | 'topic' | 'fanout'>([
    [names.observeExchange, 'topic'],
    [names.repliesExchange, 'topic'],
  ]);
  const queues = new Map<string, Readonly<Record<string, unknown>>>();
  const bindings = new Map<string, Omit<RabbitBindingDefinition, 'vhost' | 'arguments'>>();
  const views = new Map<string, string>();
  const bind = (source: string, destination: string, type: 'queue' | 'exchange', key: string) => {
    bindings.set(`${source}|${type}|${destination}|${key}`, {
      source,
      destination,
      destination_type: type,
      routing_key: key,
    });
  };
  /** A key's updates exchange, bound to its last-value queue. */
  const updatesOf = (key: string) => {
    const updates = names.updatesExchange(key);
    const queue = names.retainedQueue(key);
    exchanges.set(updates, 'fanout');
    queues.set(queue, RETAINED_QUEUE_ARGUMENTS);
    bind(updates, queue, 'queue', '');
    return updates;
  };
  for (const key of plan.keys) updatesOf(key);
  for (const address of plan.served) exchanges.set(names.callsExchange(address), 'fanout');
  const done = new Set<string>();
  for (const { principal, identity } of plan.checked) {
    const from = names.fromExchange(identity);
    exchanges.set(from, 'direct');
    // Replicas share their module's identity, exchange and bindings.
    if (principal.all || done.has(identity)) continue;
    done.add(identity);
    for (const address of principal.publish) {
      const queue = names.messageQueue(address);
      queues.set(queue, messageQueueArguments(priorities));
      bind(from, queue, 'queue', queue);
      bind(from, names.observeExchange, 'exchange', queue);
    }
    for (const key of principal.writeRetained) bind(from, updatesOf(key), 'exchange', names.retainedQueue(key));
    for (const address of expand(principal.request, plan.served)) {
      bind(from, names.callsExchange(address), 'exchange', names.requestQueue(address));
    }
    for (const key of expand(principal.readRetained, plan.keys)) {
      const view = names.viewQueue(identity, key);
      queues.set(view, RETAINED_QUEUE_ARGUMENTS);
      bind(updatesOf(key), view, 'queue', '');
      views.set(view, names.retainedQueue(key));
    }
  }
  return { exchanges, queues, bindings, views };
}

/**
 * The RabbitMQ definitions of an access plan: a user per principal with its password hash, the vhost, and the
 * permissions, topic permissions, exchanges, queues and bindings that give each principal exactly its rights in the
 * AMQP transport's topology. Load it with `rabbitmqctl import_definitions <file>` (no plugin needed) or
 * `load_definitions` at boot; it adds and updates, and never deletes what it does not name (remove `guest` yourself).
 *
 * Modules get: consume their own inputs, serve their own methods; publish only through their own exchange, which is
 * bound to exactly the inputs their routes reach, `$upstream` when routed there, their dead letters, their own
 * reported properties and presence, and the methods of their device; read (through their own copies, "views") and
 * watch their desired properties, their reported properties, the device's routes and presences; their own will queue.
 * Operators get everything under the prefix. docs/transports/amqp.md (Permissions) has the rules.
 *
 * A view created after its key was written is empty until the next write: on a broker that already holds values, run
 * {@link declareRabbitAccess} after importing, which copies them.
 *
 * @example
 * ```ts
 * import { writeFileSync } from 'node:fs';
 * import { planAccess, readDeployment } from 'edgekit';
 * import { hashRabbitPassword, rabbitmqDefinitions } from 'edgekit/amqp';
 *
 * const plan = planAccess(readDeployment(manifest), 'gw-1');
 * const passwords = new Map(plan.principals.map((p) => [p.username, hashRabbitPassword(secretOf(p.username))]));
 * writeFileSync('definitions.json', JSON.stringify(rabbitmqDefinitions(plan.principals, passwords)));
 * // rabbitmqctl import_definitions definitions.json
 * ```
 */
export function rabbitmqDefinitions(
  principals: readonly RabbitPrincipal[],
  passwords: ReadonlyMap<string, string>,
  options: RabbitDefinitionsOptions = {},
): RabbitDefinitions {
  if (!(passwords instanceof Map)) throw new TypeError('passwords must be a Map of user name to password hash');
  if (typeof options !== 'object' || options === null) throw new TypeError('options must be an object');
  const vhost = options.vhost ?? '/';
  if (typeof vhost !== 'string' || vhost.length === 0) throw new RangeError('vhost must be a non-empty string');
  const plan = planOf(principals, options.prefix ?? DEFAULT_PREFIX);
  const { names } = plan;
  const missing = plan.checked.map((c) => c.principal.username).filter((user) => !passwords.has(user));
  if (missing.length > 0) {
    throw new RangeError(`no password hash for ${missing.map((user) => JSON.stringify(user)).join(', ')}`);
  }
  const users: RabbitUserDefinition[] = [];
  const permissions: RabbitPermissionDefinition[] = [];
  const topics: RabbitTopicPermissionDefinition[] = [];
  const everything = anyOf([], [`${escapeRegex(names.prefix)}\\..*`, SERVER_NAMED]);
  for (const { principal, identity } of plan.checked) {
    const user = principal.username;
    users.push({
      name: user,
      password_hash: checkPasswordHash(user, passwords.get(user)),
      hashing_algorithm: 'rabbit_password_hashing_sha256',
      tags: [],
    });
    if (principal.all) {
      permissions.push({ user, vhost, configure: everything, write: everything, read: everything });
      continue;
    }
    const rights = moduleRights(plan, principal, identity);
    permissions.push({ user, vhost, configure: rights.configure, write: rights.write, read: rights.read });
    for (const topic of rights.topics) topics.push({ user, vhost, ...topic });
  }
  const layout = layoutOf(plan, options.priorities === true);
  return {
    users,
    vhosts: [{ name: vhost }],
    permissions,
    topic_permissions: topics,
    exchanges: [...layout.exchanges].map(([name, type]) => ({
      name,
      vhost,
      type,
      durable: true,
      auto_delete: false,
      internal: false,
      arguments: {},
    })),
    queues: [...layout.queues].map(([name, args]) => ({
      name,
      vhost,
      durable: true,
      auto_delete: false,
      arguments: args,
    })),
    bindings: [...layout.bindings.values()].map((binding) => ({ ...binding, vhost, arguments: {} })),
  };
}

/** Options of {@link declareRabbitAccess}. */
export interface DeclareRabbitAccessOptions {
  /** The transport's `priorities`; default: the connection's transport's. */
  readonly priorities?: boolean;
  /**
   * The principals of the plan this one replaces. The bindings that plan had and this one has not are removed — a
   * route dropped, a module removed — since a binding is what lets an identity write somewhere, and neither a
   * definitions import nor a declaration ever removes one. Users, permissions and queues are left as they are.
   */
  readonly previous?: readonly RabbitPrincipal[];
}

/** What {@link declareRabbitAccess} did. */
export interface DeclaredRabbitAccess {
  readonly exchanges: number;
  readonly queues: number;
  readonly bindings: number;
  /** Bindings of the previous plan removed (see {@link DeclareRabbitAccessOptions.previous}). */
  readonly unbound: number;
  /** The views that were empty while their key had a value, and got a copy of it. */
  readonly seededViews: readonly string[];
}

/** How often a view's copy is checked against its key again, in case the key changed while it was copied. */
const SEED_ATTEMPTS = 3;

/**
 * Declares on the broker the exchanges, queues and bindings of an access plan (what {@link rabbitmqDefinitions}
 * renders, without users and permissions), through an operator's connection of the AMQP transport, and fills each
 * view that is empty while its key has a value with a copy of that value — a view created after its key was written
 * (a module added to a running deployment, definitions imported on a broker that already has values) would otherwise
 * read nothing until the key's next write. Idempotent: run it after every import. With `previous`, it also removes
 * what the plan it replaces allowed and this one does not. A queue that exists with other arguments makes it reject
 * with `invalid-configuration`.
 *
 * Messages for a module that never connected wait in its input queues from then on.
 *
 * @example
 * ```ts
 * import { amqp, declareRabbitAccess } from 'edgekit/amqp';
 *
 * const connection = await amqp({ url, username: '$operator/operator', password }).connect({
 *   clientId: 'edgekit-access',
 *   identity: '$operator/operator',
 * });
 * try {
 *   await declareRabbitAccess(connection, planAccess(deployment, 'gw-1').principals);
 * } finally {
 *   await connection.close();
 * }
 * ```
 */
export async function declareRabbitAccess(
  connection: TransportConnection,
  principals: readonly RabbitPrincipal[],
  options: DeclareRabbitAccessOptions = {},
): Promise<DeclaredRabbitAccess> {
  const internals = amqpInternalsOf(connection);
  if (internals === undefined) {
    throw new TypeError('declareRabbitAccess needs a connection of the amqp transport (edgekit/amqp)');
  }
  if (typeof options !== 'object' || options === null) throw new TypeError('options must be an object');
  const priorities = options.priorities ?? internals.priorities;
  const plan = planOf(principals, internals.names.prefix);
  const layout = layoutOf(plan, priorities);
  const stale =
    options.previous === undefined
      ? []
      : [...layoutOf(planOf(options.previous, internals.names.prefix), priorities).bindings].filter(
          ([id]) => !layout.bindings.has(id),
        );
  return internals.run('declaring the access plan', async (model) => {
    let channel = await model.createChannel();
    channel.on('error', () => undefined);
    const seeding = await model.createConfirmChannel();
    seeding.on('error', () => undefined);
    try {
      let unbound = 0;
      for (const [, binding] of stale) {
        try {
          if (binding.destination_type === 'queue') {
            await channel.unbindQueue(binding.destination, binding.source, binding.routing_key);
          } else await channel.unbindExchange(binding.destination, binding.source, binding.routing_key);
          unbound++;
        } catch (error) {
          // Its source or destination is gone already, and the binding with it; the channel is, too.
          if (replyCodeOf(error) !== AmqpReplyCode.notFound) throw error;
          channel = await model.createChannel();
          channel.on('error', () => undefined);
        }
      }
      for (const [name, type] of layout.exchanges) await channel.assertExchange(name, type, { durable: true });
      for (const [name, args] of layout.queues) await channel.assertQueue(name, { durable: true, arguments: args });
      for (const binding of layout.bindings.values()) {
        if (binding.destination_type === 'queue') {
          await channel.bindQueue(binding.destination, binding.source, binding.routing_key);
        } else await channel.bindExchange(binding.destination, binding.source, binding.routing_key);
      }
      const seededViews: string[] = [];
      for (const [view, source] of layout.views) {
        if (await seedView(channel, seeding, internals.from, view, source)) seededViews.push(view);
      }
      return {
        exchanges: layout.exchanges.size,
        queues: layout.queues.size,
        bindings: layout.bindings.size,
        unbound,
        seededViews,
      };
    } finally {
      await Promise.all([channel.close().catch(() => undefined), seeding.close().catch(() => undefined)]);
    }
  });
}

/**
 * Copies the current value of `source` (a key's last-value queue) into the empty `view`, through the operator's own
 * exchange (bound to the view alone for this), then checks the key again: a write that raced the copy is copied too.
 */
async function seedView(
  channel: Channel,
  seeding: ConfirmChannel,
  from: string,
  view: string,
  source: string,
): Promise<boolean> {
  if ((await channel.checkQueue(view)).messageCount > 0) return false;
  let copied: string | undefined;
  for (let attempt = 0; attempt < SEED_ATTEMPTS; attempt++) {
    const latest = await peekLatest(channel, source);
    const id = latest?.properties.messageId as string | undefined;
    if (latest === undefined || (copied !== undefined && id === copied)) break;
    if (copied === undefined) await channel.bindQueue(view, from, view);
    await new Promise<void>((resolve, reject) => {
      seeding.publish(from, view, latest.content, { ...latest.properties, persistent: true }, (error: unknown) =>
        error === null || error === undefined ? resolve() : reject(error),
      );
    });
    copied = id ?? '';
  }
  return copied !== undefined;
}
