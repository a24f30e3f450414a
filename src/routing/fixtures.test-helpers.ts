/**
 * Messages shared by the routing tests: a sensor reading with application and system properties and a JSON body,
 * and variants that differ in content type, encoding or body.
 */
import { isEdgeKitError } from '../errors.js';
import type { RoutingMessage } from './message.js';
import { compileCondition } from './route.js';

/** One of `T` (true), `F` (false), `U` (undefined), `E` (compile error). */
export type Outcome = 'T' | 'F' | 'U' | 'E';

export const encodeJson = (value: unknown): Uint8Array => new TextEncoder().encode(JSON.stringify(value));

export const reading = {
  machine: {
    temperature: 31.5,
    pressure: 1.2,
    running: true,
    stopped: false,
    name: 'Press-3',
    serial: null,
    tags: ['hot', 'line1'],
    readings: [10, 20, 30],
  },
  matrix: [
    [1, 2],
    [3, 4],
  ],
  when: '2024-05-01T12:00:00Z',
  label: 'Batch 2024-05-01',
  'odd!key': 'yes',
  single: { only: 5 },
  count: 3,
};

export function message(overrides: Partial<RoutingMessage> = {}): RoutingMessage {
  return {
    source: '/messages/modules/sensor/outputs/temperature',
    properties: {
      sensorType: 'thermo',
      temperature: '21.5',
      count: '7',
      unit: 'C',
      empty: '',
      blank: null,
      'line-no': 'L1',
      '5*2': 'ten',
      $region: 'eu',
    },
    systemProperties: {
      messageId: 'm-42',
      correlationId: 'c-1',
      contentType: 'application/json',
      contentEncoding: 'utf-8',
      connectionDeviceId: 'edge-1',
      connectionModuleId: 'sensor',
      outputName: 'temperature',
      region: 'us',
    },
    body: encodeJson(reading),
    ...overrides,
  };
}

/** The default test message. */
export const telemetry = message();

/** Compiles and evaluates `condition` on `msg`, as an {@link Outcome}. */
export function outcome(condition: string, msg: RoutingMessage = telemetry): Outcome | string {
  let evaluate: (m: RoutingMessage) => boolean | undefined;
  try {
    evaluate = compileCondition(condition);
  } catch (error) {
    if (isEdgeKitError(error, 'invalid-route')) return 'E';
    throw error;
  }
  const result = evaluate(msg);
  return result === true ? 'T' : result === false ? 'F' : result === undefined ? 'U' : `unexpected ${String(result)}`;
}
