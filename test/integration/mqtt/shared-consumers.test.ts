/**
 * Replicas of one module on a real Mosquitto: with `shareGroup`, connections with different client ids consuming one
 * address split its messages through an MQTT 5 shared subscription (each message to exactly one of them), served
 * addresses likewise; without it every connection gets every message.
 */
import { describe, expect, it } from 'vitest';
import type { TransportConnection } from '../../../src/transport.js';
import { text, transportFor, unique, useConnections, useMosquitto, utf8 } from './support/fixtures.js';
import { Inbox } from './support/wait.js';

const broker = useMosquitto();
const connections = useConnections();

async function replicas(count: number, options: { shareGroup?: string } = { shareGroup: 'edgekit' }) {
  const transport = transportFor(broker().url, options);
  const device = unique('dev');
  const list: TransportConnection[] = [];
  for (let i = 0; i < count; i++) list.push(await connections.open(transport, { clientId: `${device}/filter/r${i}` }));
  const producer = await connections.open(transport, { clientId: `${device}/producer` });
  return { transport, list, producer, address: `inputs/${device}/filter/in`, methods: `methods/${device}/filter` };
}

describe('shared consumers', () => {
  it('two replicas split one input stream: every message handled exactly once, by one of them', async () => {
    const { transport, list, producer, address } = await replicas(2);
    expect(transport.capabilities.sharedConsumers).toBe(true);
    const all = new Inbox<{ replica: number; body: string }>();
    for (const [replica, connection] of list.entries()) {
      await connection.consume(address, { prefetch: 1 }, (delivery) => {
        all.push({ replica, body: text(delivery.bytes)! });
        delivery.ack();
      });
    }
    const sent = Array.from({ length: 200 }, (_, i) => `m${i}`);
    for (const body of sent) await producer.publish(address, utf8(body));
    const got = await all.take(200, 10_000);
    expect(got.map((g) => g.body).sort()).toEqual([...sent].sort());
    const perReplica = [0, 1].map((r) => got.filter((g) => g.replica === r).length);
    expect(perReplica[0]).toBeGreaterThan(0);
    expect(perReplica[1]).toBeGreaterThan(0);
    // each replica sees its share in publish order
    for (const r of [0, 1]) {
      const mine = got.filter((g) => g.replica === r).map((g) => Number(g.body.slice(1)));
      expect(mine).toEqual([...mine].sort((a, b) => a - b));
    }
  });

  it('two replicas serving one address answer each request once', async () => {
    const { list, producer, methods } = await replicas(2);
    const handledBy = new Inbox<number>();
    for (const [replica, connection] of list.entries()) {
      await connection.serve(methods, async (request) => {
        handledBy.push(replica);
        return utf8(`r${replica}:${text(request)}`);
      });
    }
    const replies = await Promise.all(
      Array.from({ length: 40 }, (_, i) => producer.request(methods, utf8(String(i)), { timeoutInMs: 5_000 })),
    );
    expect(replies.map((r) => text(r)!.split(':')[1])).toEqual(Array.from({ length: 40 }, (_, i) => String(i)));
    expect(handledBy.items).toHaveLength(40);
    expect(new Set(handledBy.items)).toEqual(new Set([0, 1]));
  });

  it('after one replica closes gracefully, the other answers every request', async () => {
    const { list, producer, methods } = await replicas(2);
    for (const [replica, connection] of list.entries()) {
      await connection.serve(methods, async () => utf8(`r${replica}`));
    }
    await list[0]!.close();
    const replies = await Promise.all(
      Array.from({ length: 10 }, () => producer.request(methods, utf8('x'), { timeoutInMs: 5_000 })),
    );
    expect(replies.map(text)).toEqual(Array.from({ length: 10 }, () => 'r1'));
  });

  it('without a shareGroup every connection gets every message', async () => {
    const { transport, list, producer, address } = await replicas(2, {});
    expect(transport.capabilities.sharedConsumers).toBe(false);
    const inboxes = list.map(() => new Inbox<string>());
    for (const [i, connection] of list.entries()) {
      await connection.consume(address, { prefetch: 10 }, (delivery) => {
        inboxes[i]!.push(text(delivery.bytes)!);
        delivery.ack();
      });
    }
    for (let i = 0; i < 10; i++) await producer.publish(address, utf8(`m${i}`));
    const expected = Array.from({ length: 10 }, (_, i) => `m${i}`);
    expect(await inboxes[0]!.take(10, 5_000)).toEqual(expected);
    expect(await inboxes[1]!.take(10, 5_000)).toEqual(expected);
  });
});
