/**
 * Records on a real Mosquitto that are invalid or hostile (issue 10, item 8): a deployment record naming a module id
 * with control characters (which, used as a topic, made `status` and `modules()` throw), a desired document at
 * version 2^53 (which silenced every later update), text with terminal escapes. The scenarios are the memory
 * broker's (test/cli/broker-records.ts).
 */
import { afterAll } from 'vitest';
import { mqtt } from '../../../src/transports/mqtt/index.js';
import { runBrokerRecordScenarios } from '../../cli/broker-records.js';
import { type Mosquitto, startMosquitto } from '../brokers/mosquitto.js';

let broker: Promise<Mosquitto> | undefined;
const mosquitto = () => (broker ??= startMosquitto());
afterAll(async () => {
  await (await broker)?.stop();
});

runBrokerRecordScenarios({
  name: 'Mosquitto',
  brokerUrl: async () => (await mosquitto()).url,
  transport: async () => mqtt({ url: (await mosquitto()).url, sessionExpiryInSeconds: 0 }),
});
