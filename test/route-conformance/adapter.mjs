// Adapter between the IoT Edge route conformance runner (../shared/conformance/iotedge-routes/run.mjs) and the built
// edgekit routing module. Run `npx tsup` first; scripts/check-route-conformance.mjs runs the runner with this file.
import * as routing from '../../dist/routing/index.js';

/** Route string → { source, condition, sink }; throws on an invalid route. */
export function parseRoute(text) {
  return routing.parseRoute(text);
}

/**
 * Compiles and evaluates a condition. edgeHub always compiles with every compiler flag (so `$body` queries are on);
 * the runner skips the few cases written for flags "none".
 */
export function evaluate(condition, message) {
  return routing.compileCondition(condition)(message);
}

/** Does a route FROM `pattern` accept the message? */
export function matchSource(pattern, message) {
  return routing.matchSource(pattern, message.source);
}

/** Every destination of `message` under a table of `routes` ({ route, priority?, timeToLiveSecs? }[]). */
export function selectRoutes(routes, message) {
  const named = Object.fromEntries(routes.map((route, i) => [`route${i + 1}`, route]));
  return routing.compileRouteTable(named).select(message);
}

/** One entry of a manifest's routes section (schema 1.1 rules, which accept strings and objects). */
export function parseRouteSpec(name, value) {
  return routing.parseRouteSpec(name, value);
}
