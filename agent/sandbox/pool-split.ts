import type { Runtime } from "../../protocol/index.js";

/** How many recent jobs decide the split. */
const WINDOW = 32;

/**
 * Splits the warm pool's containers between runtimes by recent demand: the
 * runtimes of the last WINDOW jobs, in proportion (largest remainder), each
 * runtime seen in them getting at least one container while there are enough
 * to go round. Before any job, the containers are split evenly.
 *
 * @example
 * const split = new DemandSplit(["node", "python"]);
 * split.record("python");
 * split.shares(4) // { node: 0, python: 4 }
 */
export class DemandSplit {
  private readonly recent: Runtime[] = [];

  constructor(private readonly runtimes: readonly Runtime[]) {}

  record(runtime: Runtime): void {
    this.recent.push(runtime);
    if (this.recent.length > WINDOW) this.recent.shift();
  }

  shares(total: number): Partial<Record<Runtime, number>> {
    const shares: Partial<Record<Runtime, number>> = {};
    for (const runtime of this.runtimes) shares[runtime] = 0;
    if (this.runtimes.length === 0 || total <= 0) return shares;
    const counts = this.runtimes.map((runtime) =>
      this.recent.length === 0 ? 1 : this.recent.filter((seen) => seen === runtime).length,
    );
    const sum = counts.reduce((a, b) => a + b, 0);
    const exact = counts.map((count) => (count * total) / sum);
    const given = exact.map(Math.floor);
    let left = total - given.reduce((a, b) => a + b, 0);
    // Largest remainders first; ties go to the runtime listed first (node).
    const order = exact
      .map((value, i) => ({ i, remainder: value - Math.floor(value) }))
      .sort((a, b) => b.remainder - a.remainder || a.i - b.i);
    for (const { i } of order) {
      if (left === 0) break;
      given[i] = (given[i] ?? 0) + 1;
      left -= 1;
    }
    // A runtime in demand gets one container, taken from the best served.
    const wanted = counts.filter((count) => count > 0).length;
    if (total >= wanted) {
      counts.forEach((count, i) => {
        if (count === 0 || (given[i] ?? 0) > 0) return;
        const richest = given.indexOf(Math.max(...given));
        given[richest] = (given[richest] ?? 0) - 1;
        given[i] = 1;
      });
    }
    this.runtimes.forEach((runtime, i) => {
      shares[runtime] = given[i] ?? 0;
    });
    return shares;
  }
}
