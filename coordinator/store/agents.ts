import type { NodeInfo } from "../../protocol/index.js";
import { notFound } from "../errors.js";
import { type StoreContext, writeTransaction } from "./database.js";
import type { AgentIdentity, ExpiredLeases, NewAgent } from "./interfaces.js";
import { newId } from "./rows.js";

export function prepareRegisterAgent({ db }: StoreContext) {
  const insert = db.prepare(
    `INSERT INTO agents (id, name, hostname, slots, version, labels, max_limits, capacity, runtimes, token_hash, registered_at, last_heartbeat_at)
     VALUES (@id, @name, @hostname, @slots, @version, @labels, @maxLimits, @capacity, @runtimes, @tokenHash, @now, @now)`,
  );

  /** Every registration is a new agent id, even under a name seen before. */
  return function registerAgent(agent: NewAgent, tokenHash: string, now: number): AgentIdentity {
    const id = newId("a", 12);
    insert.run({
      id,
      name: agent.name,
      hostname: agent.hostname,
      slots: agent.slots,
      version: agent.version,
      labels: JSON.stringify(agent.labels),
      maxLimits: agent.maxLimits ? JSON.stringify(agent.maxLimits) : null,
      capacity: agent.capacity ? JSON.stringify(agent.capacity) : null,
      runtimes: agent.runtimes ? JSON.stringify([...new Set(agent.runtimes)]) : null,
      tokenHash,
      now,
    });
    return { id, name: agent.name };
  };
}

export function prepareAgentByTokenHash({ db }: StoreContext) {
  const byHash = db.prepare<[string], AgentIdentity>(
    "SELECT id, name FROM agents WHERE token_hash = ?",
  );
  return function agentByTokenHash(tokenHash: string): AgentIdentity | undefined {
    return byHash.get(tokenHash);
  };
}

export function prepareSetAgentState(
  { db }: StoreContext,
  getNode: (id: string, now: number) => NodeInfo | undefined,
) {
  const update = db.prepare("UPDATE agents SET state = ? WHERE id = ?");
  return function setAgentState(
    agentId: string,
    state: "ready" | "draining",
    now: number,
  ): NodeInfo {
    const node = update.run(state, agentId).changes > 0 ? getNode(agentId, now) : undefined;
    if (!node) throw notFound(`node ${agentId}`);
    return node;
  };
}

export function prepareRemoveAgent(
  { db }: StoreContext,
  expireLeases: (now: number) => ExpiredLeases,
) {
  const remove = db.prepare("DELETE FROM agents WHERE id = ?");
  const dueNow = db.prepare(
    `UPDATE jobs SET lease_expires_at = @past
     WHERE agent_id = @agentId AND state IN ('leased', 'running')`,
  );
  return writeTransaction(db, function removeAgent(agentId: string, now: number): ExpiredLeases {
    if (remove.run(agentId).changes === 0) throw notFound(`node ${agentId}`);
    // Its leases take the expiry path now rather than after the TTL.
    dueNow.run({ agentId, past: now - 1 });
    return expireLeases(now);
  });
}
