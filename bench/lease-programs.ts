/**
 * A lease against the size of the programs of the batches it does not deal
 * from: the store's own work, no HTTP and no Docker. For each store, two
 * side by side, each with one user's BATCHES batches running: one batch of
 * a 1 KiB program whose items are dealt, and BATCHES - 1 others at their
 * maxParallel (one item each held by another agent), so that every lease
 * weighs them and deals none of theirs. One store's others have programs of
 * 1 KiB, the other's of 1 MiB. Rounds alternate between the two: lease one
 * item, report its result. A lease reads the programs of the batches it
 * deals from only, so its time should not grow with the others' (SQLite's
 * read every running batch's program on every lease before).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openStore } from "../coordinator/store/index.js";
import type { Store, StoreSettings } from "../coordinator/store/interfaces.js";
import { openPostgresStore } from "../coordinator/store/postgres/index.js";
import { DEFAULT_LIMITS, type Outcome } from "../protocol/index.js";
import { freshDatabase } from "./coordinator/pg-stats.js";
import type { Target } from "./coordinator-capacity.js";
import { type Distribution, distribution, round } from "./stats.js";

const BATCHES = 20;
const ITEMS = 400;
const SETTINGS: StoreSettings = { leaseTtlMs: 600_000, maxAttempts: 2 };
const OK: Outcome = { ok: true, result: 1, logs: "", stats: { durationMs: 1 } };

export interface LeaseByProgramSize {
  store: "sqlite" | "postgres";
  /** One lease of one item, the other batches' programs of 1 KiB. */
  smallPrograms: Distribution;
  /** The same, the others' programs of 1 MiB. */
  largePrograms: Distribution;
  /** The 1 MiB p50 ÷ the 1 KiB p50. */
  p50Ratio: number;
  /** Within 1.5×: the programs of the batches not dealt from cost a lease nothing. */
  target: Target;
}

/** One batch of `ITEMS` items whose program is `bytes` long. */
const batchOf = (bytes: number, label: string, maxParallel?: number) => ({
  spec: {
    files: [
      {
        path: "main.mjs",
        content: `export const main = (n) => n; // ${label}\n//`.padEnd(bytes, "x"),
      },
    ],
    entry: "main.mjs",
    retries: 0,
    isolate: false,
    ...(maxParallel === undefined ? {} : { maxParallel }),
  },
  inputs: Array.from({ length: ITEMS }, (_, index) => JSON.stringify(index)),
});

/**
 * Fills `store`: the others (programs `othersBytes` long) at their
 * maxParallel of 1, then the dealt batch; returns the measured agent's id.
 */
async function filled(store: Store, othersBytes: number, now: number): Promise<string> {
  const others = BATCHES - 1;
  for (let batch = 0; batch < others; batch++) {
    await store.enqueueBatch(batchOf(othersBytes, `other ${batch}`, 1), DEFAULT_LIMITS, now);
  }
  const holder = await store.registerAgent(
    { name: "holder", hostname: "bench", slots: others, version: "bench", labels: {} },
    "token hash of the holder",
    now,
  );
  const held = await store.lease(holder.id, others, now);
  if (held.length !== others) throw new Error(`the holder leased ${held.length} of ${others}`);
  await store.enqueueBatch(batchOf(1024, "dealt"), DEFAULT_LIMITS, now);
  const agent = await store.registerAgent(
    { name: "measured", hostname: "bench", slots: 1, version: "bench", labels: {} },
    "token hash of the measured agent",
    now,
  );
  return agent.id;
}

/** `rounds` leases of one item on each store, alternating, each result reported at once. */
async function interleavedLeases(
  stores: { small: Store; large: Store },
  rounds: number,
): Promise<{ small: number[]; large: number[] }> {
  const now = Date.now();
  const agents = {
    small: await filled(stores.small, 1024, now),
    large: await filled(stores.large, 1024 * 1024, now),
  };
  const times = { small: [] as number[], large: [] as number[] };
  for (let round = 0; round < rounds + 1; round++) {
    for (const size of ["small", "large"] as const) {
      const started = performance.now();
      const [job] = await stores[size].lease(agents[size], 1, now + round);
      const took = performance.now() - started;
      if (!job) throw new Error(`the ${size}-program store leased nothing in round ${round}`);
      if (round > 0) times[size].push(took); // the first: statements prepared, pages read
      await stores[size].complete(agents[size], job.leaseId, OK, now + round);
    }
  }
  return times;
}

function result(
  store: LeaseByProgramSize["store"],
  times: { small: number[]; large: number[] },
): LeaseByProgramSize {
  const smallPrograms = distribution(times.small);
  const largePrograms = distribution(times.large);
  const p50Ratio = round(largePrograms.p50 / smallPrograms.p50, 2);
  return {
    store,
    smallPrograms,
    largePrograms,
    p50Ratio,
    target: { target: 1.5, measured: p50Ratio, met: p50Ratio <= 1.5 },
  };
}

/** SQLite's rows, and PostgreSQL's on the server of `pgUrl` when given. */
export async function benchLeaseByProgramSize(
  pgUrl?: string,
  rounds = 200,
): Promise<LeaseByProgramSize[]> {
  const results: LeaseByProgramSize[] = [];
  const dirs = [
    mkdtempSync(join(tmpdir(), "labrun-lease-")),
    mkdtempSync(join(tmpdir(), "labrun-lease-")),
  ];
  const sqlite = {
    small: openStore(dirs[0] ?? "", SETTINGS),
    large: openStore(dirs[1] ?? "", SETTINGS),
  };
  try {
    results.push(result("sqlite", await interleavedLeases(sqlite, rounds)));
  } finally {
    await Promise.all([sqlite.small.close(), sqlite.large.close()]);
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  }
  if (pgUrl === undefined) return results;
  const databases = [
    await freshDatabase(pgUrl, "labrun_bench_lease_small"),
    await freshDatabase(pgUrl, "labrun_bench_lease_large"),
  ];
  try {
    const [small, large] = await Promise.all(
      databases.map((database) => openPostgresStore(database.url, SETTINGS)),
    );
    if (!small || !large) throw new Error("no PostgreSQL store");
    try {
      results.push(result("postgres", await interleavedLeases({ small, large }, rounds)));
    } finally {
      await Promise.all([small.close(), large.close()]);
    }
  } finally {
    for (const database of databases) await database.drop();
  }
  return results;
}

export function renderLeaseByProgramSize(rows: readonly LeaseByProgramSize[]): string[] {
  return [
    "Target: a lease's p50 with the other batches' programs of 1 MiB within 1.5× of it with theirs of 1 KiB.",
    "",
    `| A lease of one item, ${BATCHES - 1} other batches running (store alone, interleaved) | their programs of 1 KiB, p50 ms | of 1 MiB, p50 ms | ratio |`,
    "|---|---:|---:|---:|",
    ...rows.map(
      (row) =>
        `| ${row.store === "sqlite" ? "SQLite" : "PostgreSQL"} | ${row.smallPrograms.p50} | ${row.largePrograms.p50} | ${row.p50Ratio}×${row.target.met ? "" : " (**over 1.5×**)"} |`,
    ),
  ];
}
