/**
 * `edgekit deploy <manifest.json> --device <id>`: applies an IoT Edge deployment manifest to a device — each module's
 * desired properties, the routes, the module set — after checking all of it; a manifest with any problem changes
 * nothing and every problem is listed.
 */
import { isEdgeKitError } from '../../errors.js';
import type { DeploymentProblem } from '../../service/deployment.js';
import {
  BROKER_HELP,
  type CliIo,
  command,
  EXIT,
  nameArgument,
  oneLine,
  parseCommand,
  readJsonFile,
  UsageError,
  visible,
  visibleJson,
  withService,
} from '../shared.js';

const HELP = `Usage: edgekit deploy <manifest.json> --device <device-id> [options]

Applies an IoT Edge deployment manifest to a device: each module's desired
properties (modulesContent.<module>["properties.desired"]), the routes with their
priority and TTL (modulesContent.$edgeHub["properties.desired"].routes) and the
module set ($edgeAgent). The whole manifest is checked first: if anything is wrong,
nothing is applied and every problem is listed. Running modules pick the changes
up live.

The deployment record is written first as pending and marked applied last. If the
broker refuses a write part-way, the command exits 1 naming the step that failed,
and the record says failed (see edgekit status); run the same deploy again to
complete it.

Options:
  --device <id>          the device to deploy to (required)

${BROKER_HELP}

Exit status: 0 applied, 1 the manifest was rejected or a write failed (the step is
named), 2 usage error.

Example:
  edgekit deploy deployment.json --device gw-1 --broker mqtt://127.0.0.1:1883
`;

function describeProblem(p: DeploymentProblem): string[] {
  const where = p.line !== undefined && p.column !== undefined ? ` (line ${p.line}, column ${p.column})` : '';
  const lines = [`  ${visible(p.path)}${where}: ${visible(p.message)}`];
  // The caret lines up only under text that is shown as it is.
  if (p.route !== undefined && p.column !== undefined && visible(p.route) === p.route) {
    lines.push(`      ${p.route}`, `      ${' '.repeat(Math.max(p.column - 1, 0))}^`);
  }
  return lines;
}

/** The facts of a deployment that failed part-way (`details` of the error applyDeployment rejects with). */
function partialFailure(error: unknown): Record<string, unknown> | undefined {
  if (!isEdgeKitError(error) || typeof error.details.step !== 'string') return undefined;
  return error.details;
}

async function deploy(args: readonly string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseCommand(args, { device: { type: 'string' } });
  const [file, ...extra] = positionals;
  if (file === undefined) throw new UsageError('missing the manifest file');
  if (extra.length > 0) throw new UsageError(`unexpected argument "${extra[0]}"`);
  const deviceId = values.device;
  if (typeof deviceId !== 'string') throw new UsageError('missing --device <device-id>');
  nameArgument('device id', deviceId);
  const manifest = readJsonFile(file, io);
  const shownFile = visible(file);
  return withService(values, io, async (service) => {
    try {
      const result = await service.applyDeployment(deviceId, manifest);
      if (values.json === true) {
        io.stdout.write(`${visibleJson({ applied: true, file, ...result }, 2)}\n`);
      } else {
        const desired = Object.entries(result.desiredVersions).map(([m, v]) => `${m} v${v}`);
        io.stdout.write(
          `${result.resumed ? 'completed' : 'deployed'} ${shownFile} to ${deviceId} (deployment #${result.generation}): ` +
            `${result.modules.length} module${result.modules.length === 1 ? '' : 's'}` +
            `${result.modules.length > 0 ? ` (${result.modules.join(', ')})` : ''}, ` +
            `${result.routes.length} route${result.routes.length === 1 ? '' : 's'}, ` +
            `desired properties ${desired.length > 0 ? `updated: ${desired.join(', ')}` : 'unchanged'}\n`,
        );
      }
      for (const warning of result.warnings) io.stderr.write(`warning: ${visible(warning)}\n`);
      return EXIT.ok;
    } catch (error) {
      const partial = partialFailure(error);
      if (partial !== undefined) {
        // Applied in part: say which step failed and that running the same deploy again completes it.
        if (values.json === true) {
          io.stdout.write(`${visibleJson({ applied: false, file, ...partial, error: oneLine(error) }, 2)}\n`);
        }
        io.stderr.write(`edgekit deploy: ${shownFile}: ${oneLine(error)}\n`);
        return EXIT.failed;
      }
      const problems = isEdgeKitError(error, 'invalid-configuration') ? error.details.problems : undefined;
      if (!Array.isArray(problems)) throw error;
      const list = problems as DeploymentProblem[];
      if (values.json === true) {
        io.stdout.write(`${visibleJson({ applied: false, file, deviceId, problems: list }, 2)}\n`);
      } else {
        io.stdout.write(
          `${[`${shownFile}: not applied, ${list.length} problem${list.length === 1 ? '' : 's'}:`, ...list.flatMap(describeProblem)].join('\n')}\n`,
        );
      }
      io.stderr.write(
        `edgekit deploy: ${shownFile} was not applied: ${list.length} problem${list.length === 1 ? '' : 's'} (invalid-configuration)\n`,
      );
      return EXIT.failed;
    }
  });
}

export const deployCommand = command(
  'deploy',
  'apply a deployment manifest (routes, desired properties, modules) to a device',
  HELP,
  deploy,
);
