/**
 * `edgekit twin get <device>/<module>` and `edgekit twin set <device>/<module> <json | @file> [--if-version n]`:
 * read both twin sections of a module; merge a patch into its desired properties.
 */
import { checkTwin } from '../../core/twin.js';
import { messageOf } from '../../errors.js';
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
  UsageError,
  visibleJson,
  withService,
} from '../shared.js';

const GET_HELP = `Usage: edgekit twin get <device>/<module> [options]

Prints a module's desired and reported properties with their versions.

${BROKER_HELP}

Exit status: 0 printed, 1 the broker failed, 2 usage error.

Example:
  edgekit twin get gw-1/filter --broker mqtt://127.0.0.1:1883
`;

const SET_HELP = `Usage: edgekit twin set <device>/<module> <json | @file> [options]

Merges a JSON merge patch into a module's desired properties (null deletes a
property); a running module receives the patch at once, an offline one when it
reconnects. Prints the new desired document.

When the document on the broker is invalid (or at the largest version), a patch
is refused; --replace writes the given document whole instead, with a version a
running module takes.

Options:
  --if-version <n>       apply only if the desired properties are still at version n
                         (fails with version-conflict otherwise)
  --replace              replace the desired properties with the given document
                         (no merge; also replaces an invalid document)
  --force                write it even though the device's deployment does not list the
                         module (by default that is refused: most often a mistyped name)

${BROKER_HELP}

Exit status: 0 applied, 1 version conflict, twin rules broken, a module the deployment
does not list (without --force) or broker failure, 2 usage error.

Examples:
  edgekit twin set gw-1/filter '{"TemperatureThreshold": 30}'
  edgekit twin set gw-1/filter @desired-patch.json --if-version 4
  edgekit twin set gw-1/filter '{"TemperatureThreshold": 25}' --replace
`;

async function get(args: readonly string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseCommand(args, {});
  const [target, ...extra] = positionals;
  if (extra.length > 0) throw new UsageError(`unexpected argument "${extra[0]}"`);
  const [deviceId, moduleId] = moduleArgument(target);
  return withService(values, io, async (service) => {
    const twin = await service.getTwin(deviceId, moduleId);
    if (values.json === true) {
      io.stdout.write(`${visibleJson({ deviceId, moduleId, ...twin }, 2)}\n`);
    } else {
      const paint = painter(io);
      io.stdout.write(
        `${paint('bold', `desired (version ${twin.desired.version})`)}\n${visibleJson(twin.desired.properties, 2)}\n` +
          `${paint('bold', `reported (version ${twin.reported.version})`)}\n${visibleJson(twin.reported.properties, 2)}\n`,
      );
    }
    return EXIT.ok;
  });
}

async function set(args: readonly string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseCommand(args, {
    'if-version': { type: 'string' },
    replace: { type: 'boolean' },
    force: { type: 'boolean' },
  });
  const [target, patchArgument, ...extra] = positionals;
  if (extra.length > 0) throw new UsageError(`unexpected argument "${extra[0]}"`);
  const [deviceId, moduleId] = moduleArgument(target);
  const replace = values.replace === true;
  if (patchArgument === undefined) {
    throw new UsageError(`missing the ${replace ? 'document' : 'patch'}: a JSON object or @file`);
  }
  const patch = jsonArgument(patchArgument, io);
  try {
    // A replacement is a document: null is no value there (it deletes only in a patch).
    checkTwin(patch, replace ? 'the document' : 'the patch', { allowNull: !replace });
  } catch (error) {
    throw new UsageError(messageOf(error));
  }
  let ifVersion: number | undefined;
  const raw = values['if-version'];
  if (raw !== undefined) {
    ifVersion = Number(raw);
    if (typeof raw !== 'string' || !/^\d+$/.test(raw)) {
      throw new UsageError(`--if-version must be a non-negative integer, got ${JSON.stringify(raw)}`);
    }
  }
  return withService(values, io, async (service) => {
    if (values.force !== true) {
      // A device with a deployment lists its modules: a name outside it is most often a typo, and nothing would read
      // what is written there. (Without a deployment record there is nothing to check against.)
      const outside = await notDeployed(service, deviceId, moduleId);
      if (outside !== undefined) {
        io.stderr.write(
          `edgekit twin set: ${outside}; nothing was written. Check the name, or pass --force to write it anyway\n`,
        );
        return EXIT.failed;
      }
    }
    const options = ifVersion === undefined ? {} : { ifVersion };
    const doc = replace
      ? await service.replaceDesired(deviceId, moduleId, patch, options)
      : await service.updateDesired(deviceId, moduleId, patch, options);
    if (values.json === true) io.stdout.write(`${visibleJson({ deviceId, moduleId, desired: doc }, 2)}\n`);
    else {
      io.stdout.write(
        `desired properties of ${deviceId}/${moduleId} are now at version ${doc.version}\n${visibleJson(doc.properties, 2)}\n`,
      );
    }
    return EXIT.ok;
  });
}

export const twinGetCommand = command('twin get', "print a module's desired and reported properties", GET_HELP, get);

export const twinSetCommand = command('twin set', "merge a patch into a module's desired properties", SET_HELP, set);
