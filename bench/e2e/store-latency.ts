import { setTimeout as sleep } from "node:timers/promises";
import { freshDatabase } from "../coordinator/pg-stats.js";
import type { Target } from "../coordinator-capacity.js";
import { type Distribution, round } from "../stats.js";
import { interleavedHttp } from "./latency.js";
import { type ClusterProcesses, launchCluster } from "./processes.js";

/** A warm single job over HTTP on each store, in the same run (issue 18). */
export interface StoreLatency {
  sqlite: Distribution;
  postgres: Distribution;
  /** With `otherDist`: PostgreSQL on that build (its own database), in the same rounds. */
  postgresOther?: Distribution;
  /** PostgreSQL's p50 ÷ SQLite's. */
  p50Ratio: number;
  /** PostgreSQL's p50 within 2× SQLite's. */
  target: Target;
}

/**
 * Two clusters side by side (`labrun coordinator` + one agent with a warm
 * pool each, real Docker), one on SQLite and one on a fresh PostgreSQL
 * database of the server of `serverUrl`; `samples` warm jobs over HTTP on
 * each, interleaved round by round. With `otherDist` (another build's
 * dist/, BENCH_COMPARE_DIST), a third cluster of that build on PostgreSQL
 * joins the rounds: a before/after at the same load.
 *
 * @example
 * const latency = await warmLatencyByStore(30, ensureDevPostgres());
 */
export async function warmLatencyByStore(
  samples: number,
  serverUrl: string,
  otherDist?: string,
): Promise<StoreLatency> {
  const database = await freshDatabase(serverUrl, "labrun_bench_latency");
  const other = otherDist ? await freshDatabase(serverUrl, "labrun_bench_latency_other") : null;
  const clusters: ClusterProcesses[] = [];
  try {
    const sqlite = await launchCluster({ slots: 1, warm: 1 });
    clusters.push(sqlite);
    const postgres = await launchCluster({ slots: 1, warm: 1, store: database.url });
    clusters.push(postgres);
    const compared = other
      ? await launchCluster({ slots: 1, warm: 1, store: other.url, dist: otherDist })
      : undefined;
    if (compared) clusters.push(compared);
    await sleep(3_000); // the pools fill
    const measured: { sqlite: Distribution; postgres: Distribution; postgresOther?: Distribution } =
      compared
        ? await interleavedHttp({ sqlite, postgres, postgresOther: compared }, samples)
        : await interleavedHttp({ sqlite, postgres }, samples);
    const p50Ratio = round(measured.postgres.p50 / measured.sqlite.p50, 2);
    return {
      ...measured,
      p50Ratio,
      target: { target: 2, measured: p50Ratio, met: p50Ratio <= 2 },
    };
  } finally {
    await Promise.all(clusters.map((cluster) => cluster.stop()));
    await database.drop();
    await other?.drop();
  }
}
