import { describe, expect, it } from "vitest";
import { agentSpec, T0, TTL } from "../store/suite/fixtures.js";
import { openTestStore } from "../test-support/store-fixtures.js";
import { renewLateLeases } from "./lateLeases.js";

/** A store with one agent holding one job leased at T0 (deadline T0 + TTL). */
async function leasedAtT0() {
  const store = openTestStore();
  const agent = await store.registerAgent(agentSpec(), "hash", T0);
  const { id } = await store.enqueue({ source: "exports.main = () => 1" }, T0);
  const jobs = await store.lease(agent.id, 1, T0);
  return { store, agentId: agent.id, id, jobs };
}

describe("renewLateLeases", () => {
  it("answers leases on time as they are: their deadline stays", async () => {
    const { store, agentId, jobs } = await leasedAtT0();
    const answered = await renewLateLeases(store, agentId, jobs, T0, T0 + TTL / 4, TTL);
    expect(answered).toEqual(jobs);
    expect((await store.expireLeases(T0 + TTL + 1)).requeued).toHaveLength(1);
  });

  it("renews leases answered past half the TTL from now, so no sweep takes them from the agent", async () => {
    const { store, agentId, jobs } = await leasedAtT0();
    const late = T0 + TTL * 0.9;
    const answered = await renewLateLeases(store, agentId, jobs, T0, late, TTL);
    expect(answered).toEqual(jobs);
    // Past the old deadline, before the renewed one: still the agent's.
    expect(await store.expireLeases(T0 + TTL + 1)).toMatchObject({ requeued: [], failed: [] });
    expect(await store.heartbeat(agentId, [jobs[0]?.leaseId ?? ""], late + 1)).toEqual([]);
  });

  it("drops leases that expired before the answer went out", async () => {
    const { store, agentId, id, jobs } = await leasedAtT0();
    expect((await store.expireLeases(T0 + TTL + 1)).requeued).toEqual([id]);
    const answered = await renewLateLeases(store, agentId, jobs, T0, T0 + TTL + 2, TTL);
    expect(answered).toEqual([]);
    expect((await store.getJob(id)).state).toBe("queued");
  });
});
