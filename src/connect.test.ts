import { describe, expect, test } from 'vitest';
import { json } from './codecs/codec.js';
import { connect, fromEnvironment } from './connect.js';
import { defineModule } from './core/contract.js';
import { EdgeKitError } from './errors.js';
import type { Transport } from './transport.js';
import { MemoryBroker, memory } from './transports/memory/index.js';
import { mqtt } from './transports/mqtt/index.js';

const M = defineModule({ outputs: { out: json<number>() } });

describe('fromEnvironment', () => {
  test('reads the IoT Edge identity; memory: by default', async () => {
    const broker = new MemoryBroker();
    const client = await fromEnvironment(M, {
      env: { IOTEDGE_DEVICEID: 'dev1', IOTEDGE_MODULEID: 'filter' },
      memory: () => memory({ broker }),
    });
    expect([client.deviceId, client.moduleId]).toEqual(['dev1', 'filter']);
    expect(broker.connectedClients()).toEqual(['dev1/filter']);
    await client.close();
  });

  test('one error lists everything missing or invalid', async () => {
    const error = await fromEnvironment(M, {
      env: { EDGEKIT_BROKER_URL: 'mqtts://broker:8883', EDGEKIT_CA_FILE: '/nonexistent/ca.pem' },
      readFile: () => {
        throw new Error('ENOENT');
      },
    }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(EdgeKitError);
    expect((error as EdgeKitError).code).toBe('invalid-configuration');
    const message = (error as EdgeKitError).message;
    expect(message).toContain('IOTEDGE_DEVICEID is not set');
    expect(message).toContain('IOTEDGE_MODULEID is not set');
    expect(message).toContain('EDGEKIT_CA_FILE: cannot read /nonexistent/ca.pem');
    expect(message).toContain("pass { transports: { mqtt } } from 'edgekit/mqtt'");
  });

  test('hands URL, credentials and TLS files to the transport factory of the URL scheme', async () => {
    const broker = new MemoryBroker();
    const seen: unknown[] = [];
    const fake = (options: unknown): Transport => {
      seen.push(options);
      return memory({ broker });
    };
    const client = await fromEnvironment(M, {
      env: {
        IOTEDGE_DEVICEID: 'd',
        IOTEDGE_MODULEID: 'm',
        EDGEKIT_BROKER_URL: 'amqps://rabbit:5671',
        EDGEKIT_USERNAME: 'u',
        EDGEKIT_PASSWORD: 'p',
        EDGEKIT_CA_FILE: '/ca.pem',
        EDGEKIT_REPLICA_ID: 'r2',
      },
      readFile: (path) => `PEM of ${path}`,
      transports: { amqp: fake },
    });
    expect(seen).toEqual([{ url: 'amqps://rabbit:5671', username: 'u', password: 'p', tls: { ca: 'PEM of /ca.pem' } }]);
    expect(broker.connectedClients()).toEqual(['d/m/r2']);
    await client.close();
  });

  test('reads the password from EDGEKIT_PASSWORD_FILE; the user name defaults to the module identity', async () => {
    const broker = new MemoryBroker();
    const seen: unknown[] = [];
    const fake = (options: unknown): Transport => {
      seen.push(options);
      return memory({ broker });
    };
    const client = await fromEnvironment(M, {
      env: {
        IOTEDGE_DEVICEID: 'gw-1',
        IOTEDGE_MODULEID: 'filter',
        EDGEKIT_BROKER_URL: 'mqtts://broker:8883',
        EDGEKIT_PASSWORD_FILE: '/run/secrets/filter',
      },
      readFile: (path) => (path === '/run/secrets/filter' ? 's3cret\n' : ''),
      transports: { mqtt: fake },
    });
    expect(seen).toEqual([{ url: 'mqtts://broker:8883', username: 'gw-1/filter', password: 's3cret' }]);
    await client.close();
  });

  test('a password file that cannot be read, is empty, or comes with EDGEKIT_PASSWORD is a problem listed', async () => {
    const env = { IOTEDGE_DEVICEID: 'gw-1', IOTEDGE_MODULEID: 'filter', EDGEKIT_BROKER_URL: 'mqtt://broker' };
    const problems = async (extra: Record<string, string>, content: string | Error) => {
      const error = await fromEnvironment(M, {
        env: { ...env, ...extra },
        readFile: () => {
          if (content instanceof Error) throw content;
          return content;
        },
        transports: { mqtt },
      }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(EdgeKitError);
      return (error as EdgeKitError).message;
    };
    expect(await problems({ EDGEKIT_PASSWORD_FILE: '/x' }, new Error('EACCES'))).toContain(
      'EDGEKIT_PASSWORD_FILE: cannot read /x (EACCES)',
    );
    expect(await problems({ EDGEKIT_PASSWORD_FILE: '/x' }, '\n')).toContain('EDGEKIT_PASSWORD_FILE: /x is empty');
    const both = await problems({ EDGEKIT_PASSWORD_FILE: '/x', EDGEKIT_PASSWORD: 'hunter2' }, 'other');
    expect(both).toContain('give EDGEKIT_PASSWORD or EDGEKIT_PASSWORD_FILE, not both');
    expect(both).not.toContain('hunter2');
  });

  test('the mqtt factory fits the transports option as it is', () => {
    const options: Parameters<typeof fromEnvironment>[1] = { transports: { mqtt } };
    expect(options.transports?.mqtt).toBe(mqtt);
  });

  test('invalid identity values are listed with the rest, not thrown separately', async () => {
    const error = await fromEnvironment(M, {
      env: { IOTEDGE_DEVICEID: 'dev/1', IOTEDGE_MODULEID: 'm', EDGEKIT_REPLICA_ID: 'r 1', EDGEKIT_BROKER_URL: 'nope' },
    }).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'invalid-configuration' });
    expect((error as Error).message).toMatch(
      /IOTEDGE_DEVICEID: device id "dev\/1" is not allowed[\s\S]*EDGEKIT_REPLICA_ID[\s\S]*EDGEKIT_BROKER_URL/,
    );
  });

  test('a URL that is not a URL is reported', async () => {
    await expect(
      fromEnvironment(M, { env: { IOTEDGE_DEVICEID: 'd', IOTEDGE_MODULEID: 'm', EDGEKIT_BROKER_URL: 'not a url' } }),
    ).rejects.toThrow(/EDGEKIT_BROKER_URL "not a url" is not a URL/);
  });
});

describe('connect', () => {
  test('validates its arguments', async () => {
    await expect(connect({} as never, { deviceId: 'd', moduleId: 'm' })).rejects.toThrow(TypeError);
    await expect(connect(M, null as never)).rejects.toThrow(TypeError);
    await expect(connect(M, { deviceId: 'd', moduleId: 'm', transport: {} as never })).rejects.toThrow(TypeError);
    await expect(connect(M, { deviceId: 'd', moduleId: 'm', maxAttempts: 0 })).rejects.toThrow(RangeError);
    await expect(
      connect(M, { deviceId: 'd', moduleId: 'm', offlineQueue: { policy: 'lifo' as never } }),
    ).rejects.toThrow(RangeError);
    await expect(connect(M, { deviceId: 'd', moduleId: 'm', reconnect: { jitter: 2 } })).rejects.toThrow(RangeError);
  });

  test('gives up the first connection after connectTimeoutInMs with connection-failed', async () => {
    const refusing: Transport = {
      name: 'refusing',
      capabilities: { keepsMessagesBeforeFirstConsumer: false, sharedConsumers: false, listsRetained: false },
      connect: async () => {
        throw new EdgeKitError('connection-failed', 'refused');
      },
    };
    const started = Date.now();
    await expect(
      connect(M, {
        deviceId: 'd',
        moduleId: 'm',
        transport: refusing,
        connectTimeoutInMs: 300,
        reconnect: { initialDelayInMs: 20 },
      }),
    ).rejects.toMatchObject({ code: 'connection-failed' });
    expect(Date.now() - started).toBeLessThan(2_000);
  });

  test('without a transport, modules in one process share the default memory broker', async () => {
    const Receiver = defineModule({ inputs: { in: json<number>() } });
    const a = await connect(M, { deviceId: 'shared', moduleId: 'a' });
    const b = await connect(Receiver, { deviceId: 'shared', moduleId: 'b' });
    const twin = await a.getTwin();
    expect(twin.desired.version).toBe(0);
    await Promise.all([a.close(), b.close()]);
  });

  test('an aborted signal stops connecting', async () => {
    await expect(connect(M, { deviceId: 'd', moduleId: 'm', abortSignal: AbortSignal.abort() })).rejects.toMatchObject({
      code: 'aborted',
    });
  });
});
