/**
 * `edgekit invoke <device>/<module> <method> [json | @file] [--timeout s]`: calls a direct method and prints its status
 * and payload. A status of 400 or more (404 offline, 501 not handled, 504 no answer in time, or the module's own)
 * exits 1.
 */
import {
  BROKER_HELP,
  type CliIo,
  command,
  EXIT,
  jsonArgument,
  moduleArgument,
  notDeployed,
  painter,
  parseCommand,
  secondsOption,
  UsageError,
  visible,
  visibleJson,
  withService,
} from '../shared.js';

const HELP = `Usage: edgekit invoke <device>/<module> <method> [json | @file] [options]

Invokes a direct method with a JSON payload and prints the status and the payload
of the answer. Without a payload the method gets null (IoT Hub's own default).

Options:
  --timeout <s>          how long the module has to answer, 5 to 300 seconds (default 30);
                         no answer in time gives status 504

${BROKER_HELP}

Exit status: 0 status below 400, 1 status 400 or more (404 the module is offline,
501 it does not handle the method, 504 no answer in time, 502 an invalid presence or
answer on the broker) or a broker failure, 2 usage error.

Example:
  edgekit invoke gw-1/SimulatedTemperatureSensor reset '{}' --timeout 10
`;

async function invoke(args: readonly string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseCommand(args, { timeout: { type: 'string' } });
  const [target, method, payloadArgument, ...extra] = positionals;
  if (extra.length > 0) throw new UsageError(`unexpected argument "${extra[0]}"`);
  const [deviceId, moduleId] = moduleArgument(target);
  if (method === undefined) throw new UsageError('missing the method name');
  const payload = payloadArgument === undefined ? null : jsonArgument(payloadArgument, io);
  const timeoutInMs = secondsOption('timeout', values.timeout, 30_000);
  if (timeoutInMs < 5_000 || timeoutInMs > 300_000) {
    throw new UsageError(`--timeout must be from 5 to 300 seconds, got ${values.timeout}`);
  }
  return withService(values, io, async (service) => {
    let result: Awaited<ReturnType<typeof service.invoke>>;
    try {
      result = await service.invoke(deviceId, moduleId, method, payload, { timeoutInMs });
    } catch (error) {
      if (error instanceof RangeError || error instanceof TypeError) throw new UsageError(error.message);
      throw error;
    }
    if (values.json === true) {
      io.stdout.write(`${visibleJson({ status: result.status, payload: result.payload })}\n`);
    } else {
      const paint = painter(io);
      io.stdout.write(
        `${paint(result.ok ? 'green' : 'red', `status ${result.status}`)}\n${visibleJson(result.payload, 2)}\n`,
      );
    }
    if (result.status >= 400) {
      let reason = result.ok ? 'the module answered with an error status' : result.message;
      // A module that is not there at all is most often a mistyped name: say so rather than only "offline".
      const outside = result.status === 404 ? await notDeployed(service, deviceId, moduleId) : undefined;
      if (outside !== undefined) reason = `${reason}; ${outside}`;
      io.stderr.write(
        `edgekit invoke: ${deviceId}/${moduleId} ${method} answered ${result.status}: ${visible(reason)}\n`,
      );
      return EXIT.failed;
    }
    return EXIT.ok;
  });
}

export const invokeCommand = command(
  'invoke',
  'call a direct method of a module and print its status and payload',
  HELP,
  invoke,
);
