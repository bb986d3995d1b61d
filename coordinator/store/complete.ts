import type { Job, JobState, Outcome } from "../../protocol/index.js";
import { ApiError } from "../errors.js";
import { type StoreContext, writeTransaction } from "./database.js";
import type { Changed } from "./interfaces.js";

export function prepareComplete({ db }: StoreContext, getJob: (id: string) => Job) {
  const byLease = db.prepare<
    [string],
    {
      seq: number;
      id: string;
      state: JobState;
      agent_id: string | null;
      completed_lease_id: string | null;
    }
  >("SELECT seq, id, state, agent_id, completed_lease_id FROM jobs WHERE lease_id = ?");
  const finish = db.prepare(
    `UPDATE jobs SET state = @state, outcome = @outcome, finished_at = @now,
       started_at = COALESCE(started_at, leased_at), completed_lease_id = @leaseId,
       lease_expires_at = NULL
     WHERE seq = @seq`,
  );
  const seen = db.prepare("UPDATE agents SET last_heartbeat_at = ? WHERE id = ?");

  return writeTransaction(
    db,
    function complete(
      agentId: string,
      leaseId: string,
      outcome: Outcome,
      now: number,
    ): Changed<Job> {
      const row = byLease.get(leaseId);
      if (!row || row.agent_id !== agentId) {
        throw new ApiError(
          "STALE_LEASE",
          `lease ${leaseId} is not a current lease of this agent (expired and handed on, or unknown); the result is not taken`,
        );
      }
      // The same result again (a retry after a lost answer): already applied.
      if (row.completed_lease_id === leaseId) return { value: getJob(row.id), changed: false };
      if (row.state !== "leased" && row.state !== "running") {
        throw new ApiError(
          "STALE_LEASE",
          `job ${row.id} is already ${row.state}; the result of lease ${leaseId} is not taken`,
        );
      }
      finish.run({
        seq: row.seq,
        state: outcome.ok ? "succeeded" : "failed",
        outcome: JSON.stringify(outcome),
        leaseId,
        now,
      });
      seen.run(now, agentId);
      return { value: getJob(row.id), changed: true };
    },
  );
}
