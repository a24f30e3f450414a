/**
 * `edgekit monitor [<device>[/<module>[/<output>]]]`: prints the messages that flow — routed to module inputs, to
 * `$upstream`, dead letters — live, one line each, until Ctrl-C (or `--count`, `--duration`). Watching takes nothing
 * from the modules.
 */
import type { Codec } from '../../codecs/codec.js';
import { messageOf } from '../../errors.js';
import type { MonitorEvent, MonitorFilter, MonitorKind } from '../../service/monitor.js';
import {
  BROKER_HELP,
  type CliIo,
  command,
  EXIT,
  nameArgument,
  oneLine,
  painter,
  parseCommand,
  secondsOption,
  timeOf,
  UsageError,
  visible,
  visibleJson,
  withService,
} from '../shared.js';

const HELP = `Usage: edgekit monitor [<device>[/<module>[/<output>]]] [options]

Prints messages as they flow: those routed to module inputs, to $upstream and
dead letters, with where they came from and where they went. Narrow it to a device,
a sending module or one of its outputs. Runs until Ctrl-C.

Options:
  --kind <kinds>         comma-separated: input, upstream, deadletter (default all)
  --proto <file>:<type>  decode protobuf bodies (application/x-protobuf) as this message
                         type of a .proto file, e.g. schema/reading.proto:edge.Reading
                         (needs protobufjs; docs/protobuf.md)
  --count <n>            stop after n messages
  --duration <s>         stop after s seconds

${BROKER_HELP}
  With --json, prints one JSON object per line; binary bodies as base64.

Exit status: 0 stopped (Ctrl-C, --count or --duration), 1 the broker failed, 2 usage error.

Examples:
  edgekit monitor gw-1
  edgekit monitor gw-1/filter --kind upstream --json
  edgekit monitor gw-1 --proto schema/reading.proto:edge.Reading
`;

/** The codec of `--proto <file>:<type>`: the type after the last colon, so Windows drive letters stay in the path. */
async function protoCodec(value: string | undefined): Promise<Codec<object> | undefined> {
  if (value === undefined) return undefined;
  const colon = value.lastIndexOf(':');
  if (colon <= 0 || colon === value.length - 1) {
    throw new UsageError(
      `--proto must be <file.proto>:<message type>, e.g. reading.proto:edge.Reading, got ${JSON.stringify(value)}`,
    );
  }
  const { protobufFromFile } = await import('../../codecs/protobuf.js');
  return protobufFromFile<object>(value.slice(0, colon), value.slice(colon + 1));
}

/**
 * The event with its protobuf body decoded by `codec`. A body that is no such message stays bytes, and stderr says
 * why: watching goes on.
 */
async function withProtobufBody(
  event: MonitorEvent,
  codec: Codec<object> | undefined,
  io: CliIo,
): Promise<MonitorEvent> {
  if (codec === undefined || event.type !== 'message' || event.contentType !== 'application/x-protobuf') return event;
  try {
    return { ...event, body: await codec.decode(event.bodyBytes) };
  } catch (error) {
    io.stderr.write(`edgekit monitor: message ${visible(event.messageId)}: ${visible(messageOf(error))}\n`);
    return event;
  }
}

const KINDS: readonly MonitorKind[] = ['input', 'upstream', 'deadletter'];

function filterOf(target: string | undefined, kinds: string | undefined): MonitorFilter {
  const [deviceId, moduleId, output, ...rest] = target === undefined ? [] : target.split('/');
  if (rest.length > 0) throw new UsageError(`expected <device>[/<module>[/<output>]], got ${JSON.stringify(target)}`);
  const parsedKinds = kinds?.split(',').map((k) => k.trim());
  for (const kind of parsedKinds ?? []) {
    if (!KINDS.includes(kind as MonitorKind)) {
      throw new UsageError(`--kind: unknown kind ${JSON.stringify(kind)}; use ${KINDS.join(', ')}`);
    }
  }
  return {
    ...(deviceId ? { deviceId: nameArgument('device id', deviceId) } : {}),
    ...(moduleId ? { moduleId: nameArgument('module id', moduleId) } : {}),
    ...(output ? { output: nameArgument('output', output) } : {}),
    ...(parsedKinds ? { kinds: parsedKinds as MonitorKind[] } : {}),
  };
}

/** Bodies longer than this are cut in the readable output (`--json` prints them whole). */
const MAX_BODY_CHARS = 200;

/** A body for one line: JSON-escaped, cut at {@link MAX_BODY_CHARS}; bytes as their count. */
export function bodyText(body: unknown): string {
  if (body instanceof Uint8Array) return `<${body.length} bytes>`;
  // Escaped before it is cut: a cut escape is only text, never a control character.
  const text = visibleJson(body);
  return text.length > MAX_BODY_CHARS ? `${text.slice(0, MAX_BODY_CHARS - 1)}…` : text;
}

/** One event as a JSON line (bodies that are bytes as base64). */
function jsonLine(event: MonitorEvent): string {
  if (event.type === 'undecodable') {
    return visibleJson({
      type: event.type,
      destination: event.destination,
      observedAt: event.observedAt,
      error: event.error.message,
      bytesBase64: Buffer.from(event.bytes).toString('base64'),
    });
  }
  const { bodyBytes: _bytes, body, ...rest } = event;
  return visibleJson(
    body instanceof Uint8Array ? { ...rest, bodyBase64: Buffer.from(body).toString('base64') } : { ...rest, body },
  );
}

/** One event as a readable line, coloured on a terminal. Every text in it came from the broker: shown escaped. */
export function textLine(event: MonitorEvent, io: CliIo): string {
  const paint = painter(io);
  const d = event.destination;
  const device = visible(d.deviceId);
  const to =
    d.kind === 'input'
      ? `${visible(d.moduleId)}/${visible(d.input)}`
      : d.kind === 'upstream'
        ? '$upstream'
        : `dead letters of ${visible(d.moduleId)}`;
  const when = paint('dim', timeOf(event.observedAt));
  if (event.type === 'undecodable') {
    return `${when} ${device} ${paint('red', `? undecodable message → ${to}: ${visible(event.error.message)}`)}`;
  }
  const from = visible(`${event.source.moduleId}${event.source.output ? `/${event.source.output}` : ''}`);
  const properties = Object.entries(event.properties);
  const props =
    properties.length > 0
      ? ` ${paint('dim', properties.map(([k, v]) => `${visible(k)}=${visible(v)}`).join(' '))}`
      : '';
  if (d.kind === 'deadletter') {
    const dl = event.deadLetter;
    const why = dl
      ? visible(`${dl.reason} on ${dl.input} after ${dl.attempts} attempt${dl.attempts === 1 ? '' : 's'}: ${dl.error}`)
      : 'dead letter';
    return `${when} ${device} ${paint('red', `✗ ${visible(d.moduleId)} gave up a message from ${from} (${why})`)} ${bodyText(event.body)}${props}`;
  }
  const arrow = d.kind === 'upstream' ? paint('yellow', `${from} → ${to}`) : paint('cyan', `${from} → ${to}`);
  return `${when} ${device} ${arrow}  ${bodyText(event.body)}${props}`;
}

async function monitor(args: readonly string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseCommand(args, {
    kind: { type: 'string' },
    count: { type: 'string' },
    duration: { type: 'string' },
    proto: { type: 'string' },
  });
  const [target, ...extra] = positionals;
  if (extra.length > 0) throw new UsageError(`unexpected argument "${extra[0]}"`);
  const filter = filterOf(target, typeof values.kind === 'string' ? values.kind : undefined);
  let count = Number.POSITIVE_INFINITY;
  if (values.count !== undefined) {
    if (typeof values.count !== 'string' || !/^[1-9]\d*$/.test(values.count)) {
      throw new UsageError(`--count must be a positive integer, got ${JSON.stringify(values.count)}`);
    }
    count = Number(values.count);
  }
  const durationInMs = values.duration === undefined ? undefined : secondsOption('duration', values.duration, 0);
  const codec = await protoCodec(values.proto);
  return withService(values, io, async (service) => {
    const stop = new AbortController();
    const onStop = () => stop.abort();
    io.signal?.addEventListener('abort', onStop, { once: true });
    const timer = durationInMs === undefined ? undefined : setTimeout(onStop, durationInMs);
    try {
      // A lost broker is reported, one line each time, while the monitor keeps trying; Ctrl-C still ends it.
      let lost = false;
      const watch = await service.monitor(filter, {
        abortSignal: stop.signal,
        onError: (error) => {
          if (lost) return;
          lost = true;
          io.stderr.write(`edgekit monitor: ${oneLine(error)}; reconnecting (messages sent meanwhile are not shown)\n`);
        },
      });
      // On stderr also with --json: scripts read stdout, and may wait for this line to know watching has begun.
      const scope = target ?? 'every device';
      io.stderr.write(`watching ${scope}${filter.kinds ? ` (${filter.kinds.join(', ')})` : ''}; Ctrl-C to stop\n`);
      let seen = 0;
      for await (const seenEvent of watch) {
        lost = false;
        const event = await withProtobufBody(seenEvent, codec, io);
        io.stdout.write(`${values.json === true ? jsonLine(event) : textLine(event, io)}\n`);
        if (++seen >= count) break;
      }
      const { dropped } = watch.stats();
      if (dropped > 0) io.stderr.write(`edgekit monitor: ${dropped} messages were dropped: the output was too slow\n`);
      return EXIT.ok;
    } finally {
      if (timer) clearTimeout(timer);
      io.signal?.removeEventListener('abort', onStop);
    }
  });
}

export const monitorCommand = command(
  'monitor',
  'print messages as they flow: routed, $upstream, dead letters',
  HELP,
  monitor,
);
