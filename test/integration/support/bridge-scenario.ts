/**
 * What the bridge tests of both brokers share (test/integration/{mqtt,amqp}/bridge-device-to-cloud.test.ts): the two
 * device modules, the deployment the cloud applies, and the link-cut scenario.
 */
import { expect } from 'vitest';
import { defineModule, json, type ModuleClient, method, typed } from '../../../src/index.js';
import type { Inbox } from '../mqtt/support/wait.js';
import type { TcpProxy } from './tcp-proxy.js';

/** Upstream messages sent during the scenario. */
export const STREAM = 5_000;
/** How long the link stays cut. */
export const CUT_MS = 20_000;
/** The time to live of the `short` route: far less than the cut. */
export const SHORT_TTL_SECS = 2;

/** Sends `data` (routed to `$upstream`), `short` (the same, with a short TTL) and `poison` (to the filter). */
export const Sensor = defineModule({
  outputs: { data: json<{ n: number }>(), short: json<{ n: number }>(), poison: json<{ n: number }>() },
});

/** Takes the sensor's `poison`, follows its desired `threshold`, answers `ping`. */
export const Filter = defineModule({
  inputs: { in: json<{ n: number }>() },
  desired: typed<{ threshold?: number }>(),
  reported: typed<{ threshold?: number }>(),
  methods: { ping: method(typed<{ n: number }>(), typed<{ pong: number }>()) },
});

/** The deployment the operator applies in the cloud. */
export const manifest = {
  modulesContent: {
    $edgeAgent: { 'properties.desired': { modules: { sensor: {}, filter: {} } } },
    $edgeHub: {
      'properties.desired': {
        schemaVersion: '1.1',
        routes: {
          up: 'FROM /messages/modules/sensor/outputs/data INTO $upstream',
          short: {
            route: 'FROM /messages/modules/sensor/outputs/short INTO $upstream',
            timeToLiveSecs: SHORT_TTL_SECS,
          },
          poison: 'FROM /messages/modules/sensor/outputs/poison INTO BrokeredEndpoint("/modules/filter/inputs/in")',
        },
      },
    },
    filter: { 'properties.desired': { threshold: 1 } },
  },
};

/** What {@link streamAcrossCut} needs of a test: the device's sensor, the link, the cloud's upstream, and hooks. */
export interface CutScenario {
  readonly sensor: ModuleClient<typeof Sensor>;
  readonly link: TcpProxy;
  /** The device's upstream as the operator reads it in the cloud. */
  readonly upstream: Inbox<{ output: string; n: number }>;
  /** Resolves once the cloud notices the link is down. */
  whenDown(): Promise<void>;
  /** What the test checks and does in the cloud while the link is down. */
  duringCut(): Promise<void>;
  /** Resolves once the link is back. */
  whenUp(): Promise<void>;
}

/**
 * The link-cut scenario: short-lived messages cross while the link is up; a fifth of the stream is sent, the link is
 * cut, the rest of the stream and 100 short-lived messages are sent while it is down, and after {@link CUT_MS} it
 * heals. Every stream message arrives, no short-lived one sent during the cut does, and each came at most twice.
 * Resolves to how long the backlog took after the link healed, and how many came twice.
 */
export async function streamAcrossCut(s: CutScenario): Promise<{ drainedInMs: number; duplicates: number }> {
  // The short-lived route works while the link is up: its messages are not simply lost.
  for (let n = 0; n < 10; n++) await s.sensor.send('short', { n });
  await s.upstream.until(
    (m) => m.filter((x) => x.output === 'short').length >= 10,
    10_000,
    'short-lived messages with the link up',
  );
  const firstPart = STREAM / 5;
  for (let n = 0; n < firstPart; n++) await s.sensor.send('data', { n });

  s.link.cut({ refuse: true });
  const cutAt = Date.now();
  await s.whenDown();
  await s.duringCut();
  // Sent while the link is down: they wait in the device's broker. The short-lived ones expire there.
  for (let n = firstPart; n < STREAM / 2; n++) await s.sensor.send('data', { n });
  for (let n = 100; n < 200; n++) await s.sensor.send('short', { n });
  for (let n = STREAM / 2; n < STREAM; n++) await s.sensor.send('data', { n });
  expect(Date.now() - cutAt).toBeLessThan(CUT_MS - SHORT_TTL_SECS * 1000 - 2_000);

  // The outage itself lasts its full length: this is the scenario, not a wait for something to happen.
  await new Promise((resolve) => setTimeout(resolve, CUT_MS - (Date.now() - cutAt)));
  s.link.heal();
  const healedAt = Date.now();
  await s.whenUp();
  const all = await s.upstream.until(
    (m) => new Set(m.filter((x) => x.output === 'data').map((x) => x.n)).size === STREAM,
    60_000,
    `all ${STREAM} upstream messages`,
  );
  const drainedInMs = Date.now() - healedAt;
  const data = all.filter((x) => x.output === 'data').map((x) => x.n);
  expect(new Set(data)).toEqual(new Set(Array.from({ length: STREAM }, (_, n) => n)));
  // Both bridges forward in order: every short-lived message sent during the cut would have come before the last
  // stream message. None did — each had expired on the device.
  expect(all.filter((x) => x.output === 'short' && x.n >= 100)).toEqual([]);
  // At least once: a message in flight when the link was cut may come twice, never more than that.
  const duplicates = data.length - STREAM;
  expect(duplicates).toBeLessThanOrEqual(firstPart);
  return { drainedInMs, duplicates };
}
