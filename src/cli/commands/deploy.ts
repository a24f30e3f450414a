/**
 * `edgekit deploy <manifest.json> --device <id>`: applies an IoT Edge deployment manifest to a device — each module's
 * desired properties, the routes, the module set — after checking all of it; a manifest with any problem changes
 * nothing and every problem is listed.
 */
import { EdgeKitError, isEdgeKitError, messageOf } from '../../errors.js';
import type { DeploymentProblem } from '../../service/deployment.js';
import {
  BROKER_HELP,
  type CliIo,
  command,
  EXIT,
  nameArgument,
  parseCommand,
  UsageError,
  withService,
} from '../shared.js';

const HELP = `Usage: edgekit deploy <manifest.json> --device <device-id> [options]

Applies an IoT Edge deployment manifest to a device: each module's desired
properties (modulesContent.<module>["properties.desired"]), the routes with their
priority and TTL (modulesContent.$edgeHub["properties.desired"].routes) and the
module set ($edgeAgent). The whole manifest is checked first: if anything is wrong,
nothing is applied and every problem is listed. Running modules pick the changes
up live.

Options:
  --device <id>          the device to deploy to (required)

${BROKER_HELP}

Exit status: 0 applied, 1 the manifest was rejected or the broker failed, 2 usage error.

Example:
  edgekit deploy deployment.json --device gw-1 --broker mqtt://127.0.0.1:1883
`;

function describeProblem(p: DeploymentProblem): string[] {
  const where = p.line !== undefined && p.column !== undefined ? ` (line ${p.line}, column ${p.column})` : '';
  const lines = [`  ${p.path}${where}: ${p.message}`];
  if (p.route !== undefined && p.column !== undefined && !p.route.includes('\n')) {
    lines.push(`      ${p.route}`, `      ${' '.repeat(Math.max(p.column - 1, 0))}^`);
  }
  return lines;
}

async function deploy(args: readonly string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseCommand(args, { device: { type: 'string' } });
  const [file, ...extra] = positionals;
  if (file === undefined) throw new UsageError('missing the manifest file');
  if (extra.length > 0) throw new UsageError(`unexpected argument "${extra[0]}"`);
  const deviceId = values.device;
  if (typeof deviceId !== 'string') throw new UsageError('missing --device <device-id>');
  nameArgument('device id', deviceId);
  let manifest: unknown;
  try {
    manifest = JSON.parse(io.readFile(file));
  } catch (error) {
    throw new EdgeKitError('invalid-configuration', `cannot read ${file} as JSON: ${messageOf(error)}`);
  }
  return withService(values, io, async (service) => {
    try {
      const result = await service.applyDeployment(deviceId, manifest);
      if (values.json === true) {
        io.stdout.write(`${JSON.stringify({ applied: true, file, ...result }, null, 2)}\n`);
      } else {
        const desired = Object.entries(result.desiredVersions).map(([m, v]) => `${m} v${v}`);
        io.stdout.write(
          `deployed ${file} to ${deviceId}: ${result.modules.length} module${result.modules.length === 1 ? '' : 's'}` +
            `${result.modules.length > 0 ? ` (${result.modules.join(', ')})` : ''}, ` +
            `${result.routes.length} route${result.routes.length === 1 ? '' : 's'}, ` +
            `desired properties ${desired.length > 0 ? `updated: ${desired.join(', ')}` : 'unchanged'}\n`,
        );
      }
      for (const warning of result.warnings) io.stderr.write(`warning: ${warning}\n`);
      return EXIT.ok;
    } catch (error) {
      const problems = isEdgeKitError(error, 'invalid-configuration') ? error.details.problems : undefined;
      if (!Array.isArray(problems)) throw error;
      const list = problems as DeploymentProblem[];
      if (values.json === true) {
        io.stdout.write(`${JSON.stringify({ applied: false, file, deviceId, problems: list }, null, 2)}\n`);
      } else {
        io.stdout.write(
          `${[`${file}: not applied, ${list.length} problem${list.length === 1 ? '' : 's'}:`, ...list.flatMap(describeProblem)].join('\n')}\n`,
        );
      }
      io.stderr.write(
        `edgekit deploy: ${file} was not applied: ${list.length} problem${list.length === 1 ? '' : 's'} (invalid-configuration)\n`,
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
