/**
 * The two real brokers every fault is tried on: a Mosquitto started for the test file (persistence on, so a restart
 * keeps sessions) and the RabbitMQ of the fault project's global setup. Each is reached through loopback proxies the
 * test controls, so a fault hits one participant's link and nothing else.
 */
import { afterAll, beforeAll } from 'vitest';
import type { Transport } from '../../../src/transport.js';
import { amqp } from '../../../src/transports/amqp/index.js';
import type { AmqpTransportOptions } from '../../../src/transports/amqp/options.js';
import { mqtt } from '../../../src/transports/mqtt/index.js';
import type { MqttTransportOptions } from '../../../src/transports/mqtt/options.js';
import { restartRabbitMQ, sharedRabbitMQ } from '../../integration/amqp/support.js';
import { type Mosquitto, type StartMosquittoOptions, startMosquitto } from '../../integration/brokers/mosquitto.js';

/** Transport options both factories take. */
export interface CommonTransportOptions {
  readonly connectTimeoutInMs?: number;
}

/** One broker under test. */
export interface FaultBroker {
  readonly name: 'mqtt' | 'amqp';
  /** The broker's own port (proxies forward here). */
  port(): number;
  /** The URL of the broker reached through `port` (a proxy's), with credentials, as a module's environment gives it. */
  urlVia(port: number): string;
  /** A transport reaching the broker through `port`; `extra` is transport-specific (e.g. `keepaliveInSeconds`). */
  transportVia(port: number, extra?: Readonly<Record<string, unknown>>): Transport;
  /** Stops the broker and starts it again with the same data. */
  restart(): Promise<void>;
}

/**
 * Starts the file's Mosquitto and returns both brokers; call at the top level of a test file in the `faults` project.
 * Every participant uses the default AMQP prefix, as module processes configured by their environment do; tests keep
 * apart by unique device ids.
 */
export function useBrokers(mosquittoOptions: StartMosquittoOptions = {}): readonly FaultBroker[] {
  let mosquitto: Mosquitto | undefined;
  beforeAll(async () => {
    mosquitto = await startMosquitto({ persistence: true, ...mosquittoOptions });
  });
  afterAll(async () => {
    await mosquitto?.stop();
  });
  const broker = () => {
    if (mosquitto === undefined) throw new Error('Mosquitto is not started yet');
    return mosquitto;
  };
  return [
    {
      name: 'mqtt',
      port: () => broker().port,
      urlVia: (port) => `mqtt://127.0.0.1:${port}`,
      transportVia: (port, extra = {}) =>
        mqtt({
          url: `mqtt://127.0.0.1:${port}`,
          connectTimeoutInMs: 5_000,
          ...(extra as Partial<MqttTransportOptions>),
        }),
      restart: () => broker().restart(),
    },
    {
      name: 'amqp',
      port: () => sharedRabbitMQ().port,
      urlVia: (port) => `amqp://guest:guest@127.0.0.1:${port}`,
      transportVia: (port, extra = {}) =>
        amqp({
          url: `amqp://guest:guest@127.0.0.1:${port}`,
          connectTimeoutInMs: 5_000,
          ...(extra as Partial<AmqpTransportOptions>),
        }),
      restart: restartRabbitMQ,
    },
  ];
}

/** Proxies started in a test, closed after it (the MQTT suites' helper, for both brokers). */
export { useProxies } from '../../integration/mqtt/support/fixtures.js';
