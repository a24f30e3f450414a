// A memory broker that enforces an access plan, as a broker configured by `edgekit identities` does: modules work
// within their deployment, and every step outside it is refused with not-authorized.
import { describe, expect, test } from 'vitest';
import { json } from '../../codecs/codec.js';
import { typed } from '../../codecs/schema.js';
import { connect } from '../../connect.js';
import { defineModule, method } from '../../core/contract.js';
import { isEdgeKitError } from '../../errors.js';
import { planAccess } from '../../service/access.js';
import { connectService } from '../../service/client.js';
import { readDeployment } from '../../service/deployment.js';
import { MemoryBroker, memory } from './index.js';

const manifest = {
  modulesContent: {
    $edgeAgent: {
      'properties.desired': {
        modules: { sensor: { type: 'docker' }, filter: { type: 'docker' }, other: { type: 'docker' } },
      },
    },
    $edgeHub: {
      'properties.desired': {
        schemaVersion: '1.1',
        routes: { r: 'FROM /messages/modules/sensor/outputs/* INTO BrokeredEndpoint("/modules/filter/inputs/in")' },
      },
    },
  },
};
const deployment = readDeployment(manifest);

const Sensor = defineModule({ outputs: { out: json<number>() } });
const Filter = defineModule({
  inputs: { in: json<number>() },
  reported: typed<{ seen?: number }>(),
  methods: { ping: method(typed<null>(), typed<string>()) },
});

async function setUp() {
  const broker = new MemoryBroker({ access: planAccess(deployment, 'gw').principals });
  const transport = memory({ broker });
  const service = await connectService({ transport });
  await service.applyDeployment('gw', manifest);
  return { broker, transport, service };
}

const refused = (e: unknown) => isEdgeKitError(e, 'not-authorized');

describe('a memory broker with an access plan', () => {
  test('modules work within their deployment: routes deliver, methods answer, twins are written', async () => {
    const { transport, service } = await setUp();
    const filter = await connect(Filter, { deviceId: 'gw', moduleId: 'filter', transport });
    const seen: number[] = [];
    await filter.onInput('in', (m) => {
      seen.push(m.body);
    });
    await filter.handle('ping', () => 'pong');
    const sensor = await connect(Sensor, { deviceId: 'gw', moduleId: 'sensor', transport });
    await sensor.send('out', 7);
    await expect.poll(() => seen).toEqual([7]);
    expect(await filter.report({ seen: 7 })).toBe(1);
    expect((await service.invoke('gw', 'filter', 'ping', null, { timeoutInMs: 5_000 })).payload).toBe('pong');
    await Promise.all([filter.close(), sensor.close(), service.close()]);
  });

  test('every step outside the deployment is refused with not-authorized', async () => {
    const { transport, service } = await setUp();
    const other = await transport.connect({ clientId: 'gw/other', identity: 'gw/other' });
    const bytes = new TextEncoder().encode('{}');
    await expect(other.consume('inputs/gw/filter/in', { prefetch: 1 }, () => undefined)).rejects.toSatisfy(refused);
    await expect(other.publish('inputs/gw/filter/in', bytes)).rejects.toSatisfy(refused);
    await expect(other.setRetained('twin/gw/filter/reported', bytes)).rejects.toSatisfy(refused);
    await expect(other.setRetained('twin/gw/other/desired', bytes)).rejects.toSatisfy(refused);
    await expect(other.setRetained('routes/gw', bytes)).rejects.toSatisfy(refused);
    await expect(other.setRetained('deployment/gw', bytes)).rejects.toSatisfy(refused);
    await expect(other.setRetained('presence/gw/filter', bytes)).rejects.toSatisfy(refused);
    await expect(other.getRetained('twin/gw/filter/desired')).rejects.toSatisfy(refused);
    await expect(other.serve('methods/gw/filter', async () => bytes)).rejects.toSatisfy(refused);
    await expect(other.observe('inputs/gw/*/*', () => undefined)).rejects.toSatisfy(refused);
    // Its own things work.
    await other.setRetained('twin/gw/other/reported', bytes);
    expect(await other.getRetained('routes/gw')).toBeDefined();
    await other.close();
    await service.close();
  });

  test('a module the broker refuses fails its first connect at once, not after connectTimeoutInMs', async () => {
    const { transport, service } = await setUp();
    const started = Date.now();
    const error = await connect(Sensor, {
      deviceId: 'gw',
      moduleId: 'ghost',
      transport,
      connectTimeoutInMs: 60_000,
    }).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'connection-failed', details: { reason: 'not-authorized' } });
    expect(Date.now() - started).toBeLessThan(5_000);
    await service.close();
  });

  test('a connection that is no principal, or speaks for another, is refused at connect', async () => {
    const { transport, service } = await setUp();
    await expect(transport.connect({ clientId: 'gw/ghost', identity: 'gw/ghost' })).rejects.toMatchObject({
      code: 'connection-failed',
      details: { reason: 'not-authorized' },
    });
    await expect(transport.connect({ clientId: 'gw/other', identity: 'gw/filter' })).rejects.toThrow(
      /speaks for gw\/filter/,
    );
    await expect(
      transport.connect({
        clientId: 'gw/other',
        identity: 'gw/other',
        will: { key: 'presence/gw/filter', value: new Uint8Array([1]) },
      }),
    ).rejects.toThrow(/last will writes presence\/gw\/filter/);
    await service.close();
  });
});
