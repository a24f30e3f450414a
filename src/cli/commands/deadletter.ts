/**
 * `edgekit deadletter list|replay|purge <device>/<module>`: the dead letters of a module — list them (they stay),
 * replay them to the inputs they were given up on, or remove them.
 */
import type { DeadLetterOptions } from '../../service/queues.js';
import {
  BROKER_HELP,
  type CliCommand,
  type CliIo,
  command,
  EXIT,
  moduleArgument,
  painter,
  parseCommand,
  UsageError,
  visible,
  visibleJson,
  withService,
} from '../shared.js';
import { queueJson, queueLine } from './queue-output.js';

const OPTIONS_HELP = `  --limit <n>            read at most n entries: list 1 to 1000 (default 100), else 1 to 10000
  --idle <s>             the queue is read to its end when nothing new came for s seconds
                         (0.01 to 60, default 1)

${BROKER_HELP}`;

const help = (
  verb: string,
  what: string,
  exit: string,
  example: string,
) => `Usage: edgekit deadletter ${verb} <device>/<module> [options]

${what}

Options:
${OPTIONS_HELP}

Exit status: ${exit}

Example:
  ${example}
`;

const LIST_HELP = help(
  'list',
  `Prints the dead letters of a module — the messages it gave up, with the reason,
the input and the attempts — oldest first. They stay in the queue. Bytes that are
no edgekit message are listed as undecodable. On MQTT at most as many as the broker
hands out unacknowledged (Mosquitto's max_inflight_messages) can be listed.
With --json, one JSON object per line.`,
  '0 listed, 1 the broker failed, 2 usage error.',
  'edgekit deadletter list gw-1/filter --json',
);

const REPLAY_HELP = help(
  'replay',
  `Sends each dead letter back to the input it was given up on (same message id,
sender and properties; published as the operator), then removes it, oldest first.
Dead letters that cannot be replayed (decode-failed, too-large, forged-source,
undecodable bytes) stay and are listed with why. A message that comes back
dead-lettered again during the run stops it. With --json, one JSON object.`,
  '0 every entry replayed, 1 some were left (listed) or the broker failed, 2 usage error.',
  'edgekit deadletter replay gw-1/filter',
);

const PURGE_HELP = help(
  'purge',
  'Removes the dead letters of a module (undecodable entries too) and prints how many.\nWith --json, one JSON object.',
  '0 purged (also none), 1 the broker failed, 2 usage error.',
  'edgekit deadletter purge gw-1/filter',
);

function parse(
  args: readonly string[],
  maxLimit: number,
): {
  deviceId: string;
  moduleId: string;
  options: DeadLetterOptions;
  json: boolean;
  values: Parameters<typeof withService>[0];
} {
  const { values, positionals } = parseCommand(args, { limit: { type: 'string' }, idle: { type: 'string' } });
  const [target, ...extra] = positionals;
  if (extra.length > 0) throw new UsageError(`unexpected argument "${extra[0]}"`);
  const [deviceId, moduleId] = moduleArgument(target);
  let limit: number | undefined;
  if (values.limit !== undefined) {
    if (typeof values.limit !== 'string' || !/^[1-9]\d*$/.test(values.limit) || Number(values.limit) > maxLimit) {
      throw new UsageError(`--limit must be an integer from 1 to ${maxLimit}, got ${JSON.stringify(values.limit)}`);
    }
    limit = Number(values.limit);
  }
  let idleInMs: number | undefined;
  if (values.idle !== undefined) {
    const seconds = typeof values.idle === 'string' && values.idle.trim() !== '' ? Number(values.idle) : Number.NaN;
    if (!Number.isFinite(seconds) || seconds < 0.01 || seconds > 60) {
      throw new UsageError(`--idle must be a number of seconds from 0.01 to 60, got ${JSON.stringify(values.idle)}`);
    }
    idleInMs = Math.round(seconds * 1000);
  }
  return {
    deviceId,
    moduleId,
    options: { ...(limit === undefined ? {} : { limit }), ...(idleInMs === undefined ? {} : { idleInMs }) },
    json: values.json === true,
    values,
  };
}

async function list(args: readonly string[], io: CliIo): Promise<number> {
  const { deviceId, moduleId, options, json, values } = parse(args, 1000);
  return withService(values, io, async (service) => {
    const listing = await service.deadLetters(deviceId, moduleId).list(options);
    for (const entry of listing.entries) io.stdout.write(`${json ? queueJson(entry) : queueLine(entry, io)}\n`);
    if (!json) {
      const n = listing.entries.length;
      const more = listing.limited ? ' (the limit: there may be more)' : '';
      const bad = listing.undecodable > 0 ? `, ${listing.undecodable} undecodable` : '';
      io.stdout.write(`${n} dead letter${n === 1 ? '' : 's'} of ${deviceId}/${moduleId}${bad}${more}\n`);
    }
    return EXIT.ok;
  });
}

async function replay(args: readonly string[], io: CliIo): Promise<number> {
  const { deviceId, moduleId, options, json, values } = parse(args, 10_000);
  return withService(values, io, async (service) => {
    const result = await service.deadLetters(deviceId, moduleId).replay(options);
    const skipped = result.skipped.map(({ entry, reason }) => ({
      ...(entry.type === 'message' ? { messageId: entry.messageId } : { bytes: entry.bytes.length }),
      reason,
    }));
    if (json) {
      io.stdout.write(`${visibleJson({ replayed: result.replayed, skipped, cameBack: result.cameBack })}\n`);
    } else {
      const paint = painter(io);
      const n = result.replayed.length;
      io.stdout.write(`replayed ${n} dead letter${n === 1 ? '' : 's'} to ${deviceId}/${moduleId}\n`);
      for (const r of result.replayed) io.stdout.write(`  ${visible(r.messageId)} → ${visible(r.input)}\n`);
      for (const s of skipped) {
        const what = 'messageId' in s ? visible(String(s.messageId)) : `<${s.bytes} bytes>`;
        io.stdout.write(`  ${paint('red', `left ${what}: ${visible(s.reason)}`)}\n`);
      }
      if (result.cameBack) {
        io.stdout.write(`  ${paint('red', 'stopped: a replayed message was dead-lettered again')}\n`);
      }
    }
    if (skipped.length > 0 || result.cameBack) {
      io.stderr.write(
        `edgekit deadletter replay: ${skipped.length} left in the queue${result.cameBack ? '; a replayed message came back' : ''}\n`,
      );
      return EXIT.failed;
    }
    return EXIT.ok;
  });
}

async function purge(args: readonly string[], io: CliIo): Promise<number> {
  const { deviceId, moduleId, options, json, values } = parse(args, 10_000);
  return withService(values, io, async (service) => {
    const result = await service.deadLetters(deviceId, moduleId).purge(options);
    if (json) io.stdout.write(`${visibleJson(result)}\n`);
    else {
      const bad = result.undecodable > 0 ? ` (${result.undecodable} undecodable)` : '';
      io.stdout.write(
        `purged ${result.purged} dead letter${result.purged === 1 ? '' : 's'}${bad} of ${deviceId}/${moduleId}\n`,
      );
    }
    return EXIT.ok;
  });
}

export const deadLetterCommands: Readonly<Record<string, CliCommand>> = {
  list: command('deadletter list', "list a module's dead letters (they stay)", LIST_HELP, list),
  replay: command('deadletter replay', "send a module's dead letters back to their inputs", REPLAY_HELP, replay),
  purge: command('deadletter purge', "remove a module's dead letters", PURGE_HELP, purge),
};
