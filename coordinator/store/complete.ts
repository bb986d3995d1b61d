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

export function prepareComplete(
  { db }: StoreContext,
  getJob: (id: string) => Job,
  settleBatches: SettleBatches,
) {
  const byLease = db.prepare<[string], LeaseRow>(
    `SELECT seq, id, state, agent_id, completed_lease_id, batch_id, attempts, max_attempts,
       retries_left FROM jobs WHERE lease_id = ?`,
  );
  const finish = db.prepare(
    `UPDATE jobs SET state = @state, outcome = @outcome, finished_at = @now,
       started_at = COALESCE(started_at, leased_at), completed_lease_id = @leaseId,
       lease_expires_at = NULL
     WHERE seq = @seq`,
  );
  // The lease id stays, marked completed: the same result again is accepted
  // and changes nothing; the agent's heartbeat for it is answered "cancel".
  const requeue = db.prepare(
    `UPDATE jobs SET state = 'queued', node = NULL, lease_expires_at = NULL, leased_at = NULL,
       started_at = NULL, completed_lease_id = @leaseId,
       retries_left = retries_left - @programRetry
     WHERE seq = @seq`,
  );
  const seen = db.prepare("UPDATE agents SET last_heartbeat_at = ? WHERE id = ?");

  /** Applies one result; returns the job's id, batch and new state, and whether it changed. */
  function completeOne(
    agentId: string,
    leaseId: string,
    outcome: Outcome,
    now: number,
  ): Changed<JobRef> {
    const row = byLease.get(leaseId);
    if (!row || row.agent_id !== agentId) {
      throw new ApiError(
        "STALE_LEASE",
        `lease ${leaseId} is not a current lease of this agent (expired and handed on, or unknown); the result is not taken`,
      );
    }
    // The same result again (a retry after a lost answer): already applied.
    const ref = (state: JobState): JobRef => ({ id: row.id, state, batchId: row.batch_id });
    if (row.completed_lease_id === leaseId) return { value: ref(row.state), changed: false };
    if (row.state !== "leased" && row.state !== "running") {
      throw new ApiError(
        "STALE_LEASE",
        `job ${row.id} is already ${row.state}; the result of lease ${leaseId} is not taken`,
      );
    }
    const again = runsAgain(row, outcome);
    if (again) {
      requeue.run({ seq: row.seq, leaseId, programRetry: again === "program" ? 1 : 0 });
      return { value: ref("queued"), changed: true };
    }
    const state = outcome.ok ? "succeeded" : "failed";
    finish.run({ seq: row.seq, state, outcome: JSON.stringify(outcome), leaseId, now });
    return { value: ref(state), changed: true };
  }

  const complete = writeTransaction(
    db,
    function complete(
      agentId: string,
      leaseId: string,
      outcome: Outcome,
      now: number,
    ): Changed<Job> {
      const { value, changed } = completeOne(agentId, leaseId, outcome, now);
      seen.run(now, agentId);
      if (changed) settleBatches([value.batchId], now);
      return { value: getJob(value.id), changed };
    },
  );

  /**
   * Many results in one transaction (one commit): each is taken or refused
   * on its own, exactly as `complete` would, and a refusal changes nothing
   * of the others.
   */
  const completeMany = writeTransaction(
    db,
    function completeMany(
      agentId: string,
      results: readonly { leaseId: string; outcome: Outcome }[],
      now: number,
    ): CompletedResult[] {
      const answers = results.map(({ leaseId, outcome }): CompletedResult => {
        try {
          return { leaseId, ...completeOne(agentId, leaseId, outcome, now) };
        } catch (error) {
          if (error instanceof ApiError) return { leaseId, refused: error };
          throw error;
        }
      });
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
