/**
 * `edgekit status [device]`: a table of a device's modules — deployed ones and any that connected — with presence
 * and when each was last seen.
 */
import type { DeploymentStatus, DeviceLink, ModuleStatus, RecordProblem } from '../../service/client.js';
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
  visible,
  visibleJson,
  withService,
} from '../shared.js';

const HELP = `Usage: edgekit status [device] [options]

Prints a table of a device's modules (those its deployment record lists and any
that connected) with their presence (online, offline, unknown: never connected),
since when, and when each was last seen; then where each device's deployment
stands (applied, pending or failed: not complete — apply it again), and, for a
device bridged to this broker, whether its link is up. Without a
device, every device with a deployment or a module presence (MQTT and memory;
AMQP cannot list, name a device). Records on the broker that are invalid are
listed with why, and counted.

${BROKER_HELP}

Exit status: 0 printed (also with invalid records), 1 the broker failed, 2 usage error.

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

/** What `status` learned about one device. */
interface DeviceReport {
  readonly deployment: DeploymentStatus | undefined;
  readonly modules: readonly ModuleStatus[];
  /** The device's bridge to this broker; `undefined` when it has none. */
  readonly link: DeviceLink | undefined;
}

/** One line on the device's link to this broker, or `undefined` when it has no bridge. */
function linkLine(deviceId: string, link: DeviceLink | undefined): string | undefined {
  if (link === undefined) return undefined;
  if (link.state === 'connected') return `cloud link of ${deviceId}: connected`;
  if (link.state === 'disconnected') {
    return `cloud link of ${deviceId}: disconnected (the presence above is as last reported before the link went down)`;
  }
  return `cloud link of ${deviceId}: invalid record: ${visible(link.problem)}`;
}

/** One line on where a device's deployment stands, or `undefined` when it has none. */
function deploymentLine(deviceId: string, d: DeploymentStatus | undefined, now: number): string | undefined {
  if (d === undefined) return undefined;
  const who = `deployment of ${deviceId}`;
  if (d.state === 'invalid') return `${who}: invalid record: ${visible(d.problem)}`;
  const name = d.generation > 0 ? ` #${d.generation}` : '';
  if (d.state === 'applied') {
    return `${who}${name}: applied${d.appliedAt === undefined || d.appliedAt === 0 ? '' : ` ${timeOf(d.appliedAt, now)}`}`;
  }
  const since = d.startedAt === undefined ? '' : ` since ${timeOf(d.startedAt, now)}`;
  if (d.state === 'pending') {
    return `${who}${name}: pending${since} (not complete: being applied, or stopped without a record of why; apply it again)`;
  }
  const f = d.failure;
  const why =
    f === undefined ? '' : ` at ${f.step}${f.module === undefined ? '' : ` (${f.module})`}: ${visible(f.reason)}`;
  return `${who}${name}: failed${why} (not complete: apply it again)`;
}

/** Every invalid record of the report, as `<where>: <why>` lines. */
function problemsOf(devices: ReadonlyMap<string, DeviceReport>, invalidKeys: readonly RecordProblem[]): string[] {
  const lines: string[] = invalidKeys.map((p) => `${visible(p.key)}: ${visible(p.problem)}`);
  for (const [deviceId, report] of devices) {
    if (report.deployment?.state === 'invalid') lines.push(`${deviceId}: ${visible(report.deployment.problem)}`);
    if (report.link?.state === 'invalid') lines.push(`${deviceId} (cloud link): ${visible(report.link.problem)}`);
    for (const m of report.modules) {
      if (m.problem !== undefined) lines.push(`${deviceId}/${visible(m.moduleId)}: ${visible(m.problem)}`);
    }
  }
  return lines;
}

function render(devices: ReadonlyMap<string, DeviceReport>, problems: readonly string[], io: CliIo): string {
  const paint = painter(io);
  const now = Date.now();
  const rows: string[][] = [['DEVICE', 'MODULE', 'STATE', 'SINCE', 'LAST SEEN', 'DEPLOYED', 'SDK']];
  const notes: string[] = [];
  for (const [deviceId, { deployment, modules, link }] of devices) {
    for (const m of modules) {
      const state =
        m.problem !== undefined
          ? 'invalid record'
          : m.state === 'offline' && m.reason === 'connection-lost'
            ? 'offline (lost)'
            : m.state;
      const deployed = !m.deployed
        ? 'no'
        : m.deploymentState === undefined || m.deploymentState === 'applied'
          ? 'yes'
          : `yes (${m.deploymentState})`;
      rows.push([
        deviceId,
        visible(m.moduleId),
        state,
        m.since === undefined ? '-' : timeOf(m.since, now),
        m.lastSeen === undefined ? '-' : ago(m.lastSeen, now),
        deployed,
        m.sdk === undefined ? '-' : visible(m.sdk),
      ]);
    }
    const line = deploymentLine(deviceId, deployment, now);
    if (line !== undefined) {
      notes.push(deployment?.state === 'applied' ? line : paint('red', line));
    }
    const linkNote = linkLine(deviceId, link);
    if (linkNote !== undefined) notes.push(link?.state === 'connected' ? linkNote : paint('red', linkNote));
  }
  const problemText =
    problems.length === 0
      ? ''
      : `${paint('red', `${problems.length} invalid record${problems.length === 1 ? '' : 's'} on the broker:`)}\n${problems.map((p) => `  ${p}`).join('\n')}\n`;
  if (rows.length === 1) {
    const none = notes.length === 0 ? 'no modules: nothing deployed and no module has connected\n' : '';
    return `${none}${notes.map((n) => `${n}\n`).join('')}${problemText}`;
  }
  const text = table(rows);
  const colour = (line: string) =>
    line.includes(' online ')
      ? line.replace(' online ', ` ${paint('green', 'online')} `)
      : line.includes(' offline') || line.includes(' invalid record ')
        ? paint('red', line)
        : line;
  const [head, ...body] = text.split('\n');
  return `${paint('bold', head ?? '')}\n${body.map(colour).join('\n')}\n${notes.map((n) => `${n}\n`).join('')}${problemText}`;
}

async function status(args: readonly string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseCommand(args, {});
  const [device, ...extra] = positionals;
  if (extra.length > 0) throw new UsageError(`unexpected argument "${extra[0]}"`);
  if (device !== undefined) nameArgument('device id', device);
  return withService(values, io, async (service) => {
    const invalidKeys: RecordProblem[] = [];
    const deviceIds =
      device === undefined ? await service.devices({ onInvalid: (p) => invalidKeys.push(p) }) : [device];
    const devices = new Map<string, DeviceReport>();
    for (const id of deviceIds) {
      const [deployment, modules, link] = await Promise.all([
        service.deployment(id),
        service.modules(id),
        service.link(id),
      ]);
      devices.set(id, { deployment, modules, link });
    }
    const problems = problemsOf(devices, invalidKeys);
    if (values.json === true) {
      // An array of devices, as before; each says what of its own is invalid. Keys that name no valid device belong
      // to none: they go to stderr below.
      const entries = [...devices].map(([deviceId, r]) => ({
        deviceId,
        deployment: r.deployment ?? null,
        modules: r.modules,
        link: r.link ?? null,
        invalidRecords:
          (r.deployment?.state === 'invalid' ? 1 : 0) +
          (r.link?.state === 'invalid' ? 1 : 0) +
          r.modules.filter((m) => m.problem !== undefined).length,
      }));
      io.stdout.write(`${visibleJson(entries, 2)}\n`);
      for (const p of invalidKeys) io.stderr.write(`edgekit status: ${visible(p.key)}: ${visible(p.problem)}\n`);
    } else io.stdout.write(render(devices, problems, io));
    if (problems.length > 0) {
      io.stderr.write(
        `edgekit status: ${problems.length} invalid record${problems.length === 1 ? '' : 's'} on the broker (listed${values.json === true ? ' in the output' : ' above'})\n`,
      );
    }
    return EXIT.ok;
  });
}

export const statusCommand = command(
  'status',
  "a table of a device's modules with presence and last-seen, and where its deployment stands",
  HELP,
  status,
);
