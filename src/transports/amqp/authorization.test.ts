import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { hashRabbitPassword, type RabbitPrincipal, rabbitmqDefinitions } from './authorization.js';

const module = (device: string, moduleId: string, extra: Partial<RabbitPrincipal> = {}): RabbitPrincipal => ({
  kind: 'module',
  username: `${device}/${moduleId}`,
  identity: `${device}/${moduleId}`,
  clientId: `${device}/${moduleId}`,
  consume: [`inputs/${device}/${moduleId}/*`],
  publish: [`deadletter/${device}/${moduleId}`],
  serve: [`methods/${device}/${moduleId}`],
  request: [`methods/${device}/*`],
  readRetained: [`twin/${device}/${moduleId}/desired`, `routes/${device}`, `presence/${device}/*`],
  writeRetained: [`twin/${device}/${moduleId}/reported`, `presence/${device}/${moduleId}`],
  all: false,
  ...extra,
});
const operator: RabbitPrincipal = {
  kind: 'operator',
  username: '$operator/ops',
  identity: '$operator/ops',
  clientId: undefined,
  consume: [],
  publish: [],
  serve: [],
  request: [],
  readRetained: [],
  writeRetained: [],
  all: true,
};
const hashes = (principals: readonly RabbitPrincipal[]) =>
  new Map(principals.map((p) => [p.username, hashRabbitPassword(`${p.username}-pw`)]));
const render = (principals: readonly RabbitPrincipal[], options = {}) =>
  rabbitmqDefinitions(principals, hashes(principals), options);

describe('hashRabbitPassword', () => {
  it("is RabbitMQ's rabbit_password_hashing_sha256 form: base64(salt ‖ SHA-256(salt ‖ password))", () => {
    const stored = Buffer.from(hashRabbitPassword('p@ss wörd'), 'base64');
    expect(stored).toHaveLength(36);
    const salt = stored.subarray(0, 4);
    const digest = createHash('sha256')
      .update(Buffer.concat([salt, Buffer.from('p@ss wörd', 'utf8')]))
      .digest();
    expect(stored.subarray(4)).toEqual(digest);
    expect(hashRabbitPassword('x')).not.toBe(hashRabbitPassword('x'));
    expect(() => hashRabbitPassword('')).toThrow(RangeError);
    expect(() => hashRabbitPassword(42 as unknown as string)).toThrow(TypeError);
  });
});

describe('rabbitmqDefinitions', () => {
  it('escapes names in every regex: a module id with regex characters matches itself only', () => {
    const odd = module('gw:1', 'a~b!c@d', { publish: ['deadletter/gw:1/a~b!c@d', 'inputs/gw:1/x/in'] });
    const defs = render([odd, module('gw:1', 'x'), operator], { prefix: 'my.prefix' });
    const rights = defs.permissions.find((p) => p.user === 'gw:1/a~b!c@d');
    const write = new RegExp(rights?.write ?? '$^');
    expect(write.test('my.prefix.from.gw:1.a~b!c@d')).toBe(true);
    expect(write.test('myXprefix.from.gw:1.a~b!c@d')).toBe(false);
    expect(write.test('my.prefix.from.gw:1.x')).toBe(false);
    const read = new RegExp(rights?.read ?? '$^');
    expect(read.test('my.prefix.msg.inputs.gw:1.a~b!c@d.in1')).toBe(true);
    expect(read.test('my.prefix.msg.inputs.gw:1.x.in')).toBe(false);
    expect(read.test('my.prefix.view.gw:1.a~b!c@d.routes.gw:1')).toBe(true);
    expect(read.test('my.prefix.retained.routes.gw:1')).toBe(false);
    const ops = defs.permissions.find((p) => p.user === '$operator/ops');
    expect(ops?.configure).toBe('^(?:my\\.prefix\\..*|amq\\.gen-.*)$');
    expect(defs.topic_permissions).toContainEqual({
      user: 'gw:1/a~b!c@d',
      vhost: '/',
      exchange: 'my.prefix.replies',
      write: '.*',
      read: '^gw:1\\.a~b!c@d\\.[^.]+$',
    });
  });

  it('expands patterns over what the plan names: presences and methods of the device', () => {
    const defs = render([module('gw', 'a'), module('gw', 'b'), operator]);
    const bindings = defs.bindings.filter((b) => b.source === 'edgekit.from.gw.a').map((b) => b.destination);
    expect(bindings).toEqual(
      expect.arrayContaining([
        'edgekit.msg.deadletter.gw.a',
        'edgekit.updates.twin.gw.a.reported',
        'edgekit.updates.presence.gw.a',
        'edgekit.calls.methods.gw.a',
        'edgekit.calls.methods.gw.b',
      ]),
    );
    expect(bindings).not.toContain('edgekit.updates.presence.gw.b');
    const views = defs.queues.map((q) => q.name).filter((name) => name.startsWith('edgekit.view.gw.a.'));
    expect(views.sort()).toEqual([
      'edgekit.view.gw.a.presence.gw.a',
      'edgekit.view.gw.a.presence.gw.b',
      'edgekit.view.gw.a.routes.gw',
      'edgekit.view.gw.a.twin.gw.a.desired',
    ]);
    expect(defs.exchanges.find((x) => x.name === 'edgekit.updates.routes.gw')?.type).toBe('fanout');
    expect(defs.exchanges.find((x) => x.name === 'edgekit.from.gw.a')?.type).toBe('direct');
  });

  it('names a hashed queue exactly where a route names it', () => {
    const long = 'i'.repeat(128);
    const a = module('gw', 'a');
    const b = module('gw', 'b', { publish: ['deadletter/gw/b', `inputs/gw/a/${long}`] });
    const defs = render([a, b, operator], { priorities: true });
    const input = defs.queues.find((q) => q.name.startsWith('edgekit.msg.inputs.=') || q.name.includes(long));
    expect(input?.arguments).toEqual({ 'x-max-priority': 9 });
    const rights = defs.permissions.find((p) => p.user === 'gw/a');
    expect(new RegExp(rights?.read ?? '$^').test(input?.name ?? '')).toBe(true);
  });

  it('refuses what it cannot render, naming it', () => {
    const device = module('gw', 'a', { publish: ['inputs/gw/*/*'] });
    expect(() => render([device, operator])).toThrow(/publish: 'routes'/);
    expect(() => rabbitmqDefinitions([module('gw', 'a')], new Map())).toThrow(/no password hash for "gw\/a"/);
    expect(() => rabbitmqDefinitions([module('gw', 'a')], new Map([['gw/a', 'plain password']]))).toThrow(
      /never pass the password itself/,
    );
    expect(() => render([module('gw', 'a'), module('gw', 'a')])).toThrow(/listed twice/);
    expect(() => render([{ ...module('gw', 'a'), identity: 'not one' as never }])).toThrow(RangeError);
    expect(() => render([{ ...operator, all: false }])).toThrow(/all: true/);
    expect(() => render([module('gw', 'a')], { prefix: 'amq.x' })).toThrow(RangeError);
  });
});
