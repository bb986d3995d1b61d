import { setTimeout as sleep } from "node:timers/promises";
import { afterEach, describe, expect, it } from "vitest";
import { usePostgresDatabase } from "../../coordinator/test-support/postgres.js";
import type { Job } from "../../protocol/index.js";
import {
  call,
  type PgCoordinator,
  pgCoordinators,
  simulatedAgent,
} from "../helpers/pg-coordinators.js";
import { logEntries, waitFor } from "./helpers/processes.js";
import { recordScenario } from "./helpers/report.js";

// The maintenance leader (sweeper, retention) of two coordinator processes on
// one PostgreSQL: exactly one leads; when it dies (kill -9) or freezes
// (SIGSTOP) another takes over within 2× the lease TTL and expires the leases
// it left; a frozen leader that wakes has stepped down and never sweeps.
// The agent is simulated over HTTP: it takes a lease and goes silent, so the
// lease can only end by the leader's sweep.
const TTL_MS = 3_000;
const ARGS = ["--lease-ttl", "3s"];
const killed = usePostgresDatabase();
const stopped = usePostgresDatabase();

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

type Db = ReturnType<typeof usePostgresDatabase>;

/** Two coordinators: `first` has become the leader before `second` starts. */
async function leaderAndFollower(db: Db) {
  const group = pgCoordinators(db.url());
  cleanups.push(group.close);
  const first = await group.start(ARGS);
  await waitFor("the first coordinator to lead", async () => (await leads(first)) === 1, {
    timeoutMs: 10_000,
    intervalMs: 50,
  });
  const second = await group.start(ARGS);
  // The follower has answered for longer than a TTL: on taking over it owes no grace.
  await sleep(TTL_MS + 500);
  return { first, second };
}

const leads = (coordinator: PgCoordinator) => coordinator.metric("labrun_maintenance_leader");
const requeues = (coordinator: PgCoordinator) =>
  coordinator.metric("labrun_lease_expiries_total", 'action="requeued"');

/** The pid in the `leaders` row's holder (host:pid:random), and whether it is live. */
async function leaderRow(db: Db): Promise<{ pid: number; live: boolean } | undefined> {
  const sql = db.connect("public");
  const [row] = await sql.unsafe<{ holder: string; live: boolean }[]>(
    "SELECT holder, expires_at > now() AS live FROM leaders WHERE name = 'maintenance'",
  );
  return row ? { pid: Number(row.holder.split(":")[1]), live: row.live } : undefined;
}

/** A job submitted through `via` and leased by a simulated agent that never renews it. */
async function abandonedLease(via: PgCoordinator, name: string) {
  const agent = await simulatedAgent(via, name);
  const { id } = await call<{ id: string }>(
    via.url,
    via.tokens.client,
    "POST",
    "/v1/jobs",
    { source: "exports.main = () => 1" },
    201,
  );
  const [leased] = await agent.lease(via, 0);
  expect(leased?.id).toBe(id);
  return { id, agent };
}

const stateOf = async (via: PgCoordinator, id: string) =>
  (await call<Job>(via.url, via.tokens.client, "GET", `/v1/jobs/${id}`)).state;

/** Log lines of `coordinator` about a sweep that queued jobs again. */
const sweptIn = (coordinator: PgCoordinator) =>
  logEntries(coordinator.logFile, /^leases expired; jobs queued again$/);

describe("one maintenance leader among coordinators on one PostgreSQL", () => {
  it("kill -9 of the leader: the other leads and requeues the expired lease within 2× TTL", async () => {
    const { first, second } = await leaderAndFollower(killed);
    expect([await leads(first), await leads(second)]).toEqual([1, 0]);
    expect(await leaderRow(killed)).toEqual({ pid: first.pid, live: true });

    const { id } = await abandonedLease(second, "sim-killed");
    const killedAt = Date.now();
    await first.signal("SIGKILL");
    const tookOverMs = await waitFor(
      "the second to lead",
      async () => (await leads(second)) === 1,
      {
        timeoutMs: 4 * TTL_MS,
        intervalMs: 50,
      },
    );
    const requeuedMs = await waitFor(
      "the abandoned lease to be requeued",
      async () => (await stateOf(second, id)) === "queued",
      { timeoutMs: 4 * TTL_MS, intervalMs: 50 },
    ).then(() => Date.now() - killedAt);
    recordScenario({
      scenario: "leader-kill",
      title: "kill -9 the maintenance leader of two coordinators",
      jobsSubmitted: 1,
      lost: 0,
      duplicated: 0,
      succeeded: 0,
      failed: 0,
      rerun: 0,
      recoveryMs: { takeover: tookOverMs, requeue: requeuedMs },
      notes: { leaseTtlMs: TTL_MS },
    });
    expect(tookOverMs).toBeLessThan(2 * TTL_MS);
    expect(requeuedMs).toBeLessThan(2 * TTL_MS);
    expect(await requeues(second)).toBe(1);
    expect(await leaderRow(killed)).toEqual({ pid: second.pid, live: true });
    expect(logEntries(second.logFile, /^became the maintenance leader$/)).toHaveLength(1);
  });

  it("SIGSTOP of the leader past its TTL: the other takes over; on SIGCONT the old one has stepped down and never sweeps", async () => {
    const { first, second } = await leaderAndFollower(stopped);
    const { id, agent } = await abandonedLease(second, "sim-stopped");
    const stoppedAt = Date.now();
    await first.signal("SIGSTOP");
    const tookOverMs = await waitFor(
      "the second to lead",
      async () => (await leads(second)) === 1,
      {
        timeoutMs: 4 * TTL_MS,
        intervalMs: 50,
      },
    );
    await waitFor(
      "the abandoned lease to be requeued",
      async () => (await stateOf(second, id)) === "queued",
      {
        timeoutMs: 4 * TTL_MS,
        intervalMs: 50,
      },
    );
    // Frozen well past its TTL, with its sweeper's and its renewal's timers due.
    await sleep(Math.max(0, stoppedAt + 2 * TTL_MS - Date.now()));
    const resumedAt = Date.now();
    await first.signal("SIGCONT");
    // Its first answer after waking already says it does not lead.
    expect(await leads(first)).toBe(0);
    const steppedDownMs = await waitFor(
      "the old leader to log that it stepped down",
      () => logEntries(first.logFile, /^no longer the maintenance leader$/).length === 1,
      { timeoutMs: TTL_MS, intervalMs: 25 },
    ).then(() => Date.now() - resumedAt);

    // Another lease left to expire, with both running: the second sweeps it, the first does not.
    const [again] = await agent.lease(second, 0);
    expect(again?.id).toBe(id);
    await waitFor(
      "the lease to be requeued again",
      async () => (await stateOf(second, id)) === "queued",
      {
        timeoutMs: 4 * TTL_MS,
        intervalMs: 50,
      },
    );
    await sleep(1_000);
    recordScenario({
      scenario: "leader-stop",
      title: "SIGSTOP the maintenance leader of two coordinators past its TTL, then SIGCONT",
      jobsSubmitted: 1,
      lost: 0,
      duplicated: 0,
      succeeded: 0,
      failed: 0,
      rerun: 0,
      recoveryMs: { takeover: tookOverMs, stepDownAfterResume: steppedDownMs },
      notes: { leaseTtlMs: TTL_MS },
    });
    expect(tookOverMs).toBeLessThan(2 * TTL_MS);
    expect([await leads(first), await leads(second)]).toEqual([0, 1]);
    expect(await leaderRow(stopped)).toEqual({ pid: second.pid, live: true });
    expect([await requeues(first), await requeues(second)]).toEqual([0, 2]);
    expect(sweptIn(first)).toEqual([]);
    expect(sweptIn(second).map((entry) => entry.jobs)).toEqual([[id], [id]]);
    expect(logEntries(first.logFile, /^became the maintenance leader$/)).toHaveLength(1);
  });
});
