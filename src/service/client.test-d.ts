import { expectTypeOf, test } from 'vitest';
import type { JsonObject, TwinDocument } from '../core/twin.js';
import type { MethodResult } from '../core/types.js';
import type { DeploymentFailure } from '../core/wire.js';
import type { EdgeKitError } from '../errors.js';
import type { DeploymentResult, DeploymentStatus, ModuleStatus, ServiceClient } from './client.js';
import type { MonitorDestination, MonitorEvent } from './monitor.js';

declare const service: ServiceClient;

test('service calls resolve to typed results', () => {
  expectTypeOf(service.applyDeployment('gw', {})).resolves.toEqualTypeOf<DeploymentResult>();
  expectTypeOf(service.invoke('gw', 'filter', 'reset')).resolves.toEqualTypeOf<MethodResult<unknown>>();
  expectTypeOf(service.modules('gw')).resolves.toEqualTypeOf<ModuleStatus[]>();
  expectTypeOf(service.updateDesired('gw', 'm', { a: 1 })).resolves.toEqualTypeOf<TwinDocument<JsonObject>>();
  // @ts-expect-error a desired patch is an object
  void service.updateDesired('gw', 'm', 42);
  // @ts-expect-error ifVersion is a number
  void service.updateDesired('gw', 'm', {}, { ifVersion: '3' });
  // @ts-expect-error kinds are input, upstream or deadletter
  void service.monitor({ kinds: ['sideways'] });
  expectTypeOf(service.replaceDesired('gw', 'm', { a: 1 })).resolves.toEqualTypeOf<TwinDocument<JsonObject>>();
  expectTypeOf(service.devices({ onInvalid: (p) => p.key })).resolves.toEqualTypeOf<string[]>();
});

test('a deployment status narrows on its state; an invalid record has only its problem', async () => {
  const status = await service.deployment('gw');
  expectTypeOf(status).toEqualTypeOf<DeploymentStatus | undefined>();
  if (status?.state === 'invalid') {
    expectTypeOf(status.problem).toBeString();
    // @ts-expect-error an invalid record lists no modules
    void status.modules;
  } else if (status !== undefined) {
    expectTypeOf(status.modules).toEqualTypeOf<readonly string[]>();
    expectTypeOf(status.failure).toEqualTypeOf<DeploymentFailure | undefined>();
  }
  const [row] = await service.modules('gw');
  expectTypeOf(row?.problem).toEqualTypeOf<string | undefined>();
  expectTypeOf(row?.deploymentState).toEqualTypeOf<'pending' | 'applied' | 'failed' | undefined>();
});

test('monitor events narrow on type and destination kind', async () => {
  for await (const event of await service.monitor()) {
    expectTypeOf(event).toEqualTypeOf<MonitorEvent>();
    if (event.type === 'message') {
      expectTypeOf(event.body).toBeUnknown();
      expectTypeOf(event.source.moduleId).toBeString();
    } else {
      expectTypeOf(event.error).toEqualTypeOf<EdgeKitError>();
      expectTypeOf(event.bytes).toEqualTypeOf<Uint8Array>();
    }
    const d: MonitorDestination = event.destination;
    if (d.kind === 'input') expectTypeOf(d.input).toBeString();
    // @ts-expect-error only input destinations have an input
    if (d.kind === 'upstream') void d.input;
  }
  for await (const doc of await service.watchReported('gw', 'm')) {
    expectTypeOf(doc.version).toBeNumber();
  }
});
