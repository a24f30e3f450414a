/**
 * Waiting on events with a deadline, for the MQTT integration tests: nothing here sleeps and hopes. An {@link Inbox}
 * collects values pushed by callbacks and lets a test await "n values" or "a value like this" with a timeout.
 */

/** Rejects with a message naming `what` when `promise` does not settle within `ms`. */
export async function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

interface Waiter<T> {
  readonly test: (items: readonly T[]) => boolean;
  readonly resolve: () => void;
}

/** Values pushed by callbacks, awaited by tests. */
export class Inbox<T> {
  readonly items: T[] = [];
  private readonly waiters = new Set<Waiter<T>>();

  /** Adds a value; bind it as a callback: `onValue: inbox.push`. */
  readonly push = (item: T): void => {
    this.items.push(item);
    for (const waiter of [...this.waiters]) {
      if (waiter.test(this.items)) {
        this.waiters.delete(waiter);
        waiter.resolve();
      }
    }
  };

  /** Resolves once `test(items)` holds, checked now and after every push. */
  until(test: (items: readonly T[]) => boolean, ms: number, what: string): Promise<readonly T[]> {
    if (test(this.items)) return Promise.resolve(this.items);
    let waiter!: Waiter<T>;
    const reached = new Promise<readonly T[]>((resolve) => {
      waiter = { test, resolve: () => resolve(this.items) };
      this.waiters.add(waiter);
    });
    return withTimeout(reached, ms, `${what} (have ${this.items.length}: ${preview(this.items)})`).finally(() =>
      this.waiters.delete(waiter),
    );
  }

  /** Resolves with the first `count` items once there are that many. */
  async take(count: number, ms: number, what = `${count} items`): Promise<T[]> {
    await this.until((items) => items.length >= count, ms, what);
    return this.items.slice(0, count);
  }

  /** Resolves with the first item matching `match`. */
  async find(match: (item: T) => boolean, ms: number, what: string): Promise<T> {
    await this.until((items) => items.some(match), ms, what);
    return this.items.find(match)!;
  }
}

function preview(items: readonly unknown[]): string {
  const text = JSON.stringify(items.slice(-10), (_, v) => (v instanceof Uint8Array ? new TextDecoder().decode(v) : v));
  return text.length > 300 ? `${text.slice(0, 300)}…` : text;
}

/** A promise with its resolve exposed, for one-off events. */
export function signal<T = void>(): { promise: Promise<T>; resolve: (value: T) => void } {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}
