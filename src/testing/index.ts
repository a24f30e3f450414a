/**
 * `edgekit/testing`: the test hub for unit-testing modules in memory, a manual clock, and the transport
 * conformance suite every transport passes.
 *
 * @example
 * ```ts
 * import { createTestHub } from 'edgekit/testing';
 * const hub = await createTestHub({ routes: { up: 'FROM /messages/* INTO $upstream' } });
 * ```
 * @packageDocumentation
 */

export type { InjectOptions, RoutesInput } from '../service/operations.js';
export {
  type ConformanceEnvironment,
  type ConformanceTarget,
  runTransportConformance,
} from './conformance.js';
export {
  createTestHub,
  type HubConnectOptions,
  type HubInputBody,
  type HubInputName,
  type HubModuleId,
  type HubModules,
  type HubOutputBody,
  type HubOutputName,
  type MessageCollector,
  type ObservedMessage,
  TestHub,
  type TestHubOptions,
  type WaitOptions,
} from './hub.js';
export { ManualClock } from './manual-clock.js';
export { faultableTransports, memoryConformanceTarget } from './memory-target.js';
