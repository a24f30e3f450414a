/**
 * The order in which a transport with several node URLs (`amqp({ urls })`) tries them on each connect. The first
 * connect goes through the list as given; every later one starts with the node after the one that worked last, so a
 * module whose connection was lost — most likely because its node died — tries the others before that one.
 */
export class NodeRotation {
  /** Index of the node the last successful connect used; none yet. */
  private last: number | undefined;

  constructor(private readonly count: number) {
    if (!Number.isInteger(count) || count < 1) throw new RangeError(`a rotation needs at least one node, got ${count}`);
  }

  /** Indexes of every node, in the order the next connect tries them. */
  order(): number[] {
    const start = this.last === undefined ? 0 : (this.last + 1) % this.count;
    return Array.from({ length: this.count }, (_, k) => (start + k) % this.count);
  }

  /** Records the node a connect succeeded on. */
  worked(index: number): void {
    this.last = index;
  }
}
