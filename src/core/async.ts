/** Small async building blocks shared by the core and the test hub. */

/** A promise with its resolve/reject exposed. */
export interface Deferred<T> {
  readonly promise: Promise<T>;
  resolve(value: T): void;
  reject(reason: unknown): void;
}

export function deferred<T>(): Deferred<T> {
  let resolve!: (value: T) => void;
  let reject!: (reason: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/**
 * A queue read as an async iterator by one reader; `close()` ends the iteration after the queued items. Unbounded
 * unless `maxItems` is given: then the oldest waiting item is dropped for a new one (counted in `dropped`).
 * Used for `status()`, message iterators, the test hub's collectors and the service client's watches.
 */
export class Channel<T> implements AsyncIterableIterator<T> {
  private readonly items: T[] = [];
  private waiter: Deferred<IteratorResult<T>> | undefined;
  private done = false;
  /** Items dropped because `maxItems` were waiting. */
  dropped = 0;

  constructor(
    private readonly onReturn?: () => void,
    private readonly maxItems = Number.POSITIVE_INFINITY,
  ) {}

  push(item: T): void {
    if (this.done) return;
    if (this.waiter) {
      const w = this.waiter;
      this.waiter = undefined;
      w.resolve({ value: item, done: false });
      return;
    }
    if (this.items.length >= this.maxItems) {
      this.items.shift();
      this.dropped++;
    }
    this.items.push(item);
  }

  close(): void {
    if (this.done) return;
    this.done = true;
    if (this.waiter) {
      this.waiter.resolve({ value: undefined, done: true });
      this.waiter = undefined;
    }
  }

  next(): Promise<IteratorResult<T>> {
    if (this.items.length > 0) return Promise.resolve({ value: this.items.shift() as T, done: false });
    if (this.done) return Promise.resolve({ value: undefined, done: true });
    this.waiter = deferred();
    return this.waiter.promise;
  }

  return(): Promise<IteratorResult<T>> {
    this.items.length = 0;
    this.close();
    this.onReturn?.();
    return Promise.resolve({ value: undefined, done: true });
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<T> {
    return this;
  }
}

/** A counting semaphore bounding concurrent work. */
export class Semaphore {
  private active = 0;
  private readonly waiting: Array<() => void> = [];

  constructor(private readonly limit: number) {}

  acquire(): Promise<void> | undefined {
    if (this.active < this.limit) {
      this.active++;
      return undefined;
    }
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  release(): void {
    const next = this.waiting.shift();
    if (next) next();
    else this.active--;
  }
}

/** An async iterator over a channel that `close()`s (once) when the reader stops early or asks to. */
export interface ClosableIterator<T> extends AsyncIterableIterator<T> {
  close(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

/** Reads `channel`; `close()` and an early `return()` run `stop` once, then end the iteration. */
export function closableIterator<T>(channel: Channel<T>, stop: () => Promise<void>): ClosableIterator<T> {
  let stopping: Promise<void> | undefined;
  const close = (): Promise<void> => {
    channel.close();
    stopping ??= stop();
    return stopping;
  };
  const iterator: ClosableIterator<T> = {
    next: () => channel.next(),
    return: async () => {
      await close();
      return { value: undefined, done: true };
    },
    close,
    [Symbol.asyncDispose]: close,
    [Symbol.asyncIterator]: () => iterator,
  };
  return iterator;
}
