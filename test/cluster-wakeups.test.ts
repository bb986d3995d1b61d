import postgres from "postgres";
import { afterEach, describe, expect, it } from "vitest";
import { WAKE_CHANNEL } from "../coordinator/cluster/pgChannel.js";
import { parseWakeMessage } from "../coordinator/cluster/wakeMessage.js";
import { usePostgresDatabase } from "../coordinator/test-support/postgres.js";
import type { Job } from "../protocol/index.js";
import { waitFor } from "./faults/helpers/processes.js";
import { SLOWDOWN } from "./helpers/cluster.js";
import { call, pgCoordinators, simulatedAgent, succeeded } from "./helpers/pg-coordinators.js";

/**
 * Wake-ups across coordinator processes on one PostgreSQL: an agent
 * long-polling one coordinator is handed a job submitted to the other, and
 * a client waiting on one hears of a result reported to the other, by
 * LISTEN/NOTIFY alone. The polls that would also find them are set far
 * out: long-polls of 20 s, `--sweep 20s` (the sweeper's wake of waiting
 * agents), so an answer within PROMPT_MS can only come from a NOTIFY.
 */
const db = usePostgresDatabase();
const POLL_MS = 20_000;
const PROMPT_MS = 5_000 * SLOWDOWN;

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function twoCoordinators() {
  const group = pgCoordinators(db.url());
  cleanups.push(group.close);
  const a = await group.start(["--sweep", "20s"]);
  const b = await group.start(["--sweep", "20s"]);
  return { a, b };
}

/** The wake channel's NOTIFYs from now on, as a LISTEN of the test's own sees them. */
async function notifies(): Promise<string[]> {
  const sql = postgres(db.url(), { max: 1, onnotice: () => {} });
  cleanups.push(() => sql.end({ timeout: 5 }));
  const seen: string[] = [];
  await sql.listen(WAKE_CHANNEL, (payload) => seen.push(payload));
  return seen;
}

describe("wake-ups across coordinators (LISTEN/NOTIFY)", () => {
  it("an agent long-polling B is handed a job submitted to A; a client waiting on A hears of its result reported to B", async () => {
    const { a, b } = await twoCoordinators();
    const agent = await simulatedAgent(b, "sim-wake");

    // The agent waits on B, the job goes to A.
    const started = Date.now();
    const leasing = agent.lease(b, POLL_MS);
    await waitFor(
      "the agent's long-poll to wait on B",
      async () => (await b.metric("labrun_long_polls_waiting", 'kind="lease"')) === 1,
      {
        timeoutMs: 10_000,
        intervalMs: 25,
      },
    );
    const submittedAt = Date.now();
    const { id } = await call<{ id: string }>(
      a.url,
      a.tokens.client,
      "POST",
      "/v1/jobs",
      {
        source: "exports.main = () => 1",
      },
      201,
    );
    const [leased] = await leasing;
    const handedAfter = Date.now() - submittedAt;
    expect(leased?.id).toBe(id);
    expect(handedAfter).toBeLessThan(PROMPT_MS);
    expect(Date.now() - started).toBeLessThan(POLL_MS);

    // A client waits on A; the result goes to B.
    const waiting = call<Job>(a.url, a.tokens.client, "GET", `/v1/jobs/${id}?wait=20`);
    await waitFor(
      "the client to wait on A",
      async () => (await a.metric("labrun_long_polls_waiting", 'kind="job"')) === 1,
      {
        timeoutMs: 10_000,
        intervalMs: 25,
      },
    );
    const reportedAt = Date.now();
    await agent.result(b, leased?.leaseId ?? "", succeeded(42));
    const job = await waiting;
    expect(job).toMatchObject({ id, state: "succeeded", outcome: { ok: true, result: 42 } });
    expect(Date.now() - reportedAt).toBeLessThan(PROMPT_MS);
  });

  it("a batch of 300 items submitted to A is one NOTIFY, and wakes the agent waiting on B", async () => {
    const { a, b } = await twoCoordinators();
    const agent = await simulatedAgent(b, "sim-batch");
    const leasing = agent.lease(b, POLL_MS, 4);
    await waitFor(
      "the agent's long-poll to wait on B",
      async () => (await b.metric("labrun_long_polls_waiting", 'kind="lease"')) === 1,
      {
        timeoutMs: 10_000,
        intervalMs: 25,
      },
    );
    const seen = await notifies();
    const submittedAt = Date.now();
    const inputs = Array.from({ length: 300 }, (_, i) => i);
    await call(
      a.url,
      a.tokens.client,
      "POST",
      "/v1/batches",
      { source: "exports.main = (n) => n", inputs },
      201,
    );
    const jobs = await leasing;
    expect(jobs).toHaveLength(4);
    expect(Date.now() - submittedAt).toBeLessThan(PROMPT_MS);
    // Anything else would come within a few flushes; wait for them, then count.
    await new Promise((resolve) => setTimeout(resolve, 500));
    const messages = seen.map((payload) => parseWakeMessage(payload));
    expect(messages).toEqual([expect.objectContaining({ work: 300 })]);
  });
});
