/**
 * Failures reach the caller as `EdgeKitError`s with a code, never as amqplib errors: refused, wrong credentials,
 * unknown vhost, a silent server (timeout), abort, a queue declared with other arguments, a missing amqplib, and
 * use after close.
 */
import net from 'node:net';
import * as amqplib from 'amqplib';
import { afterEach, describe, expect, it } from 'vitest';
import { isEdgeKitError } from '../../../src/errors.js';
import type { TransportConnection } from '../../../src/transport.js';
import { amqp } from '../../../src/transports/amqp/index.js';
import { loadAmqplib } from '../../../src/transports/amqp/load.js';
import type { AmqplibModule } from '../../../src/transports/amqp/options.js';
import { freePort } from '../support/loopback.js';
import { bytes, closeAll, open, sharedRabbitMQ, testTransport, text, uniquePrefix } from './support.js';

const opened: TransportConnection[] = [];
afterEach(() => closeAll(opened));

async function connectError(url: string, options: { timeoutInMs?: number; abortSignal?: AbortSignal } = {}) {
  return amqp({ url })
    .connect({ clientId: 'probe', ...options })
    .then(
      async (connection) => {
        await connection.close();
        throw new Error('connected unexpectedly');
      },
      (error: unknown) => error,
    );
}

describe('connect errors', () => {
  it('refused port → connection-failed (refused)', async () => {
    const error = await connectError(`amqp://127.0.0.1:${await freePort()}`);
    expect(isEdgeKitError(error, 'connection-failed')).toBe(true);
    expect(isEdgeKitError(error) && error.details.reason).toBe('refused');
  });

  it('wrong password → connection-failed (authentication), without the password in the message', async () => {
    const error = await connectError(`amqp://guest:not-the-password@127.0.0.1:${sharedRabbitMQ().port}`);
    expect(isEdgeKitError(error, 'connection-failed')).toBe(true);
    expect(isEdgeKitError(error) && error.details.reason).toBe('authentication');
    expect(String(isEdgeKitError(error) && error.message)).not.toContain('not-the-password');
  });

  it('unknown vhost → connection-failed (vhost)', async () => {
    const error = await connectError(`amqp://guest:guest@127.0.0.1:${sharedRabbitMQ().port}/no-such-vhost`);
    expect(isEdgeKitError(error, 'connection-failed')).toBe(true);
    expect(isEdgeKitError(error) && error.details.reason).toBe('vhost');
  });

  it('a server that never answers → timeout within the budget; abort → aborted', async () => {
    const sockets = new Set<net.Socket>();
    const silent = net.createServer((socket) => sockets.add(socket)); // accepts, says nothing
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const port = (silent.address() as net.AddressInfo).port;
    try {
      const started = Date.now();
      const error = await connectError(`amqp://127.0.0.1:${port}`, { timeoutInMs: 300 });
      expect(isEdgeKitError(error, 'timeout')).toBe(true);
      expect(Date.now() - started).toBeLessThan(2_000);

      const controller = new AbortController();
      const pending = connectError(`amqp://127.0.0.1:${port}`, { abortSignal: controller.signal });
      controller.abort();
      expect(isEdgeKitError(await pending, 'aborted')).toBe(true);
      expect(
        isEdgeKitError(await connectError(`amqp://127.0.0.1:${port}`, { abortSignal: controller.signal }), 'aborted'),
      ).toBe(true);
    } finally {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => silent.close(resolve));
    }
  });
});

describe('operation errors', () => {
  it('a queue declared with other arguments → invalid-configuration; the connection stays usable', async () => {
    const prefix = uniquePrefix();
    const plain = await open(testTransport({ prefix }), {}, opened);
    await plain.publish('inputs/d1/m1/in', bytes('a'));
    const prioritised = await open(testTransport({ prefix, priorities: true }), {}, opened);
    const error = await prioritised.publish('inputs/d1/m1/in', bytes('b')).catch((e: unknown) => e);
    expect(isEdgeKitError(error, 'invalid-configuration')).toBe(true);
    expect(isEdgeKitError(error) && error.details.amqpReplyCode).toBe(406);
    // Only the declaration failed: the same connection still works.
    await prioritised.setRetained('twin/d1/m1/reported', bytes('ok'));
    expect(text(await prioritised.getRetained('twin/d1/m1/reported'))).toBe('ok');
    await prioritised.publish('inputs/d1/m2/in', bytes('c'));
    let closedYet = false;
    void prioritised.closed.then(() => {
      closedYet = true;
    });
    await prioritised.getRetained('twin/d1/m1/reported');
    expect(closedYet).toBe(false);
  });

  it('after close(): closed resolves undefined and every method rejects with closed', async () => {
    const connection = await open(testTransport(), {}, opened);
    await connection.close();
    await connection.close(); // idempotent
    expect(await connection.closed).toBeUndefined();
    const calls = [
      connection.publish('inputs/d/m/i', bytes('x')),
      connection.consume('inputs/d/m/i', { prefetch: 1 }, () => undefined),
      connection.setRetained('twin/d/m/desired', bytes('x')),
      connection.getRetained('twin/d/m/desired'),
      connection.watchRetained('twin/d/m/desired', () => undefined),
      connection.request('methods/d/m', bytes('x'), { timeoutInMs: 1_000 }),
      connection.serve('methods/d/m', async () => bytes('x')),
    ];
    for (const call of calls) await expect(call).rejects.toSatisfy((e) => isEdgeKitError(e, 'closed'));
  });
});

describe('amqplib as an optional peer dependency', () => {
  it('reports a missing amqplib as missing-dependency naming the install command', async () => {
    const notInstalled = Object.assign(new Error("Cannot find package 'amqplib'"), { code: 'ERR_MODULE_NOT_FOUND' });
    const error = await loadAmqplib(() => Promise.reject(notInstalled)).catch((e: unknown) => e);
    expect(isEdgeKitError(error, 'missing-dependency')).toBe(true);
    expect(isEdgeKitError(error) && error.message).toContain('npm install amqplib');
  });

  it('loads the installed amqplib lazily, and uses an injected one when given', async () => {
    expect(typeof (await loadAmqplib()).connect).toBe('function');
    let calls = 0;
    const lib: AmqplibModule = {
      connect: (url, socketOptions) => {
        calls++;
        return amqplib.connect(url, socketOptions);
      },
    };
    const connection = await amqp({ url: sharedRabbitMQ().url, lib, prefix: uniquePrefix() }).connect({
      clientId: 'lib',
    });
    opened.push(connection);
    expect(calls).toBe(1);
  });
});
