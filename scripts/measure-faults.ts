/**
 * Measures what edgekit guarantees under each fault, on real brokers started here (Mosquitto with
 * docs/brokers/mosquitto.conf, RabbitMQ with docs/brokers/rabbitmq.conf): a sender module streams numbered messages
 * to a receiver module through routes while a fault hits one of them, each through its own loopback proxy. Prints,
 * per scenario and transport, the messages acknowledged to the sender and lost (never handled), handled twice, and
 * the time to recover. docs/reliability.md quotes its output.
 *
 *   npm run measure:faults            # every scenario
 *   npm run measure:faults -- outage  # scenarios whose name contains "outage"
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { type ConnectionStatus, connect, defineModule, json, type ModuleClient } from '../src/index.js';
import { deployRoutes } from '../src/service/operations.js';
import type { Transport } from '../src/transport.js';
import { amqp } from '../src/transports/amqp/index.js';
import { mqtt } from '../src/transports/mqtt/index.js';
import { startMosquitto } from '../test/integration/brokers/mosquitto.js';
import { startRabbitMQ } from '../test/integration/brokers/rabbitmq.js';
import { startTcpProxy } from '../test/integration/support/tcp-proxy.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const doc = (name: string) => readFileSync(path.join(ROOT, 'docs/brokers', name), 'utf8');

const Sender = defineModule({ outputs: { out: json<{ n: number }>() } });
const Receiver = defineModule({ inputs: { in: json<{ n: number }>() } });

interface Broker {
  readonly name: 'mqtt' | 'amqp';
  readonly port: number;
  via(port: number, extra?: Record<string, unknown>): Transport;
  restart(): Promise<void>;
  stop(): Promise<void>;
}

interface Row {
  scenario: string;
  transport: string;
  sent: number;
  acknowledged: number;
  lost: number;
  duplicated: number;
  recovery: string;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function until(condition: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(5);
  }
}

/** A sender and a receiver, each through its own proxy, routed sender/out → receiver/in. */
async function pipeline(broker: Broker, extra: Record<string, unknown> = {}) {
  const deviceId = `m${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`;
  const operator = await broker.via(broker.port).connect({ clientId: `${deviceId}/operator` });
  await deployRoutes(operator, deviceId, {
    r: 'FROM /messages/modules/sender/outputs/out INTO BrokeredEndpoint("/modules/receiver/inputs/in")',
  });
  await operator.close();
  const senderProxy = await startTcpProxy(broker.port);
  const receiverProxy = await startTcpProxy(broker.port);
  const common = {
    deviceId,
    reconnect: { initialDelayInMs: 100, maxDelayInMs: 2_000 },
    onError: () => undefined,
    offlineQueue: { maxMessages: 100_000 },
  };
  const handled: number[] = [];
  let firstAfter: number | undefined;
  const marker = { armed: false };
  const receiver = await connect(Receiver, {
    ...common,
    moduleId: 'receiver',
    transport: broker.via(receiverProxy.port, extra),
  });
  await receiver.onInput('in', (message) => {
    handled.push(message.body.n);
    if (firstAfter === undefined && marker.armed) firstAfter = Date.now();
  });
  const sender = await connect(Sender, {
    ...common,
    moduleId: 'sender',
    transport: broker.via(senderProxy.port, extra),
  });
  return {
    sender,
    receiver,
    senderProxy,
    receiverProxy,
    handled,
    /** From now on, the time of the first message handled is recorded. */
    arm() {
      marker.armed = true;
      firstAfter = undefined;
    },
    firstHandledAfterArm: () => firstAfter,
    async close() {
      await Promise.all([sender.close({ drainTimeoutInMs: 5_000 }), receiver.close({ drainTimeoutInMs: 5_000 })]);
      await Promise.all([senderProxy.close(), receiverProxy.close()]);
    },
  };
}

/** Sends `count` messages, one every `intervalMs` (0: as fast as a window of 100 allows); resolves when all settled. */
async function stream(
  sender: ModuleClient<typeof Sender>,
  count: number,
  intervalMs: number,
  onSent?: (n: number) => void,
) {
  const acknowledged = new Set<number>();
  const pending = new Set<Promise<unknown>>();
  for (let n = 0; n < count; n++) {
    const p = sender.send('out', { n }).then(
      () => acknowledged.add(n),
      () => undefined,
    );
    pending.add(p);
    void p.finally(() => pending.delete(p));
    onSent?.(n);
    if (intervalMs > 0) await sleep(intervalMs);
    else if (pending.size >= 100) await Promise.race(pending);
  }
  await Promise.all(pending);
  return acknowledged;
}

function tally(
  scenario: string,
  broker: Broker,
  count: number,
  acknowledged: Set<number>,
  handled: number[],
  recovery: string,
): Row {
  const unique = new Set(handled);
  return {
    scenario,
    transport: broker.name,
    sent: count,
    acknowledged: acknowledged.size,
    lost: [...acknowledged].filter((n) => !unique.has(n)).length,
    duplicated: handled.length - unique.size,
    recovery,
  };
}

async function waitAll(handled: number[], acknowledged: Set<number>, ms = 120_000) {
  await until(() => [...acknowledged].every((n) => handled.includes(n)), ms, 'every acknowledged message');
}

/** When the client is (or next becomes) connected. */
function connectedAt(client: ModuleClient<typeof Sender> | ModuleClient<typeof Receiver>): Promise<number> {
  return nextStatus(client, 'connected');
}

/** Whether every number from 0 to `last` was handled. */
function everyUpTo(handled: number[], last: number): boolean {
  const seen = new Set(handled);
  for (let n = 0; n <= last; n++) if (!seen.has(n)) return false;
  return true;
}

function nextStatus(
  client: ModuleClient<typeof Sender> | ModuleClient<typeof Receiver>,
  state: ConnectionStatus['state'],
) {
  return (async () => {
    for await (const status of client.status()) if (status.state === state) return Date.now();
    return Date.now();
  })();
}

const scenarios: Record<string, (broker: Broker) => Promise<Row>> = {
  async 'broker restart mid-stream (5,000 messages)'(broker) {
    const p = await pipeline(broker);
    const count = 5_000;
    let recovered: Promise<string> | undefined;
    const acknowledged = await stream(p.sender, count, 0, (n) => {
      if (n !== count / 2) return;
      recovered = (async () => {
        await broker.restart();
        const accepting = Date.now();
        const connected = await Promise.all([connectedAt(p.sender), connectedAt(p.receiver)]);
        return `both modules connected ${Math.max(...connected) - accepting} ms after the broker accepted again`;
      })();
    });
    const recovery = await (recovered as Promise<string>);
    await waitAll(p.handled, acknowledged);
    const row = tally('broker restart mid-stream', broker, count, acknowledged, p.handled, recovery);
    await p.close();
    return row;
  },

  async 'sender link outage of 20 s (200 messages/s)'(broker) {
    const p = await pipeline(broker);
    const count = 8_000;
    let sent = -1;
    const outage = (async () => {
      await sleep(5_000);
      p.senderProxy.cut({ refuse: true });
      await sleep(20_000);
      const queued = sent;
      p.senderProxy.heal();
      const healed = Date.now();
      // Everything sent until the heal — mostly waiting in the sender's offline queue — handled by the receiver.
      await until(() => p.handled.length > 0 && everyUpTo(p.handled, queued), 120_000, 'the backlog');
      return `all ${queued + 1} messages sent until the heal (~4,000 of them queued offline) handled ${Date.now() - healed} ms after it`;
    })();
    const acknowledged = await stream(p.sender, count, 5, (n) => {
      sent = n;
    });
    const recovery = await outage;
    await waitAll(p.handled, acknowledged);
    const row = tally('sender link outage 20 s', broker, count, acknowledged, p.handled, recovery);
    await p.close();
    return row;
  },

  async 'receiver cut mid-stream for 5 s'(broker) {
    const p = await pipeline(broker);
    const count = 5_000;
    let healed = 0;
    const acknowledged = await stream(p.sender, count, 0, (n) => {
      if (n === 2_000) {
        p.receiverProxy.cut({ refuse: true });
        void sleep(5_000).then(() => {
          p.receiverProxy.heal();
          healed = Date.now();
          p.arm();
        });
      }
    });
    await until(() => healed > 0, 30_000, 'the heal');
    await waitAll(p.handled, acknowledged);
    const recovered = (p.firstHandledAfterArm() ?? healed) - healed;
    const row = tally(
      'receiver link cut 5 s mid-stream',
      broker,
      count,
      acknowledged,
      p.handled,
      `${recovered} ms from the heal to the next message handled`,
    );
    await p.close();
    return row;
  },

  async 'flapping links (both modules, 300 resets)'(broker) {
    const p = await pipeline(broker);
    const count = 5_000;
    p.senderProxy.flap({ minMs: 1, maxMs: 50 });
    p.receiverProxy.flap({ minMs: 1, maxMs: 50 });
    const heal = (async () => {
      await until(() => p.senderProxy.flapped + p.receiverProxy.flapped >= 300, 600_000, '300 resets');
      p.senderProxy.heal();
      p.receiverProxy.heal();
      const healed = Date.now();
      const connected = await Promise.all([connectedAt(p.sender), connectedAt(p.receiver)]);
      return `both modules connected ${Math.max(0, Math.max(...connected) - healed)} ms after the links healed`;
    })();
    const acknowledged = await stream(p.sender, count, 10);
    const recovery = await heal;
    await waitAll(p.handled, acknowledged);
    const row = tally('flapping links, 300 resets', broker, count, acknowledged, p.handled, recovery);
    await p.close();
    return row;
  },

  async 'silent partition (defaults)'(broker) {
    const p = await pipeline(broker);
    const stalled = Date.now();
    const lost = nextStatus(p.receiver, 'disconnected');
    p.receiverProxy.stall();
    const noticed = (await lost) - stalled;
    p.receiverProxy.cut();
    await nextStatus(p.receiver, 'connected');
    // close() during a partition, with a 2 s budget.
    const q = await pipeline(broker);
    q.receiverProxy.stall();
    const closing = Date.now();
    await q.receiver.close({ drainTimeoutInMs: 2_000 });
    const closed = Date.now() - closing;
    await Promise.all([p.close(), q.close()]);
    return {
      scenario: 'silent partition',
      transport: broker.name,
      sent: 0,
      acknowledged: 0,
      lost: 0,
      duplicated: 0,
      recovery: `dead link noticed after ${(noticed / 1000).toFixed(1)} s (default keep-alive / heartbeat); close({ drainTimeoutInMs: 2000 }) took ${closed} ms`,
    };
  },
};

async function main() {
  const filter = process.argv.slice(2).join(' ');
  const selected = Object.entries(scenarios).filter(([name]) => name.includes(filter));
  const mosquitto = await startMosquitto({ configFile: doc('mosquitto.conf') });
  const rabbit = await startRabbitMQ({
    configFile: doc('rabbitmq.conf'),
    definitionsFile: doc('rabbitmq-definitions.json'),
  });
  const brokers: Broker[] = [
    {
      name: 'mqtt',
      port: mosquitto.port,
      via: (port, extra = {}) => mqtt({ url: `mqtt://127.0.0.1:${port}`, ...extra }),
      restart: () => mosquitto.restart(),
      stop: () => mosquitto.stop(),
    },
    {
      name: 'amqp',
      port: rabbit.port,
      via: (port, extra = {}) => amqp({ url: `amqp://guest:guest@127.0.0.1:${port}`, ...extra }),
      restart: () => rabbit.restart(),
      stop: () => rabbit.stop(),
    },
  ];
  const rows: Row[] = [];
  try {
    for (const [name, run] of selected) {
      for (const broker of brokers) {
        process.stderr.write(`${name} on ${broker.name}…\n`);
        rows.push(await run(broker));
      }
    }
  } finally {
    await Promise.all(brokers.map((b) => b.stop()));
  }
  console.log(`node ${process.version}; Mosquitto and RabbitMQ with the files in docs/brokers/\n`);
  console.log('| scenario | transport | sent | acknowledged | lost | handled twice | recovery |');
  console.log('| --- | --- | --- | --- | --- | --- | --- |');
  for (const r of rows) {
    console.log(
      `| ${r.scenario} | ${r.transport} | ${r.sent} | ${r.acknowledged} | ${r.lost} | ${r.duplicated} | ${r.recovery} |`,
    );
  }
}

await main();
