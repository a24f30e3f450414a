/**
 * Presence of a module that runs as replicas, on a real Mosquitto. Every replica writes the same retained key,
 * `presence/<device>/<module>`, and registers the same last will; when one replica closes, the module must come
 * back online (the remaining replica writes it again) so that `invoke` reaches the replica still serving instead of
 * answering 404. Written when the core still marked the module offline here; the core now restores it.
 */
import { describe, expect, it } from 'vitest';
import { decodePresence } from '../../../src/core/wire.js';
import { defineModule, method, typed } from '../../../src/index.js';
import { addresses } from '../../../src/names.js';
import { useModules } from './fixtures/module-clients.js';
import { transportFor, unique, useConnections, useMosquitto } from './support/fixtures.js';
import { Inbox } from './support/wait.js';

const broker = useMosquitto();
const connections = useConnections();
const modules = useModules();

const Worker = defineModule({
  methods: { whoami: method(typed<Record<string, never>>(), typed<{ replica: string }>()) },
});

describe('presence of a replicated module', () => {
  it('comes back online when one of two replicas closes, and the other answers methods', async () => {
    const deviceId = unique('dev');
    const operator = await connections.open(transportFor(broker().url), { clientId: `${deviceId}/operator` });
    const shared = transportFor(broker().url, { shareGroup: 'edgekit' });
    const replicas = [];
    for (const replicaId of ['r1', 'r2']) {
      const replica = await modules.connect(Worker, { deviceId, moduleId: 'worker', replicaId, transport: shared });
      await replica.client.handle('whoami', () => ({ replica: replicaId }));
      replicas.push(replica);
    }
    const caller = await modules.connect(Worker, {
      deviceId,
      moduleId: 'caller',
      transport: transportFor(broker().url),
    });
    const before = await caller.client.invoke(Worker, 'worker', 'whoami', {}, { timeoutInMs: 5_000 });
    expect(before.ok).toBe(true);

    await replicas[0]!.client.close();
    // The closing replica writes offline; the live one answers by writing online again (one broker round trip).
    const online = new Inbox<string | undefined>();
    await operator.watchRetained(addresses.presence(deviceId, 'worker'), (v) => online.push(decodePresence(v)?.state));
    await online.find((state) => state === 'online', 5_000, 'the module to be online again');
    const after = await caller.client.invoke(Worker, 'worker', 'whoami', {}, { timeoutInMs: 5_000 });
    expect(after).toMatchObject({ ok: true, status: 200, payload: { replica: 'r2' } });
  });
});
