import type { Job, JobState, Outcome } from "../../../protocol/index.js";
import { ApiError } from "../../errors.js";
import { type LeaseRow, runsAgain } from "../complete.js";
import type { Changed, CompletedResult, JobRef } from "../interfaces.js";
import {
  bigintArray,
  intArray,
  type PgContext,
  type Queryable,
  query,
  textArray,
  writeTransaction,
} from "./database.js";
import type { GetJob } from "./getJob.js";
import { probeBatches, settleProbed } from "./settleBatches.js";

// Ordered by seq: two transactions locking overlapping rows lock them in one order.
const BY_LEASE = `SELECT seq, id, lease_id, state, agent_id, completed_lease_id, batch_id, attempts,
    max_attempts, retries_left
  FROM jobs WHERE lease_id = ANY ($1::text[]) ORDER BY seq FOR UPDATE`;
// Every finished job of the call in one statement (River's completer does the same).
const FINISH = `UPDATE jobs SET state = done.state, outcome = done.outcome, finished_at = $5,
    started_at = COALESCE(started_at, leased_at), completed_lease_id = done.lease_id,
    lease_expires_at = NULL
  FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[])
    AS done(seq, state, outcome, lease_id)
  WHERE jobs.seq = done.seq`;
// The lease id stays, marked completed: the same result again is accepted
// and changes nothing; the agent's heartbeat for it is answered "cancel".
const REQUEUE = `UPDATE jobs SET state = 'queued', node = NULL, lease_expires_at = NULL,
    leased_at = NULL, started_at = NULL, completed_lease_id = again.lease_id,
    retries_left = retries_left - again.program_retry
  FROM unnest($1::bigint[], $2::text[], $3::int[]) AS again(seq, lease_id, program_retry)
  WHERE jobs.seq = again.seq`;
const SEEN = "UPDATE agents SET last_heartbeat_at = $2 WHERE id = $1";

const staleLease = (leaseId: string) =>
  new ApiError(
    "STALE_LEASE",
    `lease ${leaseId} is not a current lease of this agent (expired and handed on, or unknown); the result is not taken`,
  );

/**
 * Applies `results` in one transaction: the leased rows are locked and read
 * in one statement, each result is judged in order exactly as the SQLite
 * store's completeOne judges it (a repeat later in the same call is a
 * repeat), and the changes are written in at most two statements.
 */
async function applyResults(
  tx: Queryable,
  agentId: string,
  results: readonly { leaseId: string; outcome: Outcome }[],
  now: number,
  readBack?: GetJob,
): Promise<{ answers: CompletedResult[]; jobs: (Job | undefined)[] }> {
  const leaseIds = [...new Set(results.map((result) => result.leaseId))];
  // The agent's row first, sent ahead of the rest on the transaction's
  // connection: a lease locks the agent, then the users, and so must this
  // (FINISH's trigger updates the users); the other order deadlocked two
  // coordinators' leases and result groups (the server breaks it after 1 s).
  const [, locked] = await Promise.all([
    query(tx, SEEN, [agentId, now]),
    query<LeaseRow & { lease_id: string }>(tx, BY_LEASE, [textArray(tx, leaseIds)]),
  ]);
  const rows = new Map(locked.map((row) => [row.lease_id, row]));
  const finish = new Map<number, { state: JobState; outcome: string; leaseId: string }>();
  const requeue = new Map<number, { leaseId: string; programRetry: number }>();
  const answers = results.map(({ leaseId, outcome }): CompletedResult => {
    const row = rows.get(leaseId);
    if (!row || row.agent_id !== agentId) return { leaseId, refused: staleLease(leaseId) };
    const ref = (state: JobState): JobRef => ({ id: row.id, state, batchId: row.batch_id });
    // The same result again (a retry after a lost answer): already applied.
    if (row.completed_lease_id === leaseId)
      return { leaseId, value: ref(row.state), changed: false };
    if (row.state !== "leased" && row.state !== "running") {
      return {
        leaseId,
        refused: new ApiError(
          "STALE_LEASE",
          `job ${row.id} is already ${row.state}; the result of lease ${leaseId} is not taken`,
        ),
      };
    }
    const again = runsAgain(row, outcome);
    row.completed_lease_id = leaseId;
    if (again) {
      row.state = "queued";
      requeue.set(row.seq, { leaseId, programRetry: again === "program" ? 1 : 0 });
      return { leaseId, value: ref("queued"), changed: true };
    }
    row.state = outcome.ok ? "succeeded" : "failed";
    finish.set(row.seq, { state: row.state, outcome: JSON.stringify(outcome), leaseId });
    return { leaseId, value: ref(row.state), changed: true };
  });
  // The writes and the batches' settle checks go out together, in this
  // order, pipelined on the transaction's connection: one round trip, and
  // each check runs after the writes, so it sees these items ended.
  const done = [...finish];
  const again = [...requeue];
  const writes = Promise.all([
    done.length > 0 &&
      query(tx, FINISH, [
        bigintArray(
          tx,
          done.map(([seq]) => seq),
        ),
        textArray(
          tx,
          done.map(([, d]) => d.state),
        ),
        textArray(
          tx,
          done.map(([, d]) => d.outcome),
        ),
        textArray(
          tx,
          done.map(([, d]) => d.leaseId),
        ),
        now,
      ]),
    again.length > 0 &&
      query(tx, REQUEUE, [
        bigintArray(
          tx,
          again.map(([seq]) => seq),
        ),
        textArray(
          tx,
          again.map(([, a]) => a.leaseId),
        ),
        intArray(
          tx,
          again.map(([, a]) => a.programRetry),
        ),
      ]),
  ]);
  const probes = probeBatches(
    tx,
    answers.map((answer) => ("value" in answer && answer.changed ? answer.value.batchId : null)),
  );
  // With `readBack`, each answered job as it now is, sent behind the writes
  // (so it sees them) in the same round trip rather than one after the commit's.
  const jobs = Promise.all(
    answers.map((answer) =>
      readBack && "value" in answer ? readBack(answer.value.id, tx) : undefined,
    ),
  );
  // Awaited as one: when a statement fails, the ones behind it fail too,
  // and a rejection nobody awaits would end the coordinator.
  const [, , read] = await Promise.all([writes, settleProbed(tx, probes, now), jobs]);
  return { answers, jobs: read };
}

export function prepareComplete({ sql }: PgContext, getJob: GetJob) {
  /** One result: taken, a repeat (changes nothing), or STALE_LEASE thrown. */
  const complete = (
    agentId: string,
    leaseId: string,
    outcome: Outcome,
    now: number,
  ): Promise<Changed<Job>> =>
    writeTransaction(sql, async (tx) => {
      const {
        answers: [answer],
        jobs: [job],
      } = await applyResults(tx, agentId, [{ leaseId, outcome }], now, getJob);
      if (!answer) throw staleLease(leaseId);
      if ("refused" in answer) throw answer.refused;
      if (!job) throw new Error(`job of lease ${leaseId} read back as nothing`);
      return { value: job, changed: answer.changed };
    });

  /**
   * Many results in one transaction (one commit): each is taken or refused
   * on its own, exactly as `complete` would, and a refusal changes nothing
   * of the others.
   */
  const completeMany = (
    agentId: string,
    results: readonly { leaseId: string; outcome: Outcome }[],
    now: number,
  ): Promise<CompletedResult[]> =>
    writeTransaction(sql, async (tx) => (await applyResults(tx, agentId, results, now)).answers);

  return { complete, completeMany };
}
