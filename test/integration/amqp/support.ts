/**
 * Shared pieces of the AMQP integration suites: the shared broker from global-setup.ts, a fresh prefix per test so
 * suites never see each other's queues, a raw amqplib connection to look at the broker, and event inboxes that wait
 * with a timeout.
 */
import { randomUUID } from 'node:crypto';
import * as amqplib from 'amqplib';
import { inject } from 'vitest';
import type { Transport, TransportConnection, TransportConnectOptions } from '../../../src/transport.js';
import { amqp } from '../../../src/transports/amqp/index.js';
import type { AmqpTransportOptions } from '../../../src/transports/amqp/options.js';
import type { SharedRabbitMQ } from './global-setup.js';

export function sharedRabbitMQ(): SharedRabbitMQ {
  const broker = inject('rabbitmq');
  if (broker === undefined) {
    throw new Error(
      'no shared RabbitMQ: run the AMQP integration tests with test/integration/amqp/global-setup.ts as vitest globalSetup',
    );
  }
  return broker;
}

/** Restarts the shared broker (same port and data). Suites that call it must not run beside other AMQP suites. */
export async function restartRabbitMQ(): Promise<void> {
  const response = await fetch(`${sharedRabbitMQ().controlUrl}/restart`, { method: 'POST' });
  if (!response.ok) throw new Error(`restart failed: ${response.status} ${await response.text()}`);
}

/** A prefix no other test uses, so every test has its own exchanges and queues on the shared broker. */
export function uniquePrefix(): string {
  return `t${randomUUID().slice(0, 12)}`;
}

export function bytes(text: string): Uint8Array {
  return new TextEncoder().encode(text);
}

export function text(value: Uint8Array | undefined): string | undefined {
  return value === undefined ? undefined : new TextDecoder().decode(value);
}

/** A transport on the shared broker with a fresh prefix (unless one is given). */
export function testTransport(options: Partial<AmqpTransportOptions> = {}): Transport {
  return amqp({ url: sharedRabbitMQ().url, prefix: uniquePrefix(), ...options });
}

/** Connects and registers the connection for {@link closeAll}. */
export async function open(
  transport: Transport,
  options: Partial<TransportConnectOptions> = {},
  opened?: TransportConnection[],
): Promise<TransportConnection> {
  const connection = await transport.connect({ clientId: `c-${randomUUID().slice(0, 8)}`, ...options });
  opened?.push(connection);
  return connection;
}

export async function closeAll(connections: TransportConnection[]): Promise<void> {
  await Promise.all(connections.splice(0).map((c) => c.close()));
}

/** A raw amqplib connection to inspect the broker the way an operator would. */
export async function rawConnection(url = sharedRabbitMQ().url): Promise<amqplib.ChannelModel> {
  const connection = await amqplib.connect(url);
  connection.on('error', () => undefined);
  return connection;
}

/** Messages in a queue that are ready (not held by a consumer); `undefined` when the queue does not exist. */
export async function readyCount(connection: amqplib.ChannelModel, queue: string): Promise<number | undefined> {
  const channel = await connection.createChannel();
  channel.on('error', () => undefined);
  try {
    return (await channel.checkQueue(queue)).messageCount;
  } catch {
    return undefined;
  } finally {
    await channel.close().catch(() => undefined);
  }
}

/** Resolves with `promise` or rejects once `ms` passed, naming what was awaited. */
export function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

/** Re-checks `condition` until it holds, for broker state that has no event; fails after `ms`. */
export async function until(condition: () => Promise<boolean> | boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** Collects values pushed by a callback; `next()` waits for the next one with a timeout. */
export class Inbox<T> {
  readonly items: T[] = [];
  private read = 0;
  private waiters: Array<() => void> = [];

  readonly push = (item: T): void => {
    this.items.push(item);
    for (const wake of this.waiters.splice(0)) wake();
  };

  /** The next item not yet returned by `next`. */
  async next(ms = 5_000, what = 'the next item'): Promise<T> {
    const deadline = Date.now() + ms;
    while (this.read >= this.items.length) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
      await within(new Promise<void>((resolve) => this.waiters.push(resolve)), left, what).catch(() => undefined);
    }
    return this.items[this.read++] as T;
  }

  /** Waits until at least `count` items arrived. */
  async count(count: number, ms = 5_000, what = `${count} items`): Promise<T[]> {
    await until(() => this.items.length >= count, ms, what);
    return this.items;
  }
}
