/**
 * Measures the device → cloud path over the Mosquitto bridge `edgekit bridge` generates, on two real Mosquittos
 * (test/integration/support/bridged-device.ts): a module on the device streams numbered messages to `$upstream`, the
 * link is cut for a while in the middle of the stream, and an operator reads the device's upstream on the cloud
 * broker. Prints how many arrived, lost and twice, how fast the stream crosses with the link up, how long the cloud
 * took to see the link come back and to receive the backlog, and how many short-lived messages (route time to live
 * 2 s) expired on the device while the link was down. docs/cloud.md quotes its output.
 *
 *   npm run measure:bridge                     # 5,000 messages, a 20 s cut
 *   npm run measure:bridge -- 20000 30         # 20,000 messages, a 30 s cut
 */
import { randomUUID } from 'node:crypto';
import { connect, connectService, defineModule, json } from '../src/index.js';
import { addresses } from '../src/names.js';
import { mqtt } from '../src/transports/mqtt/index.js';
import { startBridgedDevice } from '../test/integration/support/bridged-device.js';

const Sensor = defineModule({ outputs: { data: json<{ n: number }>(), short: json<{ n: number }>() } });
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function until(condition: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(5);
  }
}

async function main() {
  const total = Number(process.argv[2] ?? 5_000);
  const cutSeconds = Number(process.argv[3] ?? 20);
  const deviceId = `gw-${randomUUID().slice(0, 8)}`;
  const brokers = await startBridgedDevice({ deviceId });
  const { cloud, device, link } = brokers;
  const service = await connectService({ transport: mqtt({ url: cloud.url }) });
  const reader = await mqtt({ url: cloud.url }).connect({ clientId: `measure-link-${deviceId}` });
  let linkState: string | undefined;
  await reader.watchRetained(addresses.link(deviceId), (v) => {
    linkState = v === undefined ? undefined : new TextDecoder().decode(v);
  });
  await until(() => linkState === '1', 15_000, 'the bridge to connect');
  await service.applyDeployment(deviceId, {
    modulesContent: {
      $edgeAgent: { 'properties.desired': { modules: { sensor: {} } } },
      $edgeHub: {
        'properties.desired': {
          schemaVersion: '1.1',
          routes: {
            up: 'FROM /messages/modules/sensor/outputs/data INTO $upstream',
            short: { route: 'FROM /messages/modules/sensor/outputs/short INTO $upstream', timeToLiveSecs: 2 },
          },
        },
      },
    },
  });
  // The operator reads the upstream as `edgekit upstream` does (the deployment made the cloud keep it).
  const seen = new Map<number, number>();
  let short = 0;
  let lastArrival = 0;
  const stop = new AbortController();
  const consumer = await service.upstream(deviceId, { prefetch: 500, abortSignal: stop.signal });
  const reading = (async () => {
    try {
      for await (const event of consumer) {
        if (event.type !== 'message') continue;
        const { n } = await event.decode(json<{ n: number }>());
        if (event.source.output === 'short') short += 1;
        else seen.set(n, (seen.get(n) ?? 0) + 1);
        lastArrival = Date.now();
      }
    } catch (error) {
      if (!stop.signal.aborted) throw error;
    }
  })();
  const local = await mqtt({ url: device.url }).connect({ clientId: `measure-routes-${deviceId}` });
  let routes = false;
  await local.watchRetained(addresses.routes(deviceId), (v) => {
    routes = v !== undefined;
  });
  await until(() => routes, 10_000, 'the routes to reach the device');
  await local.close();
  const sensor = await connect(Sensor, { deviceId, moduleId: 'sensor', transport: mqtt({ url: device.url }) });

  // With the link up: the first fifth of the stream, sent and received.
  const upPart = Math.floor(total / 5);
  const upStarted = Date.now();
  for (let n = 0; n < upPart; n++) await sensor.send('data', { n });
  await until(() => seen.size >= upPart, 60_000, 'the messages sent with the link up');
  const upRate = upPart / ((lastArrival - upStarted) / 1000);

  // The cut: the rest of the stream, and 100 short-lived messages, wait in the device's broker.
  link.cut({ refuse: true });
  const cutAt = Date.now();
  await until(() => linkState === '0', 10_000, 'the cloud to see the link down');
  const downSeen = Date.now() - cutAt;
  for (let n = upPart; n < total; n++) await sensor.send('data', { n });
  for (let n = 0; n < 100; n++) await sensor.send('short', { n });
  await sleep(Math.max(0, cutSeconds * 1000 - (Date.now() - cutAt)));
  const healedAt = Date.now();
  link.heal();
  await until(() => linkState === '1', 30_000, 'the bridge to reconnect');
  const upAgain = Date.now() - healedAt;
  await until(() => seen.size >= total, 120_000, `all ${total} messages`);
  const drained = lastArrival - healedAt;

  const twice = [...seen.values()].filter((c) => c > 1).length;
  console.log(
    `node ${process.version}; two Mosquittos on loopback bridged by mosquittoBridge (keepalive 5 s, reconnect 1–2 s)\n`,
  );
  console.log('| figure | value |');
  console.log('| --- | --- |');
  console.log(`| messages sent / arrived / lost | ${total} / ${seen.size} / ${total - seen.size} |`);
  console.log(`| arrived twice | ${twice} |`);
  console.log(`| device → cloud with the link up (send, bridge, consume) | ${Math.round(upRate)} messages/s |`);
  console.log(`| link down seen in the cloud after the cut | ${downSeen} ms |`);
  console.log(`| link cut for | ${cutSeconds} s, ${total - upPart} messages sent meanwhile |`);
  console.log(`| link up seen in the cloud after it healed | ${upAgain} ms |`);
  console.log(`| backlog of ${total - upPart} received after it healed | ${(drained / 1000).toFixed(1)} s |`);
  console.log(`| short-lived messages (TTL 2 s) sent during the cut that arrived | ${short} of 100 |`);

  stop.abort();
  await reading;
  await sensor.close();
  await reader.close();
  await service.close();
  await brokers.stop();
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
