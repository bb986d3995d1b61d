import type { Job, JobState, Outcome, OutcomeErrorCode } from "../../protocol/index.js";
import { ApiError } from "../errors.js";
import { type StoreContext, writeTransaction } from "./database.js";
import type { Changed, CompletedResult, JobRef } from "./interfaces.js";
import type { SettleBatches } from "./settleBatches.js";

/** Codes the agent reports when the sandbox, not the program, failed. */
const SANDBOX_FAILURE: ReadonlySet<OutcomeErrorCode> = new Set(["SANDBOX_ERROR"]);
/** Codes only the coordinator gives; an agent's result never carries them as the program's. */
const COORDINATOR_CODES: ReadonlySet<OutcomeErrorCode> = new Set(["CANCELLED", "NODE_LOST"]);

export interface LeaseRow {
  seq: number;
  id: string;
  state: JobState;
  agent_id: string | null;
  completed_lease_id: string | null;
  batch_id: string | null;
  attempts: number;
  max_attempts: number;
  retries_left: number;
}

/**
 * Whether a batch item's failure runs it again: a failed sandbox while it
 * has attempts left (as a lost node is), a failed program while its batch's
 * `retries` last. Single jobs keep their one outcome.
 */
export function runsAgain(row: LeaseRow, outcome: Outcome): "sandbox" | "program" | undefined {
  if (row.batch_id === null || outcome.ok) return undefined;
  const code = outcome.error.code;
  if (SANDBOX_FAILURE.has(code)) return row.attempts < row.max_attempts ? "sandbox" : undefined;
  if (COORDINATOR_CODES.has(code)) return undefined;
  return row.retries_left > 0 ? "program" : undefined;
}

/** SQL of the grouped results, exported for a test of their plans. */
export const COMPLETE_SQL = {
  // The rows of a group's leases, from a JSON array of lease ids, through jobs_by_lease.
  byLeases: `SELECT jobs.seq, jobs.id, jobs.state, jobs.agent_id, jobs.completed_lease_id,
       jobs.batch_id, jobs.attempts, jobs.max_attempts, jobs.retries_left, jobs.lease_id
     FROM json_each(?) AS taken JOIN jobs ON jobs.lease_id = taken.value`,
  // A group's finished jobs in one statement, from a JSON array of
  // [seq, state, outcome, leaseId], by seq (the rowid).
  finishMany: `UPDATE jobs SET state = done.value ->> 1, outcome = done.value ->> 2,
       finished_at = @now, started_at = COALESCE(started_at, leased_at),
       completed_lease_id = done.value ->> 3, lease_expires_at = NULL
     FROM json_each(@done) AS done WHERE jobs.seq = done.value ->> 0`,
};

/** What one result does to its job: nothing (already applied), run it again, or end it. */
type Effect =
  | { kind: "applied"; state: JobState }
  | { kind: "again"; programRetry: 0 | 1 }
  | { kind: "finish"; state: "succeeded" | "failed" };

/**
 * What a result for `leaseId` does to `row` (the job holding that lease, if
 * any); a result that is not taken throws STALE_LEASE.
 */
function effectOf(
  row: LeaseRow | undefined,
  agentId: string,
  leaseId: string,
  outcome: Outcome,
): Effect {
  if (!row || row.agent_id !== agentId) {
    throw new ApiError(
      "STALE_LEASE",
      `lease ${leaseId} is not a current lease of this agent (expired and handed on, or unknown); the result is not taken`,
    );
  }
  // The same result again (a retry after a lost answer): already applied.
  if (row.completed_lease_id === leaseId) return { kind: "applied", state: row.state };
  if (row.state !== "leased" && row.state !== "running") {
    throw new ApiError(
      "STALE_LEASE",
      `job ${row.id} is already ${row.state}; the result of lease ${leaseId} is not taken`,
    );
  }
  const again = runsAgain(row, outcome);
  if (again) return { kind: "again", programRetry: again === "program" ? 1 : 0 };
  return { kind: "finish", state: outcome.ok ? "succeeded" : "failed" };
}

export function prepareComplete(
  { db }: StoreContext,
  getJob: (id: string) => Job,
  settleBatches: SettleBatches,
) {
  const byLease = db.prepare<[string], LeaseRow>(
    `SELECT seq, id, state, agent_id, completed_lease_id, batch_id, attempts, max_attempts,
       retries_left FROM jobs WHERE lease_id = ?`,
  );
  const byLeases = db.prepare<[string], LeaseRow & { lease_id: string }>(COMPLETE_SQL.byLeases);
  const finish = db.prepare(
    `UPDATE jobs SET state = @state, outcome = @outcome, finished_at = @now,
       started_at = COALESCE(started_at, leased_at), completed_lease_id = @leaseId,
       lease_expires_at = NULL
     WHERE seq = @seq`,
  );
  const finishMany = db.prepare(COMPLETE_SQL.finishMany);
  // The lease id stays, marked completed: the same result again is accepted
  // and changes nothing; the agent's heartbeat for it is answered "cancel".
  const requeue = db.prepare(
    `UPDATE jobs SET state = 'queued', node = NULL, lease_expires_at = NULL, leased_at = NULL,
       started_at = NULL, completed_lease_id = @leaseId,
       retries_left = retries_left - @programRetry
     WHERE seq = @seq`,
  );
  const seen = db.prepare("UPDATE agents SET last_heartbeat_at = ? WHERE id = ?");

  const complete = writeTransaction(
    db,
    function complete(
      agentId: string,
      leaseId: string,
      outcome: Outcome,
      now: number,
    ): Changed<Job> {
      const row = byLease.get(leaseId);
      const effect = effectOf(row, agentId, leaseId, outcome);
      seen.run(now, agentId);
      if (!row || effect.kind === "applied")
        return { value: getJob(row?.id ?? ""), changed: false };
      if (effect.kind === "again") {
        requeue.run({ seq: row.seq, leaseId, programRetry: effect.programRetry });
      } else {
        const { state } = effect;
        finish.run({ seq: row.seq, state, outcome: JSON.stringify(outcome), leaseId, now });
      }
      settleBatches([row.batch_id], now);
      return { value: getJob(row.id), changed: true };
    },
  );

  /**
   * Many results in one transaction (one commit): each is taken or refused
   * on its own, exactly as `complete` would in their order, and a refusal
   * changes nothing of the others. The group's rows are read in one
   * statement and its finished jobs written in one, not two per result.
   */
  const completeMany = writeTransaction(
    db,
    function completeMany(
      agentId: string,
      results: readonly { leaseId: string; outcome: Outcome }[],
      now: number,
    ): CompletedResult[] {
      const rows = new Map<string, LeaseRow>();
      for (const row of byLeases.all(JSON.stringify(results.map(({ leaseId }) => leaseId)))) {
        rows.set(row.lease_id, row);
      }
      const done: [number, string, string, string][] = [];
      const answers = results.map(({ leaseId, outcome }): CompletedResult => {
        const row = rows.get(leaseId);
        let effect: Effect;
        try {
          effect = effectOf(row, agentId, leaseId, outcome);
        } catch (error) {
          if (error instanceof ApiError) return { leaseId, refused: error };
          throw error;
        }
        if (!row) throw new Error("unreachable: effectOf refuses a lease without a row");
        const ref = (state: JobState): JobRef => ({ id: row.id, state, batchId: row.batch_id });
        if (effect.kind === "applied") return { leaseId, value: ref(effect.state), changed: false };
        if (effect.kind === "again") {
          requeue.run({ seq: row.seq, leaseId, programRetry: effect.programRetry });
          row.state = "queued";
        } else {
          done.push([row.seq, effect.state, JSON.stringify(outcome), leaseId]);
          row.state = effect.state;
        }
        // The same lease's result again in this group finds it applied, as `complete` would.
        row.completed_lease_id = leaseId;
        return { leaseId, value: ref(row.state), changed: true };
      });
      if (done.length > 0) finishMany.run({ done: JSON.stringify(done), now });
      seen.run(now, agentId);
      settleBatches(
        answers.map((answer) =>
          "value" in answer && answer.changed ? answer.value.batchId : null,
        ),
        now,
      );
      return answers;
    },
  );

  return { complete, completeMany };
}
