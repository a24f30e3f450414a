/** Shared helpers for the benchmarks: a 256-byte JSON body, timing, and a table printer. */

/** A telemetry-like body whose JSON is 256 bytes. */
export function body256(): {
  machine: { temperature: number; pressure: number };
  ambient: { temperature: number; humidity: number };
  timeCreated: string;
  pad: string;
} {
  const base = {
    machine: { temperature: 31.25, pressure: 1.19 },
    ambient: { temperature: 20.93, humidity: 25.5 },
    timeCreated: '2026-11-26T04:30:00.000Z',
    pad: '',
  };
  base.pad = 'x'.repeat(256 - JSON.stringify(base).length);
  return base;
}

/** Runs `fn` (which processes `n` items) `rounds` times after a warm-up; returns the median items per second. */
export async function rate(n: number, rounds: number, fn: (n: number) => Promise<void> | void): Promise<number> {
  await fn(Math.min(n, 20_000));
  const rates: number[] = [];
  for (let i = 0; i < rounds; i++) {
    const start = process.hrtime.bigint();
    await fn(n);
    const seconds = Number(process.hrtime.bigint() - start) / 1e9;
    rates.push(n / seconds);
  }
  rates.sort((a, b) => a - b);
  return rates[Math.floor(rates.length / 2)] as number;
}

export const fmt = (n: number) => Math.round(n).toLocaleString('en-US');

/** Prints rows as an aligned table. */
export function table(title: string, rows: Array<Record<string, string>>): void {
  console.log(`\n${title}`);
  const cols = Object.keys(rows[0] ?? {});
  const widths = cols.map((c) => Math.max(c.length, ...rows.map((r) => (r[c] ?? '').length)));
  console.log(cols.map((c, i) => c.padEnd(widths[i] as number)).join('  '));
  for (const r of rows) console.log(cols.map((c, i) => (r[c] ?? '').padEnd(widths[i] as number)).join('  '));
}

/**
 * Runs `a` and `b` alternately (`rounds` pairs, after one warm-up pair) so both see the same machine load; returns
 * the median rate of each and the median of the per-pair ratios b/a.
 */
export function compare(
  n: number,
  rounds: number,
  a: (n: number) => Promise<void> | void,
  b: (n: number) => Promise<void> | void,
): Promise<{ a: number; b: number; ratio: number }> {
  return comparePrepared(
    n,
    rounds,
    async (k) => async () => a(k),
    async (k) => async () => b(k),
  );
}

/**
 * {@link compare} for work with an untimed set-up: `prepare(n)` does the set-up (e.g. fills a backlog) and resolves to
 * the part that is timed.
 */
export async function comparePrepared(
  n: number,
  rounds: number,
  a: (n: number) => Promise<() => Promise<void>>,
  b: (n: number) => Promise<() => Promise<void>>,
  warmUp = 20_000,
): Promise<{ a: number; b: number; ratio: number }> {
  const time = async (prepare: (n: number) => Promise<() => Promise<void>>) => {
    const run = await prepare(n);
    const start = process.hrtime.bigint();
    await run();
    return n / (Number(process.hrtime.bigint() - start) / 1e9);
  };
  await (await a(Math.min(n, warmUp)))();
  await (await b(Math.min(n, warmUp)))();
  const ra: number[] = [];
  const rb: number[] = [];
  const ratios: number[] = [];
  for (let i = 0; i < rounds; i++) {
    const x = await time(a);
    const y = await time(b);
    ra.push(x);
    rb.push(y);
    ratios.push(y / x);
  }
  return { a: median(ra), b: median(rb), ratio: median(ratios) };
}

export function median(values: number[]): number {
  const sorted = [...values].sort((x, y) => x - y);
  return sorted[Math.floor(sorted.length / 2)] as number;
}

/**
 * A counter whose `until(n)` resolves once `hit()` was called n times since; with `timeoutInMs`, it rejects (saying
 * how far it got) when that takes longer, so a round that loses messages fails instead of hanging.
 */
export function counter(timeoutInMs?: number): { hit(): void; until(n: number): Promise<void> } {
  let count = 0;
  let target = Number.POSITIVE_INFINITY;
  let reached: (() => void) | undefined;
  return {
    hit() {
      if (++count === target) reached?.();
    },
    until(n: number): Promise<void> {
      count = 0;
      target = n;
      return new Promise<void>((resolve, reject) => {
        const timer =
          timeoutInMs === undefined
            ? undefined
            : setTimeout(() => reject(new Error(`${count} of ${n} messages after ${timeoutInMs} ms`)), timeoutInMs);
        reached = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    },
  };
}
