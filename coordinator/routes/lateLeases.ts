import type { Store } from "../store/interfaces.js";

/**
 * Leases about to be answered long after the time their deadlines were
 * set from (`leasedAt`): the coordinator stalled in between (SIGSTOP, a VM
 * pause, a lock another coordinator held). Their deadlines may be near or
 * past, and another coordinator's sweeper would queue the jobs again while
 * the agent starts them: the job runs twice
 * (test/faults/pg-coordinator-sigstop.test.ts). Past half the TTL they are
 * renewed from now, as the agent's heartbeat would, and the ones that are
 * no longer the agent's (expired meanwhile) are dropped from the answer.
 */
export async function renewLateLeases<Job extends { leaseId: string }>(
  store: Store,
  agentId: string,
  jobs: Job[],
  leasedAt: number,
  now: number,
  leaseTtlMs: number,
): Promise<Job[]> {
  if (jobs.length === 0 || now - leasedAt < leaseTtlMs / 2) return jobs;
  const stop = new Set(
    await store.heartbeat(
      agentId,
      jobs.map((job) => job.leaseId),
      now,
    ),
  );
  return jobs.filter((job) => !stop.has(job.leaseId));
}
