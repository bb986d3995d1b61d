import { execFileSync } from "node:child_process";
import { readdirSync, statSync, watch } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import Database from "better-sqlite3";
import { describe, expect, it } from "vitest";
import { DEFAULT_LIMITS } from "../../protocol/index.js";
import { onCleanup, openTestStore, tempDir } from "../test-support/store-fixtures.js";
import { CHECKPOINT_INTERVAL_MS } from "./checkpointer.js";
import { COMPLETE_SQL } from "./complete.js";
import { openDatabase } from "./database.js";
import { LEASE_SQL } from "./lease.js";
import { SCHEMA_VERSION } from "./migrations.js";
import { STATS_SQL } from "./stats.js";
import { agentSpec, T0 } from "./suite/fixtures.js";

// What only the SQLite store has: its file, its pragmas, its query plans and
// rows written by an older labrun. Every verb's behaviour is in the store
// suite (suite/, run on SQLite by store.sqlite.test.ts).

/** `EXPLAIN QUERY PLAN` of `sql` on the store's database in `dataDir`. */
function planner(dataDir: string) {
  const db = new Database(join(dataDir, "labrun.db"), { readonly: true });
  onCleanup(() => db.close());
  return (sql: string, ...bindings: unknown[]) =>
    db
      .prepare(`EXPLAIN QUERY PLAN ${sql}`)
      .all(...bindings)
      .map((row) => (row as { detail: string }).detail)
      .join("; ");
}

describe("the SQLite file", () => {
  it("is in WAL mode at the current schema", async () => {
    const dataDir = tempDir();
    await openTestStore(dataDir).close();
    const db = new Database(join(dataDir, "labrun.db"), { readonly: true });
    onCleanup(() => db.close());
    expect(db.pragma("journal_mode", { simple: true })).toBe("wal");
    expect(db.pragma("user_version", { simple: true })).toBe(SCHEMA_VERSION);
  });

  // A trigger-firing statement's journal in a /var/tmp file cost ~40 µs per
  // job row (the batch bookkeeping bench fell from 11,879 to 3,686 items/s).
  it("keeps statement journals in memory, not in temp files", () => {
    const db = openDatabase(tempDir());
    onCleanup(() => db.close());
    expect(db.pragma("temp_store", { simple: true })).toBe(2); // MEMORY
  });

  // A commit that took the WAL past 1,000 pages copied them into the file and
  // fsynced it (5–15 ms) inside the verb: a lease's p99 (checkpointer.ts).
  it("checkpoints the WAL beside the verbs, not in their commits", async () => {
    const dataDir = tempDir();
    const store = openTestStore(dataDir);
    onCleanup(() => store.close());
    const file = join(dataDir, "labrun.db");
    const inputs = Array.from({ length: 20_000 }, (_, index) => `{"seed":${index}}`);
    await store.enqueueBatch(
      {
        spec: {
          source: "exports.main = (n) => n",
          filename: "main.js",
          retries: 0,
          isolate: false,
        },
        inputs,
      },
      DEFAULT_LIMITS,
      T0,
    );
    // Thousands of pages are in the WAL, none yet in the file (the schema's few may be)...
    expect(statSync(file).size).toBeLessThan(1_000_000);
    // ...until the checkpointer's connection copies them, soon after.
    await expect.poll(() => statSync(file).size, { timeout: 5_000 }).toBeGreaterThan(4_000_000);
  });

  // A checkpoint of a few pages every 200 ms made nearly every quiet job's
  // submit start the WAL over, and SQLite fsyncs the WAL's header then.
  it("leaves a small WAL alone: a quiet cluster's next commit appends, no restart to sync", async () => {
    const dataDir = tempDir();
    const store = openTestStore(dataDir);
    onCleanup(() => store.close());
    const wal = join(dataDir, "labrun.db-wal");
    const job = { source: "exports.main = () => 1", filename: "main.js" };
    await store.enqueue(job, T0);
    const before = statSync(wal).size;
    await sleep(CHECKPOINT_INTERVAL_MS * 3);
    await store.enqueue(job, T0 + 1);
    // Started over, the WAL would hold the second job's pages alone (and,
    // cut back to nothing at the restart, be smaller than before).
    expect(statSync(wal).size).toBeGreaterThan(before);
  });

  // Its worker's "message" listener kept every process with a store open alive.
  it("never keeps a process alive: one that leaves its store open still exits", () => {
    const store = fileURLToPath(new URL("../../dist/coordinator/store/index.js", import.meta.url));
    const script = `const { openStore } = await import(${JSON.stringify(store)});
      openStore(${JSON.stringify(tempDir())}, { leaseTtlMs: 1000, maxAttempts: 2 });`;
    expect(() =>
      execFileSync(process.execPath, ["--input-type=module", "-e", script], { timeout: 10_000 }),
    ).not.toThrow();
  });

  // The worker is unref'd, so a process whose only work left was awaiting
  // close() ran out of events before the worker's exit and ended there, the
  // await unsettled (exit 13, or 0 mid-way through npm run bench).
  it("settles close() in a process with nothing else left to do", () => {
    const store = fileURLToPath(new URL("../../dist/coordinator/store/index.js", import.meta.url));
    const script = `const { openStore } = await import(${JSON.stringify(store)});
      const store = openStore(${JSON.stringify(tempDir())}, { leaseTtlMs: 1000, maxAttempts: 2 });
      await store.close();
      process.stdout.write("closed");`;
    for (let run = 0; run < 5; run++) {
      const out = execFileSync(process.execPath, ["--input-type=module", "-e", script], {
        timeout: 10_000,
        encoding: "utf8",
      });
      expect(out).toBe("closed");
    }
  });

  // close() used to return before the checkpointer's thread had closed its
  // connection: that thread then wrote the WAL and -shm files into a folder
  // its caller was deleting (ENOTEMPTY in rmSync, seen under load).
  it("has closed every connection of its own once close() settles", async () => {
    const dataDir = tempDir();
    await openTestStore(dataDir).close();
    const touched: string[] = [];
    const watcher = watch(dataDir, (_event, name) => touched.push(String(name)));
    onCleanup(() => watcher.close());
    await sleep(1_000); // a thread that had not yet started would have opened the file by now
    expect(touched).toEqual([]);
    expect(readdirSync(dataDir)).toEqual(["labrun.db"]);
  });

  it("refuses a database from a newer labrun", async () => {
    const dataDir = tempDir();
    await openTestStore(dataDir).close();
    const db = new Database(join(dataDir, "labrun.db"));
    db.pragma(`user_version = ${SCHEMA_VERSION + 1}`);
    db.close();
    expect(() => openTestStore(dataDir)).toThrow(/newer than this labrun knows/);
  });

  it("runs a job stored before the newer limits existed with their defaults", async () => {
    const dataDir = tempDir();
    const store = openTestStore(dataDir);
    const { id } = await store.enqueue({ source: "x", filename: "main.js" }, T0);
    const db = new Database(join(dataDir, "labrun.db"));
    onCleanup(() => db.close());
    db.prepare("UPDATE jobs SET limits = ? WHERE id = ?").run(
      JSON.stringify({ timeoutMs: 5000, memoryMb: 128, cpus: 1 }),
      id,
    );
    const old = { ...DEFAULT_LIMITS, timeoutMs: 5000, memoryMb: 128 };
    expect((await store.getJob(id)).limits).toEqual(old);
    const agent = await store.registerAgent(
      { ...agentSpec(), maxLimits: { pids: DEFAULT_LIMITS.pids, tmpfsMb: 64 } },
      "hash",
      T0,
    );
    const [leased] = await store.lease(agent.id, 1, T0);
    expect(leased?.spec.limits).toEqual(old);
  });

  // SQLite rewrites a whole row on UPDATE: a program kept in the jobs row was
  // written again at every change of state (migration 13).
  it("keeps a single job's program out of its jobs row, and prunes it with the job", async () => {
    const dataDir = tempDir();
    const store = openTestStore(dataDir);
    const files = [{ path: "main.mjs", content: "export const main = () => 1;" }];
    const { id } = await store.enqueue({ files, entry: "main.mjs" }, T0);
    const db = new Database(join(dataDir, "labrun.db"));
    onCleanup(() => db.close());
    const row = db.prepare("SELECT seq, source, files FROM jobs WHERE id = ?").get(id) as {
      seq: number;
      source: string;
      files: string | null;
    };
    expect({ source: row.source, files: row.files }).toEqual({ source: "", files: null });
    const programs = db.prepare("SELECT COUNT(*) FROM job_programs WHERE seq = ?").pluck();
    expect(programs.get(row.seq)).toBe(1);
    const agent = await store.registerAgent(agentSpec(), "hash", T0);
    const [leased] = await store.lease(agent.id, 1, T0);
    expect(leased?.spec.files?.value).toEqual(files);
    const outcome = { ok: true as const, result: 1, logs: "", stats: { durationMs: 1 } };
    await store.complete(agent.id, leased?.leaseId ?? "", outcome, T0 + 1);
    while ((await store.pruneFinished(T0 + 2)) > 0);
    expect(programs.get(row.seq)).toBe(0);
  });

  it("moves the programs of jobs stored before migration 13 out of their rows", async () => {
    const dataDir = tempDir();
    await openTestStore(dataDir).close();
    const db = new Database(join(dataDir, "labrun.db"));
    onCleanup(() => db.close());
    // A job as an older labrun stored it: its program in the jobs row, no job_programs row.
    db.exec(`DROP TRIGGER job_programs_delete; DROP TABLE job_programs; PRAGMA user_version = 12;
      INSERT INTO jobs (id, state, source, filename, runtime, input, limits, labels, max_attempts, created_at, owner)
      VALUES ('j_old', 'queued', 'exports.main = () => 7', 'main.js', 'node', 'null', '{}', '{}', 3, ${T0}, 'default')`);
    const store = openTestStore(dataDir);
    expect(db.prepare("SELECT source FROM jobs WHERE id = 'j_old'").pluck().get()).toBe("");
    const agent = await store.registerAgent(agentSpec(), "hash", T0);
    const [leased] = await store.lease(agent.id, 1, T0);
    expect(leased?.spec.source).toBe("exports.main = () => 7");
  });
});

describe("query plans", () => {
  it("finds a queued single job through its own index, never by scanning a batch's items", async () => {
    const dataDir = tempDir();
    const store = openTestStore(dataDir);
    await store.enqueueBatch(
      {
        spec: { source: "x", filename: "main.js", retries: 0, isolate: false },
        inputs: Array.from({ length: 10 }, (_, index) => JSON.stringify(index)),
      },
      DEFAULT_LIMITS,
      T0,
    );
    const plan = planner(dataDir);
    const fits = { room: 4, runtimes: '["node"]', owner: "default", ...DEFAULT_LIMITS };
    expect(plan(LEASE_SQL.singles, fits)).toMatch(/USING INDEX jobs_owner_singles_queued/);
    expect(plan(LEASE_SQL.singles, fits)).not.toMatch(/TEMP B-TREE/);
    expect(plan(LEASE_SQL.items, "b", 4)).toMatch(/USING INDEX jobs_by_batch_state/);
    expect(plan(LEASE_SQL.items, "b", 4)).not.toMatch(/TEMP B-TREE/);
  });

  it("finds a job by its lease and an agent's jobs through the partial indexes that hold only leased jobs", () => {
    const dataDir = tempDir();
    openTestStore(dataDir);
    const plan = planner(dataDir);
    expect(plan("SELECT id, state FROM jobs WHERE lease_id = ?", "l")).toMatch(
      /USING INDEX jobs_by_lease \(lease_id=\?\)/,
    );
    expect(
      plan("SELECT COUNT(*) FROM jobs WHERE agent_id = ? AND state IN ('leased', 'running')", "a"),
    ).toMatch(/USING COVERING INDEX jobs_by_agent \(agent_id=\? AND state=\?\)/);
  });

  it("marks a lease's jobs, and reads and ends a result group's, by seq and lease id, never by a scan", () => {
    const dataDir = tempDir();
    openTestStore(dataDir);
    const plan = planner(dataDir);
    const mark = { dealt: "[]", agentId: "a", node: "n", deadline: 1, now: 1 };
    expect(plan(LEASE_SQL.mark, mark)).toMatch(
      /SEARCH jobs USING INTEGER PRIMARY KEY \(rowid=\?\)/,
    );
    expect(plan(COMPLETE_SQL.byLeases, "[]")).toMatch(
      /SEARCH jobs USING INDEX jobs_by_lease \(lease_id=\?\)/,
    );
    expect(plan(COMPLETE_SQL.finishMany, { done: "[]", now: 1 })).toMatch(
      /SEARCH jobs USING INTEGER PRIMARY KEY \(rowid=\?\)/,
    );
    for (const sql of [LEASE_SQL.mark, COMPLETE_SQL.byLeases, COMPLETE_SQL.finishMany]) {
      expect(plan(sql, sql === COMPLETE_SQL.byLeases ? "[]" : { ...mark, done: "[]" })).not.toMatch(
        /SCAN jobs/,
      );
    }
  });

  it("answers stats from indexes, never reading job rows (programs can be 1 MiB each)", () => {
    const dataDir = tempDir();
    openTestStore(dataDir);
    const plan = planner(dataDir);
    const windows = { minuteAgo: 0, hourAgo: 0 };
    expect(plan(STATS_SQL.jobsByState, windows)).toMatch(/COVERING INDEX jobs_by_state/);
    expect(plan(STATS_SQL.itemsByState, windows)).toMatch(/COVERING INDEX jobs_by_batch_state/);
    expect(plan(STATS_SQL.finishedSince, windows)).toMatch(/COVERING INDEX jobs_by_finished/);
  });
});
