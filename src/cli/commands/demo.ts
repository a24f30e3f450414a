/**
 * `edgekit demo`: the example pipeline — a simulated temperature sensor feeding a filter that raises alerts to
 * `$upstream` — deployed from the example deployment manifest, watched with a monitor, with the operator changing a
 * desired property and invoking a direct method along the way. Runs in memory by default (nothing to install) or on
 * a broker given with `--broker`. The modules are the ones in `examples/`, bundled into the command.
 */

import path from 'node:path';
import manifest from '../../../examples/deployment.json' with { type: 'json' };
import { Filter, startFilter } from '../../../examples/filter/module.js';
import { startSensor, TemperatureSensor } from '../../../examples/temperature-sensor/module.js';
import { connect } from '../../connect.js';
import type { ModuleClient } from '../../core/types.js';
import { redactCredentials } from '../../redact.js';
import { planAccess } from '../../service/access.js';
import type { ServiceClient } from '../../service/client.js';
import { connectService } from '../../service/client.js';
import { readDeployment } from '../../service/deployment.js';
import { amqp } from '../../transports/amqp/index.js';
import { MemoryBroker, memory } from '../../transports/memory/index.js';
import { mqtt } from '../../transports/mqtt/index.js';
import {
  BROKER_HELP,
  type CliIo,
  closeQuietly,
  command,
  EXIT,
  oneLine,
  painter,
  parseCommand,
  secondsOption,
  transportOf,
  UsageError,
  visibleJson,
} from '../shared.js';
import { AZURE_SAMPLE, type AzureSample, azureSampleScript, startAzureSample, withAzureSample } from './demo-azure.js';
import { textLine } from './monitor.js';

const HELP = `Usage: edgekit demo [--broker <url> [--identities <dir>]] [--duration <s>]

Runs the example pipeline: a simulated temperature sensor feeding a filter that sends
alerts to $upstream, deployed from the example deployment manifest. A monitor prints
every message; along the way the operator raises the filter's threshold (a desired
property) and resets the sensor (a direct method). Stops after --duration or on Ctrl-C.

Inside a clone of the repository (where examples/azure-module and Microsoft's Azure
IoT device SDK are installed), an unmodified Azure IoT Edge module joins too, through
edgekit/hub: it counts the filter's alerts and sends summaries upstream, and the
operator calls its getSummary method (docs/iotedge.md). Not with --identities.

Identities are on: in memory, the broker enforces the deployment's access plan (each
module may do only what the deployment allows, as a broker configured by
"edgekit identities" does). On a broker, give --identities with the directory that
"edgekit identities examples/deployment.json --device demo-device" wrote, and load its
broker configuration: each module and the operator then log in with their own
credentials.

Options:
  --duration <s>         seconds to run (default 12)
  --identities <dir>     log in with the credentials in this identities directory

${BROKER_HELP.replace('[EDGEKIT_BROKER_URL]', '[default memory:, in this process]')}

Exit status: 0 ran to the end, 1 the broker failed, 2 usage error.

Examples:
  edgekit demo
  edgekit demo --broker mqtt://127.0.0.1:1883 --duration 20
`;

const DEVICE = 'demo-device';

async function demo(args: readonly string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseCommand(args, {
    duration: { type: 'string' },
    identities: { type: 'string' },
  });
  if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0]}"`);
  const durationInMs = secondsOption('duration', values.duration, 12_000);
  const paint = painter(io);
  const started = Date.now();
  const log = (who: string, text: string) =>
    io.stdout.write(
      `${paint('dim', `+${((Date.now() - started) / 1000).toFixed(1).padStart(5)}s`)} ${paint('magenta', who.padEnd(8))} ${text}\n`,
    );
  const url = values.broker ?? 'memory:';
  const identities = typeof values.identities === 'string' ? values.identities : undefined;
  if (identities !== undefined && url === 'memory:') {
    throw new UsageError('--identities goes with --broker: in memory the access plan is enforced without credentials');
  }
  /** The broker options a principal logs in with: its own credential from the identities directory. */
  const as = (username: string) =>
    identities === undefined
      ? values
      : {
          ...values,
          username,
          'password-file': path.join(identities, 'credentials', ...username.split('/'), 'password'),
        };
  // The Azure sample needs credentials "edgekit identities" did not issue for the example deployment: not with them.
  const azureScript = identities === undefined ? azureSampleScript() : undefined;
  const deployment = azureScript === undefined ? manifest : withAzureSample(manifest);
  // In memory, a broker of the demo's own that enforces the deployment's access plan.
  const secured =
    url === 'memory:'
      ? new MemoryBroker({ access: planAccess(readDeployment(deployment), DEVICE).principals })
      : undefined;
  // The operator keeps no session; the modules use the plain transports, so their inputs wait for them on a broker.
  const operatorValues = { ...as('$operator/operator'), broker: url };
  const moduleTransport = async (moduleId: string) =>
    secured !== undefined
      ? memory({ broker: secured })
      : transportOf({ ...as(`${DEVICE}/${moduleId}`), broker: url }, io, undefined, { mqtt, amqp });
  let service: ServiceClient | undefined;
  const modules: ModuleClient<typeof Filter | typeof TemperatureSensor>[] = [];
  let azure: AzureSample | undefined;
  const timers: ReturnType<typeof setTimeout>[] = [];
  try {
    service = await connectService({
      transport: secured !== undefined ? memory({ broker: secured }) : await transportOf(operatorValues, io),
      connectTimeoutInMs: secondsOption('connect-timeout', values['connect-timeout'], 10_000),
      ...(identities !== undefined || secured !== undefined ? { identity: '$operator/operator' } : {}),
    });
    const shown =
      url === 'memory:'
        ? 'the in-process memory broker, enforcing the deployment’s access plan'
        : `${redactCredentials(url, [values.password])}${identities === undefined ? '' : ', each module with its own credential'}`;
    log('demo', `running on ${shown}`);
    const result = await service.applyDeployment(DEVICE, deployment);
    await service.updateDesired(DEVICE, 'SimulatedTemperatureSensor', { SendInterval: 0.3 });
    log(
      'operator',
      `deployed examples/deployment.json: ${result.modules.join(', ')}; ${result.routes.length} routes; sensor SendInterval 0.3 s`,
    );
    const monitor = await service.monitor({ deviceId: DEVICE });
    const printing = (async () => {
      for await (const event of monitor) io.stdout.write(`${textLine(event, io)}\n`);
    })();

    const filter = await connect(Filter, {
      deviceId: DEVICE,
      moduleId: 'filter',
      transport: await moduleTransport('filter'),
    });
    modules.push(filter);
    await startFilter(filter);
    const sensor = await connect(TemperatureSensor, {
      deviceId: DEVICE,
      moduleId: 'SimulatedTemperatureSensor',
      transport: await moduleTransport('SimulatedTemperatureSensor'),
    });
    modules.push(sensor);
    const stopSensor = await startSensor(sensor);
    if (azureScript !== undefined) {
      azure = await startAzureSample({ script: azureScript, deviceId: DEVICE, transport: moduleTransport, log });
      log('demo', `${AZURE_SAMPLE} (examples/azure-module, on Microsoft's Azure IoT SDK) joins through edgekit/hub`);
    }

    const operator = service;
    const done = new Promise<void>((resolve) => {
      timers.push(
        setTimeout(async () => {
          const doc = await operator
            .updateDesired(DEVICE, 'filter', { TemperatureThreshold: 30 })
            .catch(() => undefined);
          if (doc)
            log(
              'operator',
              `set filter desired TemperatureThreshold = 30 (version ${doc.version}): alerts now above 30 °C`,
            );
        }, durationInMs * 0.33),
        setTimeout(async () => {
          const r = await operator
            .invoke(DEVICE, 'SimulatedTemperatureSensor', 'reset', {}, { timeoutInMs: 5_000 })
            .catch((error: unknown) => void log('operator', `invoke failed: ${oneLine(error)}`));
          if (r) log('operator', `invoked SimulatedTemperatureSensor reset → ${r.status} ${visibleJson(r.payload)}`);
        }, durationInMs * 0.66),
        setTimeout(async () => {
          if (azure === undefined) return;
          const r = await operator
            .invoke(DEVICE, AZURE_SAMPLE, 'getSummary', {}, { timeoutInMs: 5_000 })
            .catch((error: unknown) => void log('operator', `invoke failed: ${oneLine(error)}`));
          if (r) log('operator', `invoked ${AZURE_SAMPLE} getSummary → ${r.status} ${visibleJson(r.payload)}`);
        }, durationInMs * 0.85),
        setTimeout(resolve, durationInMs),
      );
      io.signal?.addEventListener('abort', () => resolve(), { once: true });
    });
    await done;
    stopSensor();
    log('demo', 'stopping: draining and closing the modules');
    await azure?.stop();
    await Promise.all(modules.map((m) => m.close()));
    await monitor.close();
    await printing;
    const s = sensor.stats();
    const f = filter.stats();
    log(
      'demo',
      `sensor sent ${s.sent}; filter processed ${f.processed}, sent ${f.sent} alerts; dead letters ${f.deadLettered}`,
    );
    return EXIT.ok;
  } finally {
    for (const t of timers) clearTimeout(t);
    await azure?.stop().catch(() => undefined);
    await Promise.all(modules.map((m) => m.close().catch(() => undefined)));
    await closeQuietly(service);
  }
}

export const demoCommand = command(
  'demo',
  'run the example sensor → filter → $upstream pipeline (in memory by default)',
  HELP,
  demo,
);
