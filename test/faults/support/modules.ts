/**
 * Module processes and operator connections for the fault suite: the fixture module (fixtures/module.ts) started
 * as its own process through a proxy, its JSON events awaited with timeouts, and an operator connection (reaching
 * the broker directly) that injects input and reads back what the module did.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, expect } from 'vitest';
import { systemClock } from '../../../src/clock.js';
import { injectMessage } from '../../../src/service/operations.js';
import type { Transport, TransportConnection } from '../../../src/transport.js';
import { type ModuleProcess, parseEvent, useProcesses } from '../../integration/mqtt/fixtures/child-process.js';

const MODULE = fileURLToPath(new URL('../fixtures/module.ts', import.meta.url));

export type Event = Record<string, unknown> & { readonly event: string };

/** A running fixture module and its events. */
export interface FaultModule {
  readonly process: ModuleProcess;
  /**
   * The first event for which `match` holds, among those printed so far or coming; with `after` (a {@link mark}),
   * only among those printed after it.
   */
  event(match: (event: Event) => boolean, ms: number, what: string, after?: number): Promise<Event>;
  /** A mark for {@link event}'s `after`: the number of lines printed so far. */
  mark(): number;
  /** Every event printed so far. */
  events(): Event[];
  /** SIGTERM, then the exit, which must be clean: code 0, nothing on stderr. */
  stopCleanly(): Promise<void>;
}

let counter = 0;

/** A device id no other test uses. */
export function uniqueDevice(label: string): string {
  counter += 1;
  return `${label}-${process.pid}-${counter}-${Math.random().toString(36).slice(2, 7)}`;
}

/** Starts fixture modules (killed after each test if still running). */
export function useFaultModules(): {
  start(options: {
    deviceId: string;
    moduleId: string;
    url: string;
    env?: Readonly<Record<string, string>>;
  }): FaultModule;
  /** Starts any script as a module process with the IoT Edge variables for `deviceId`/`moduleId` and `url`. */
  startScript(script: string, options: { deviceId: string; moduleId: string; url: string }): FaultModule;
} {
  const processes = useProcesses();
  const wrap = (child: ModuleProcess): FaultModule => {
    const events = () => child.lines.items.map(parseEvent).filter((e): e is Event => typeof e?.event === 'string');
    return {
      process: child,
      events,
      mark: () => child.lines.items.length,
      event: async (match, ms, what, after = 0) => {
        const lines = child.lines.items;
        const line = await child.line(
          (l) => {
            const parsed = parseEvent(l);
            return typeof parsed?.event === 'string' && lines.lastIndexOf(l) >= after && match(parsed as Event);
          },
          ms,
          what,
        );
        return parseEvent(line) as Event;
      },
      async stopCleanly() {
        const exit = await child.stop('SIGTERM', 20_000);
        expect(child.stderr(), 'stderr of the module process').toBe('');
        expect(exit).toEqual({ code: 0, signal: null });
      },
    };
  };
  return {
    start({ deviceId, moduleId, url, env = {} }) {
      return wrap(
        processes.start(MODULE, {
          IOTEDGE_DEVICEID: deviceId,
          IOTEDGE_MODULEID: moduleId,
          EDGEKIT_BROKER_URL: url,
          ...env,
        }),
      );
    },
    startScript(script, { deviceId, moduleId, url }) {
      return wrap(
        processes.start(path.resolve(script), {
          IOTEDGE_DEVICEID: deviceId,
          IOTEDGE_MODULEID: moduleId,
          EDGEKIT_BROKER_URL: url,
        }),
      );
    },
  };
}

/** Operator connections (straight to the broker, no proxy), closed after each test. */
export function useOperators(): { open(transport: Transport): Promise<TransportConnection> } {
  const open = new Set<TransportConnection>();
  afterEach(async () => {
    const all = [...open];
    open.clear();
    await Promise.all(all.map((c) => c.close()));
  });
  return {
    async open(transport) {
      const conn = await transport.connect({ clientId: `operator-${process.pid}-${++counter}` });
      open.add(conn);
      return conn;
    },
  };
}

/** Puts `{ n }` on the fixture module's input `in`, as a routed message would arrive. */
export function sendInput(
  operator: TransportConnection,
  deviceId: string,
  moduleId: string,
  n: number,
): Promise<string> {
  return injectMessage(
    operator,
    systemClock,
    { deviceId, moduleId, input: 'in' },
    new TextEncoder().encode(JSON.stringify({ n })),
    {
      contentType: 'application/json',
    },
  );
}
