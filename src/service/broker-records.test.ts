// Records read back from the broker are input too (issue 10, item 8): each is planted straight with the transport, as
// a hostile or broken writer would, and the service and modules must neither crash, nor hide it, nor go silent.
import { afterEach, describe, expect, test } from 'vitest';
import { typed } from '../codecs/schema.js';
import { connect } from '../connect.js';
import { defineModule } from '../core/contract.js';
import { MAX_TWIN_VERSION } from '../core/twin.js';
import type { EdgeKitError } from '../errors.js';
import type { TransportConnection } from '../transport.js';
import { MemoryBroker, memory } from '../transports/memory/index.js';
import { connectService, type RecordProblem, type ServiceClient } from './client.js';

const Filter = defineModule({ desired: typed<{ threshold?: number }>() });

const json = (value: unknown) => new TextEncoder().encode(typeof value === 'string' ? value : JSON.stringify(value));
const online = { state: 'online', since: Date.now(), sdk: 'edgekit/0.1.0' };

let broker: MemoryBroker;
let writer: TransportConnection;
const open: Array<{ close(): Promise<void> }> = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((c) => c.close()));
});

async function setUp(): Promise<ServiceClient> {
  broker = new MemoryBroker();
  writer = await memory({ broker }).connect({ clientId: 'planter' });
  open.push(writer);
  const service = await connectService({ transport: memory({ broker }) });
  open.push(service);
  return service;
}

describe('records read back from the broker', () => {
  test('a deployment record naming invalid module ids: modules() lists each with a problem, reads nothing for it, never throws', async () => {
    const service = await setUp();
    await writer.setRetained('deployment/gw', json({ modules: ['ok', 'bad\u0001', 'a+b', 'x/y'], appliedAt: 1 }));
    await writer.setRetained('presence/gw/ok', json(online));
    const rows = await service.modules('gw');
    expect(rows.map((m) => [m.moduleId, m.state, m.deployed])).toEqual([
      ['a+b', 'unknown', true],
      ['bad\u0001', 'unknown', true],
      ['ok', 'online', true],
      ['x/y', 'unknown', true],
    ]);
    expect(rows.find((m) => m.moduleId === 'bad\u0001')?.problem).toMatch(
      /^the deployment record lists an invalid module id: module id "bad\\u0001" is not allowed/,
    );
    expect(rows.find((m) => m.moduleId === 'ok')?.problem).toBeUndefined();
  });

  test('an unreadable deployment record: deployment() says why, modules() still lists the presences', async () => {
    const service = await setUp();
    await writer.setRetained('deployment/gw', json('{"modules": ["a"], "state": "done"}'));
    await writer.setRetained('presence/gw/a', json(online));
    expect(await service.deployment('gw')).toEqual({
      state: 'invalid',
      problem: expect.stringMatching(/^deployment record is invalid: "state"/),
    });
    expect((await service.modules('gw')).map((m) => [m.moduleId, m.state, m.deployed])).toEqual([
      ['a', 'online', false],
    ]);
    expect(await service.deployment('nothing-here')).toBeUndefined();
  });

  test('presences with terminal escapes, bad timestamps or an invalid key are rows with a problem', async () => {
    const service = await setUp();
    await writer.setRetained('presence/gw/escapes', json({ ...online, sdk: 'edgekit/9\u001b[2J\u001b[31m' }));
    await writer.setRetained('presence/gw/time', json({ ...online, since: 2 ** 60 }));
    await writer.setRetained('presence/gw/bad\u001b[1m', json(online));
    await writer.setRetained('presence/gw/fine', json(online));
    const rows = await service.modules('gw');
    expect(rows.map((m) => [m.moduleId, m.state, m.problem === undefined])).toEqual([
      ['bad\u001b[1m', 'unknown', false],
      ['escapes', 'unknown', false],
      ['fine', 'online', true],
      ['time', 'unknown', false],
    ]);
    expect(rows[0]?.problem).toMatch(/^presence key "presence\/gw\/bad\\u001b\[1m": module id/);
    expect(rows[1]?.problem).toMatch(/^invalid presence: presence "sdk" is not 1 to 100 printable ASCII/);
    expect(rows.every((m) => m.sdk === undefined || m.sdk === 'edgekit/0.1.0')).toBe(true);
  });

  test('devices() lists valid device ids and tells of keys that name none', async () => {
    const service = await setUp();
    await writer.setRetained('presence/gw/a', json(online));
    await writer.setRetained('deployment/dev\u009b2J', json({ modules: [] }));
    const invalid: RecordProblem[] = [];
    expect(await service.devices({ onInvalid: (p) => invalid.push(p) })).toEqual(['gw']);
    // The text is as read (JSON quoting leaves C1 controls alone): printing it is the printer's to make safe.
    expect(invalid).toEqual([
      { key: 'deployment/dev\u009b2J', problem: expect.stringMatching(/^device id "dev\u009b2J" is not allowed/) },
    ]);
    await expect(service.devices({ onInvalid: 1 as never })).rejects.toThrow(TypeError);
  });

  test('a desired document at version 2^53 does not silence later operator updates', async () => {
    const service = await setUp();
    const errors: EdgeKitError[] = [];
    const filter = await connect(Filter, {
      deviceId: 'gw',
      moduleId: 'filter',
      transport: memory({ broker }),
      onError: (e) => errors.push(e),
    });
    open.push(filter);
    const seen: Array<[number, unknown]> = [];
    await filter.onDesired((doc, _patch, version) => {
      seen.push([version, doc]);
    });
    await service.updateDesired('gw', 'filter', { threshold: 1 });
    await expect.poll(() => filter.desired().version).toBe(1);

    // 2^53: 2^53 + 1 is 2^53 again in a double, so a module that took it would ignore every later version.
    await writer.setRetained('twin/gw/filter/desired', json({ version: 2 ** 53, properties: { threshold: 666 } }));
    await expect.poll(() => errors.map((e) => e.code)).toContain('decode-failed');
    expect(errors.at(-1)?.message).toMatch(/^desired properties ignored: .*version 9007199254740992/);
    expect(filter.desired()).toEqual({ version: 1, properties: { threshold: 1 } });

    // A patch is refused, loudly, with the command that replaces the document; nothing is written.
    const refused = (await service
      .updateDesired('gw', 'filter', { threshold: 2 })
      .catch((e: unknown) => e)) as EdgeKitError;
    expect(refused.code).toBe('decode-failed');
    expect(refused.message).toMatch(
      /^desired properties of gw\/filter on the broker: version 9007199254740992 is out of range .*nothing was written.*edgekit twin set gw\/filter <json \| @file> --replace/,
    );
    await expect(service.getTwin('gw', 'filter')).rejects.toThrow(/--replace/);

    // Replacing it gives a version above any the module can have taken: the module applies it.
    const before = Date.now();
    const replaced = await service.replaceDesired('gw', 'filter', { threshold: 3 });
    expect(replaced.version).toBeGreaterThanOrEqual(before);
    await expect.poll(() => filter.desired()).toEqual({ version: replaced.version, properties: { threshold: 3 } });
    const updated = await service.updateDesired('gw', 'filter', { threshold: 4 });
    expect(updated.version).toBe(replaced.version + 1);
    await expect.poll(() => filter.desired().version).toBe(updated.version);
    expect(seen.map(([, doc]) => doc)).toEqual([{ threshold: 1 }, { threshold: 3 }, { threshold: 4 }]);
  });

  test('applyDeployment replaces an invalid desired document, says so, and the running module takes it', async () => {
    const service = await setUp();
    const filter = await connect(Filter, {
      deviceId: 'gw',
      moduleId: 'filter',
      transport: memory({ broker }),
      onError: () => undefined,
    });
    open.push(filter);
    await service.updateDesired('gw', 'filter', { threshold: 1 });
    await expect.poll(() => filter.desired().version).toBe(1);
    await writer.setRetained('twin/gw/filter/desired', json('{"version": 1e400, "properties": {}}'));
    const result = await service.applyDeployment('gw', {
      modulesContent: {
        $edgeAgent: { 'properties.desired': { modules: { filter: {} } } },
        $edgeHub: { 'properties.desired': { schemaVersion: '1.1', routes: {} } },
        filter: { 'properties.desired': { threshold: 9 } },
      },
    });
    expect(result.warnings).toEqual([
      expect.stringMatching(
        /^desired properties of gw\/filter on the broker: version Infinity is out of range .*; replaced with version \d+$/,
      ),
    ]);
    const version = result.desiredVersions.filter ?? 0;
    expect(version).toBeGreaterThan(1);
    await expect.poll(() => filter.desired()).toEqual({ version, properties: { threshold: 9 } });
  });

  test('a desired document at the largest version: patches are refused with twin-limit; a replacement says to restart', async () => {
    const service = await setUp();
    await writer.setRetained('twin/gw/m/desired', json({ version: MAX_TWIN_VERSION, properties: { a: 1 } }));
    expect((await service.getTwin('gw', 'm')).desired.version).toBe(MAX_TWIN_VERSION);
    await expect(service.updateDesired('gw', 'm', { a: 2 })).rejects.toMatchObject({
      code: 'twin-limit',
      message: expect.stringMatching(
        /version 9007199254740990 is the largest there is; nothing was written.*--replace.*restart the module/,
      ),
    });
    await expect(service.replaceDesired('gw', 'm', { a: 2 }, { ifVersion: 1 })).rejects.toMatchObject({
      code: 'version-conflict',
    });
    expect((await service.replaceDesired('gw', 'm', { a: 2 })).version).toBeLessThan(MAX_TWIN_VERSION);
  });

  test('a presence or method response that is invalid gives invoke a 502 result, not an exception', async () => {
    const service = await setUp();
    await writer.setRetained('presence/gw/m', json({ state: 'online', sdk: 'edgekit/\u001b]0;owned\u0007' }));
    const badPresence = await service.invoke('gw', 'm', 'x', null, { timeoutInMs: 5_000 });
    expect(badPresence).toMatchObject({ ok: false, status: 502, message: expect.stringMatching(/presence "sdk"/) });

    await writer.setRetained('presence/gw/m', json(online));
    await writer.serve('methods/gw/m', async () => json({ status: 2 ** 53, payload: { message: '\u001b[2J' } }));
    const badResponse = await service.invoke('gw', 'm', 'x', null, { timeoutInMs: 5_000 });
    expect(badResponse).toMatchObject({
      ok: false,
      status: 502,
      message: expect.stringMatching(/^gw\/m x: method response is not/),
    });
  });

  test('watchReported skips an invalid reported document and tells onError', async () => {
    const service = await setUp();
    const errors: EdgeKitError[] = [];
    const watch = await service.watchReported('gw', 'm', { onError: (e) => errors.push(e) });
    open.push(watch);
    await writer.setRetained('twin/gw/m/reported', json({ version: -3, properties: {} }));
    await writer.setRetained('twin/gw/m/reported', json({ version: 1, properties: { ok: true } }));
    const docs = [];
    for await (const doc of watch) {
      docs.push(doc);
      if (docs.length === 2) break;
    }
    expect(docs).toEqual([
      { version: 0, properties: {} },
      { version: 1, properties: { ok: true } },
    ]);
    expect(errors.map((e) => e.code)).toEqual(['decode-failed']);
  });
});
