/**
 * `edgekit upstream <device>`: consumes a device's `$upstream` queue and prints each message as it arrives, one line
 * each (or NDJSON), acknowledging it only after it was written — so what a killed command had not printed is
 * delivered again. Unlike `monitor`, it takes the messages: several running at once share them.
 */
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
import { queueJson, queueLine } from './queue-output.js';

const HELP = `Usage: edgekit upstream <device> [options]

Takes the messages routed INTO $upstream on a device from its queue and prints
them as they arrive, until Ctrl-C. Each message is acknowledged after it is
printed: one not printed yet stays in the queue. Several running at once share
the messages (each is printed by one of them). Unlike "monitor", it consumes.

Options:
  --count <n>            stop after n messages
  --prefetch <n>         messages taken ahead of printing, 1 to 1000 (default 10)

${BROKER_HELP}
  With --json, prints one JSON object per line; binary bodies as base64.

Exit status: 0 stopped (Ctrl-C or --count), 1 the broker failed or the connection
was lost (nothing unprinted is lost: run it again), 2 usage error.

Examples:
  edgekit upstream gw-1
  edgekit upstream gw-1 --json --count 100 > batch.ndjson
`;

function positiveInteger(name: string, value: string | boolean | undefined, max: number): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || !/^[1-9]\d*$/.test(value) || Number(value) > max) {
    throw new UsageError(`--${name} must be an integer from 1 to ${max}, got ${JSON.stringify(value)}`);
  }
  return Number(value);
}

async function upstream(args: readonly string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseCommand(args, { count: { type: 'string' }, prefetch: { type: 'string' } });
  const [target, ...extra] = positionals;
  if (extra.length > 0) throw new UsageError(`unexpected argument "${extra[0]}"`);
  if (target === undefined) throw new UsageError('missing <device>');
  if (target === '*') {
    throw new UsageError('"*" is not supported: each device has its own upstream queue; name a device');
  }
  const deviceId = nameArgument('device id', target);
  const count = positiveInteger('count', values.count, Number.MAX_SAFE_INTEGER) ?? Number.POSITIVE_INFINITY;
  const prefetch = positiveInteger('prefetch', values.prefetch, 1000);
  return withService(values, io, async (service) => {
    // Ctrl-C (the io's signal) ends the iteration; what was taken and not printed goes back to the queue.
    const messages = await service.upstream(deviceId, {
      ...(io.signal ? { abortSignal: io.signal } : {}),
      ...(prefetch === undefined ? {} : { prefetch }),
    });
    // On stderr also with --json: scripts read stdout, and may wait for this line to know consuming has begun.
    io.stderr.write(`consuming the upstream of ${deviceId}; Ctrl-C to stop\n`);
    let printed = 0;
    for await (const message of messages) {
      io.stdout.write(`${values.json === true ? queueJson(message) : queueLine(message, io)}\n`);
      if (++printed >= count) {
        messages.ack(); // the last one is printed: acknowledged, as the loop's next turn would have
        break;
      }
    }
    return EXIT.ok;
  });
}

export const upstreamCommand = command(
  'upstream',
  "take and print a device's $upstream messages (acknowledged once printed)",
  HELP,
  upstream,
);
