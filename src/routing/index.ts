/**
 * The IoT Edge route language: `[SELECT *] FROM <source> [WHERE <condition>] INTO <sink>`, with the hub engine's
 * semantics. Parse and check routes, compile conditions once into fast evaluators, select the destinations of a
 * message, read routes from deployment manifests and explain a route table. Also published as `edgekit/routing`.
 *
 * @example
 * ```ts
 * import { compileRouteTable } from 'edgekit/routing';
 * const table = compileRouteTable({
 *   alerts: "FROM /messages/modules/sensor/outputs/* WHERE $body.temperature > 25 INTO BrokeredEndpoint('/modules/alerts/inputs/in')",
 *   cloud: 'FROM /messages/modules/alerts/* INTO $upstream',
 * });
 * const destinations = table.select(message);
 * ```
 * @packageDocumentation
 */

export {
  type BinaryNode,
  type BinaryOperator,
  type CallNode,
  type ExprNode,
  type LiteralNode,
  type LiteralToken,
  type PropertyNode,
  printCondition,
  type Shape,
  type SystemPropertyNode,
  shapeOf,
  type UnaryNode,
} from './ast.js';
export type { CompileConditionOptions, CompiledCondition, ConditionWarning } from './compiler.js';
export type { TextPosition } from './diagnostics.js';
export { explainRoutes, type RouteExplanation, type RouteReach, type SourceExplanation } from './explain.js';
export { BUILTIN_NAMES } from './functions.js';
export type { PropertyMap, RoutingMessage } from './message.js';
export type { RouteSink } from './parser.js';
export {
  analyzeCondition,
  type ConditionAnalysis,
  compileCondition,
  type ParsedRoute,
  parseCondition,
  parseRoute,
} from './route.js';
export { matchSource, normalizeMessageSource, normalizeSourcePattern } from './source.js';
export {
  DEFAULT_ROUTE_PRIORITY,
  MAX_ROUTE_TTL_SECS,
  type ManifestRoutes,
  modulesFromManifest,
  parseRouteSpec,
  type RouteSpec,
  readManifestRoutes,
  routesFromManifest,
  SUPPORTED_SCHEMA_VERSIONS,
} from './spec.js';
export {
  type CompiledRoute,
  checkRoutes,
  compileRouteTable,
  type Destination,
  type InvalidRoute,
  type RouteTable,
  sinkKey,
} from './table.js';
