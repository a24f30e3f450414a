/**
 * A module process killed with SIGKILL in the middle of a handler, on a real Mosquitto: the broker has only seen the
 * message delivered, never acknowledged (the PUBACK waits for the handler), so when the module starts again with
 * the same identity the message is redelivered — flagged as such — and processed; the message queued behind it is
 * processed too. Meanwhile the broker's last will marks the killed module offline.
 */
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { systemClock } from '../../../src/clock.js';
import { decodePresence, type Presence } from '../../../src/core/wire.js';
import { addresses } from '../../../src/names.js';
import { injectMessage, readPresence, readTwin } from '../../../src/service/operations.js';
import { parseEvent, useProcesses } from './fixtures/child-process.js';
import { jsonBytes } from './fixtures/module-clients.js';
import { transportFor, unique, useConnections, useMosquitto } from './support/fixtures.js';
import { Inbox } from './support/wait.js';

const broker = useMosquitto();
const connections = useConnections();
const processes = useProcesses();
const WORKER = path.join(import.meta.dirname, 'fixtures/worker-module.ts');

const isEvent = (event: string, messageId?: string) => (line: string) => {
  const parsed = parseEvent(line);
  return parsed?.event === event && (messageId === undefined || parsed.messageId === messageId);
};

describe('a module process killed mid-handler', () => {
  it('gets the message again when it starts again, and processes it', { timeout: 45_000 }, async () => {
    const deviceId = unique('dev');
    const moduleId = 'worker';
    const env = { BROKER_URL: broker().url, DEVICE_ID: deviceId, MODULE_ID: moduleId };
    const operator = await connections.open(transportFor(broker().url), { clientId: `${deviceId}/operator` });
    const target = { deviceId, moduleId, input: 'jobs' };
    const inject = (job: number) =>
      injectMessage(operator, systemClock, target, jsonBytes({ job }), { contentType: 'application/json' });

    // First run: handlers hang; the first job starts, the second waits behind it (concurrency 1).
    const first = processes.start(WORKER, { ...env, WORKER_HANG: '1' });
    await first.line(isEvent('ready'), 20_000, 'the first run to be ready');
    const presence = new Inbox<Presence | undefined>();
    await operator.watchRetained(addresses.presence(deviceId, moduleId), (value) =>
      presence.push(decodePresence(value)),
    );
    expect(presence.items.at(-1)?.state).toBe('online');
    const job1 = await inject(1);
    const job2 = await inject(2);
    const started = parseEvent(await first.line(isEvent('started', job1), 10_000, 'job 1 to start'));
    expect(started).toMatchObject({ job: 1, redelivered: false });

    // SIGKILL: no close(), no DISCONNECT, no PUBACK for job 1.
    expect(await first.stop('SIGKILL')).toEqual({ code: null, signal: 'SIGKILL' });
    await presence.find((p) => p?.state === 'offline', 10_000, 'the last will to mark the module offline');
    expect(await readPresence(operator, deviceId, moduleId)).toMatchObject({
      state: 'offline',
      reason: 'connection-lost',
    });
    expect(first.lines.items.some(isEvent('processed'))).toBe(false);

    // Second run, same identity: the persistent session hands job 1 back, flagged as redelivered, then job 2.
    const second = processes.start(WORKER, env);

    const again = parseEvent(await second.line(isEvent('started', job1), 20_000, 'job 1 to be redelivered'));
    expect(again).toMatchObject({ job: 1, redelivered: true });
    await second.line(isEvent('processed', job1), 10_000, 'job 1 to be processed');
    await second.line(isEvent('processed', job2), 10_000, 'job 2 to be processed');
    const processedJobs = second.lines.items
      .map(parseEvent)
      .filter((e) => e?.event === 'processed')
      .map((e) => e?.job);
    expect(processedJobs).toEqual([1, 2]);

    // The reported twin records the work, as an operator sees it.
    const { reported } = await readTwin(operator, deviceId, moduleId);
    expect(reported.properties).toMatchObject({ lastJob: 2, lastMessageId: job2, processed: 2 });

    expect(await second.stop('SIGTERM')).toEqual({ code: 0, signal: null });
    expect(second.lines.items.some(isEvent('closed'))).toBe(true);
    expect(second.stderr()).toBe('');
  });
});
