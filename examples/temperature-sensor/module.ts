/**
 * A simulated temperature sensor: every `SendInterval` seconds (a desired property) it sends machine temperature
 * and pressure, ambient temperature and humidity on its `temperatureOutput`. The `reset` direct method starts the
 * machine's warming cycle again.
 */
import { defineModule, json, type ModuleClient, method, typed } from 'edgekit';

export interface Reading {
  machine: { temperature: number; pressure: number };
  ambient: { temperature: number; humidity: number };
  timeCreated: string;
}

export const TemperatureSensor = defineModule({
  outputs: { temperatureOutput: json<Reading>() },
  desired: typed<{ SendInterval?: number }>(),
  reported: typed<{ SendInterval: number; messagesSent: number; lastReset?: string }>(),
  methods: { reset: method(typed<Record<string, never>>(), typed<{ resetAt: string }>()) },
});

export type SensorClient = ModuleClient<typeof TemperatureSensor>;

/** A machine that warms up from 21 °C towards 100 °C and cools down again on reset. */
export class Machine {
  private temperature = 21;
  constructor(private readonly random: () => number = Math.random) {}
  read(now: Date): Reading {
    this.temperature += 0.5 + this.random() * 1.5;
    if (this.temperature > 100) this.temperature = 100;
    const noise = () => this.random() - 0.5;
    return {
      machine: {
        temperature: round(this.temperature),
        pressure: round(1 + (this.temperature - 21) / 79 + noise() * 0.1),
      },
      ambient: { temperature: round(21 + noise()), humidity: round(25 + noise() * 2) },
      timeCreated: now.toISOString(),
    };
  }
  reset(): void {
    this.temperature = 21;
  }
}

const round = (n: number) => Math.round(n * 100) / 100;

/** Starts sending readings; resolves to a function that stops. */
export async function startSensor(client: SensorClient, machine = new Machine()): Promise<() => void> {
  let intervalSeconds = 5;
  let sent = 0;
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  const schedule = () => {
    clearTimeout(timer);
    if (!stopped) timer = setTimeout(tick, intervalSeconds * 1000);
  };
  const tick = async () => {
    try {
      await client.send('temperatureOutput', machine.read(new Date()));
      sent++;
    } catch (error) {
      if (!stopped) console.error('sensor: send failed:', error);
    }
    schedule();
  };
  await client.onDesired(async (desired) => {
    if (typeof desired.SendInterval === 'number' && desired.SendInterval > 0) {
      intervalSeconds = desired.SendInterval;
      if (timer !== undefined) schedule(); // running: apply the new interval now
    }
    await client.report({ SendInterval: intervalSeconds, messagesSent: sent });
  });
  await client.handle('reset', async () => {
    machine.reset();
    const resetAt = new Date().toISOString();
    await client.report({ lastReset: resetAt });
    return { resetAt };
  });
  schedule();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}
