import { describe, expectTypeOf, it } from 'vitest';
import {
  type CompiledRoute,
  compileCondition,
  compileRouteTable,
  type Destination,
  explainRoutes,
  matchSource,
  type ParsedRoute,
  parseRoute,
  parseRouteSpec,
  type RouteExplanation,
  type RouteSink,
  type RouteSpec,
  type RouteTable,
  type RoutingMessage,
  routesFromManifest,
} from './index.js';

describe('the routing API the core calls', () => {
  it('has the agreed signatures', () => {
    expectTypeOf(parseRoute).toEqualTypeOf<(text: string) => ParsedRoute>();
    expectTypeOf(compileCondition).parameter(0).toEqualTypeOf<string>();
    expectTypeOf(compileCondition).returns.toEqualTypeOf<(message: RoutingMessage) => boolean | undefined>();
    expectTypeOf(matchSource).toEqualTypeOf<(pattern: string, source: string) => boolean>();
    expectTypeOf(parseRouteSpec).returns.toEqualTypeOf<Required<RouteSpec>>();
    expectTypeOf(compileRouteTable).toEqualTypeOf<
      (routes: Readonly<Record<string, string | RouteSpec>>) => RouteTable
    >();
    expectTypeOf(routesFromManifest).returns.toEqualTypeOf<Record<string, Required<RouteSpec>>>();
    expectTypeOf(explainRoutes).returns.toEqualTypeOf<RouteExplanation>();
  });

  it('describes routes, sinks and destinations', () => {
    expectTypeOf<ParsedRoute>().toEqualTypeOf<{
      readonly source: string;
      readonly condition: string | null;
      readonly sink: RouteSink;
    }>();
    expectTypeOf<RouteTable['routes']>().toEqualTypeOf<readonly CompiledRoute[]>();
    expectTypeOf<RouteTable['select']>().returns.toEqualTypeOf<Destination[]>();
    expectTypeOf<Destination>().toExtend<RouteSink>();
    expectTypeOf<Destination>().toExtend<{
      readonly priority: number;
      readonly timeToLiveSecs: number;
      readonly routeName: string;
    }>();
    const sink = {} as RouteSink;
    if (sink.kind === 'module')
      expectTypeOf(sink).toEqualTypeOf<{ readonly kind: 'module'; readonly module: string; readonly input: string }>();
  });

  it('accepts the message the core builds: string properties, optional system properties', () => {
    const message = {
      source: '/messages/modules/m/outputs/o',
      properties: {} as Record<string, string>,
      systemProperties: { messageId: 'x', correlationId: undefined as string | undefined },
      body: new Uint8Array(),
    };
    expectTypeOf(message).toExtend<RoutingMessage>();
    expectTypeOf({ ...message, body: 'text' }).not.toExtend<RoutingMessage>();
  });
});
