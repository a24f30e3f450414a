/**
 * `edgekit status [device]`: a table of a device's modules — deployed ones and any that connected — with presence
 * and when each was last seen.
 */
import type { ModuleStatus } from '../../service/client.js';
import {
  BROKER_HELP,
  type CliIo,
  command,
  EXIT,
  nameArgument,
  painter,
  parseCommand,
  timeOf,
  UsageError,
  withService,
} from '../shared.js';

const HELP = `Usage: edgekit status [device] [options]

Prints a table of a device's modules (those its last deployment lists and any
that connected) with their presence (online, offline, unknown: never connected),
since when, and when each was last seen. Without a device, every device with a
deployment or a module presence (MQTT and memory; AMQP cannot list, name a device).

${BROKER_HELP}

Exit status: 0 printed, 1 the broker failed, 2 usage error.

Example:
  edgekit status gw-1 --broker amqp://guest:guest@127.0.0.1
`;

function ago(ms: number, now: number): string {
  const s = Math.max(0, Math.round((now - ms) / 1000));
  if (s < 2) return 'now';
  if (s < 120) return `${s} s ago`;
  if (s < 7200) return `${Math.round(s / 60)} min ago`;
  return `${Math.round(s / 3600)} h ago`;
}

function table(rows: readonly (readonly string[])[]): string {
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length))) ?? [];
  return rows
    .map((r) =>
      r
        .map((cell, i) => cell.padEnd(widths[i] ?? 0))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

function render(devices: ReadonlyMap<string, ModuleStatus[]>, io: CliIo): string {
  const paint = painter(io);
  const now = Date.now();
  const rows: string[][] = [['DEVICE', 'MODULE', 'STATE', 'SINCE', 'LAST SEEN', 'DEPLOYED', 'SDK']];
  for (const [deviceId, modules] of devices) {
    for (const m of modules) {
      const state = m.state === 'offline' && m.reason === 'connection-lost' ? 'offline (lost)' : m.state;
      rows.push([
        deviceId,
        m.moduleId,
        state,
        m.since === undefined ? '-' : timeOf(m.since, now),
        m.lastSeen === undefined ? '-' : ago(m.lastSeen, now),
        m.deployed ? 'yes' : 'no',
        m.sdk ?? '-',
      ]);
    }
  }
  if (rows.length === 1) return 'no modules: nothing deployed and no module has connected\n';
  const text = table(rows);
  const colour = (line: string) =>
    line.includes(' online ')
      ? line.replace(' online ', ` ${paint('green', 'online')} `)
      : line.includes(' offline')
        ? paint('red', line)
        : line;
  const [head, ...body] = text.split('\n');
  return `${paint('bold', head ?? '')}\n${body.map(colour).join('\n')}\n`;
}

async function status(args: readonly string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseCommand(args, {});
  const [device, ...extra] = positionals;
  if (extra.length > 0) throw new UsageError(`unexpected argument "${extra[0]}"`);
  if (device !== undefined) nameArgument('device id', device);
  return withService(values, io, async (service) => {
    const deviceIds = device === undefined ? await service.devices() : [device];
    const devices = new Map<string, ModuleStatus[]>();
    for (const id of deviceIds) devices.set(id, await service.modules(id));
    if (values.json === true) {
      io.stdout.write(
        `${JSON.stringify(
          [...devices].map(([deviceId, modules]) => ({ deviceId, modules })),
          null,
          2,
        )}\n`,
      );
    } else io.stdout.write(render(devices, io));
    return EXIT.ok;
  });
}

export const statusCommand = command(
  'status',
  "a table of a device's modules with presence and last-seen",
  HELP,
  status,
);
