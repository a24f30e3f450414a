// Races around the connection lifecycle, driven by a transport whose connects wait on the test.
import { describe, expect, test } from 'vitest';
import { json } from '../codecs/codec.js';
import { typed } from '../codecs/schema.js';
import { connect } from '../connect.js';
import { EdgeKitError } from '../errors.js';
import { addresses } from '../names.js';
import { deployRoutes, readPresence, updateDesired } from '../service/operations.js';
import type { Transport } from '../transport.js';
import { MemoryBroker, type MemoryConnection } from '../transports/memory/broker.js';
import { defineModule } from './contract.js';
import { encodeEnvelope } from './envelope.js';

/** A memory transport whose connects after the first wait until `open()`; `drop()` cuts the live connection. */
function gatedTransport(broker: MemoryBroker) {
  const base = broker.transport();
  let gate: Promise<void> | undefined;
  let open = () => {};
  let live: MemoryConnection | undefined;
  let connecting = 0;
  const transport: Transport = {
    ...base,
    connect: async (options) => {
      connecting++;
      if (gate) await gate;
      const conn = (await base.connect(options)) as MemoryConnection;
      live = conn;
      return conn;
    },
  };
  return {
    transport,
    hold() {
      gate = new Promise((resolve) => {
        open = resolve;
      });
    },
    open: () => open(),
    drop: () => live?.end(new EdgeKitError('connection-lost', 'cut'), true),
    get connecting() {
      return connecting;
    },
  };
}

const Sink = defineModule({ inputs: { in: json<number>() }, desired: typed<{ v?: number }>() });
const poll = async (done: () => boolean | Promise<boolean>, what: string) => {
  const deadline = Date.now() + 5_000;
  while (!(await done())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
};

describe('lifecycle races', () => {
  test('close() while a reconnect is connecting: the new connection is closed, the module stays offline', async () => {
    const broker = new MemoryBroker();
    const gated = gatedTransport(broker);
    const client = await connect(Sink, {
      deviceId: 'd',
      moduleId: 'm',
      transport: gated.transport,
      reconnect: { initialDelayInMs: 1 },
    });
    gated.hold();
    gated.drop();
    await poll(() => gated.connecting === 2, 'the reconnect to start connecting');
    const closing = client.close();
    gated.open();
    await closing;
    await poll(() => broker.connectedClients().length === 0, 'no connection left');
    const op = await broker.transport().connect({ clientId: 'op' });
    expect((await readPresence(op, 'd', 'm'))?.state).toBe('offline');
  });

  test('an input registered while the connection is being set up is attached', async () => {
    const broker = new MemoryBroker();
    const gated = gatedTransport(broker);
    const client = await connect(Sink, {
      deviceId: 'd',
      moduleId: 'm',
      transport: gated.transport,
      reconnect: { initialDelayInMs: 1 },
    });
    gated.hold();
    gated.drop();
    await poll(() => gated.connecting === 2, 'the reconnect to start connecting');
    const got: number[] = [];
    const registering = client.onInput('in', (m) => {
      got.push(m.body);
    });
    gated.open();
    await registering;
    const op = await broker.transport().connect({ clientId: 'op' });
    await op.publish(
      addresses.input('d', 'm', 'in'),
      encodeEnvelope(
        {
          messageId: 'x',
          createdAt: 0,
          sourceDeviceId: 'd',
          sourceModuleId: 'op',
          properties: {},
          contentType: 'application/json',
        },
        new TextEncoder().encode('7'),
      ),
    );
    await poll(() => got.length === 1, 'the message');
    expect(got).toEqual([7]);
    await client.close();
  });

  test('a handler returning a thenable (not a native Promise) is awaited before the ack, and its rejection is retried', async () => {
    const broker = new MemoryBroker();
    const transport = broker.transport();
    const client = await connect(Sink, { deviceId: 'd', moduleId: 'm', transport, retryDelayInMs: 0 });
    const attempts: number[] = [];
    let finished = false;
    await client.onInput('in', (m) => {
      attempts.push(m.attempt);
      const thenable = {
        // biome-ignore lint/suspicious/noThenProperty: the point of the test is a non-Promise thenable
        then(resolve: () => void, reject: (e: unknown) => void) {
          setTimeout(() => {
            if (m.attempt === 1) reject(new Error('first try fails'));
            else {
              finished = true;
              resolve();
            }
          }, 20);
        },
      };
      return thenable as unknown as Promise<void>;
    });
    const op = await transport.connect({ clientId: 'op' });
    await deployRoutes(op, 'd', {});
    await op.publish(
      addresses.input('d', 'm', 'in'),
      encodeEnvelope(
        {
          messageId: 'x',
          createdAt: 0,
          sourceDeviceId: 'd',
          sourceModuleId: 'op',
          properties: {},
          contentType: 'application/json',
        },
        new TextEncoder().encode('1'),
      ),
    );
    await poll(() => finished, 'the second attempt');
    expect(attempts).toEqual([1, 2]);
    expect(client.stats()).toMatchObject({ processed: 1, handlerErrors: 1, deadLettered: 0 });
    await client.close();
  });

  test('a handler registered while a desired change is being applied never sees an older version after a newer one', async () => {
    const broker = new MemoryBroker();
    const transport = broker.transport();
    const op = await transport.connect({ clientId: 'op' });
    await updateDesired(op, 'd', 'm', { v: 1 });
    const client = await connect(Sink, { deviceId: 'd', moduleId: 'm', transport });
    let release = () => {};
    const slow = new Promise<void>((resolve) => {
      release = resolve;
    });
    await client.onDesired(async (d) => {
      if (d.v === 2) await slow;
    });
    await updateDesired(op, 'd', 'm', { v: 2 });
    await new Promise((resolve) => setTimeout(resolve, 20)); // v2's handler is now running (held)
    await updateDesired(op, 'd', 'm', { v: 3 }); // v3 waits behind it
    await new Promise((resolve) => setTimeout(resolve, 20));
    const seen: number[] = [];
    const registering = client.onDesired((_d, _p, version) => {
      seen.push(version);
    });
    release();
    await registering;
    await poll(() => seen.includes(3), 'version 3');
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(seen).toEqual([3]);
    await client.close();
  });
});
