import type { NodeInfo } from "../../../protocol/index.js";
import { notFound } from "../../errors.js";
import type { AgentIdentity, ExpiredLeases, NewAgent } from "../interfaces.js";
import { newId } from "../rows.js";
import { changes, type PgContext, type Queryable, query, writeTransaction } from "./database.js";
import type { GetNode } from "./listNodes.js";

const INSERT = `INSERT INTO agents (id, name, hostname, slots, version, labels, max_limits, capacity,
    runtimes, token_hash, registered_at, last_heartbeat_at)
  VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11)`;
const BY_HASH = "SELECT id, name FROM agents WHERE token_hash = $1";
const SET_STATE = "UPDATE agents SET state = $2 WHERE id = $1";
const REMOVE = "DELETE FROM agents WHERE id = $1";
const DUE_NOW = `UPDATE jobs SET lease_expires_at = $2
  WHERE agent_id = $1 AND state IN ('leased', 'running')`;

export function prepareRegisterAgent({ sql }: PgContext) {
  /** Every registration is a new agent id, even under a name seen before. */
  return async function registerAgent(
    agent: NewAgent,
    tokenHash: string,
    now: number,
  ): Promise<AgentIdentity> {
    const id = newId("a", 12);
    await query(sql, INSERT, [
      id,
      agent.name,
      agent.hostname,
      agent.slots,
      agent.version,
      JSON.stringify(agent.labels),
      agent.maxLimits ? JSON.stringify(agent.maxLimits) : null,
      agent.capacity ? JSON.stringify(agent.capacity) : null,
      agent.runtimes ? sql.array([...new Set(agent.runtimes)], 25) : null,
      tokenHash,
      now,
    ]);
    return { id, name: agent.name };
  };
}

export function prepareAgentByTokenHash({ sql }: PgContext) {
  return async function agentByTokenHash(tokenHash: string): Promise<AgentIdentity | undefined> {
    const [agent] = await query<AgentIdentity>(sql, BY_HASH, [tokenHash]);
    return agent;
  };
}

export function prepareSetAgentState({ sql }: PgContext, getNode: GetNode) {
  return async function setAgentState(
    agentId: string,
    state: "ready" | "draining",
    now: number,
  ): Promise<NodeInfo> {
    const node =
      (await changes(sql, SET_STATE, [agentId, state])) > 0
        ? await getNode(agentId, now)
        : undefined;
    if (!node) throw notFound(`node ${agentId}`);
    return node;
  };
}

export function prepareRemoveAgent(
  { sql }: PgContext,
  expireLeases: (tx: Queryable, now: number) => Promise<ExpiredLeases>,
) {
  return (agentId: string, now: number): Promise<ExpiredLeases> =>
    writeTransaction(sql, async (tx) => {
      if ((await changes(tx, REMOVE, [agentId])) === 0) throw notFound(`node ${agentId}`);
      // Its leases take the expiry path now rather than after the TTL.
      await query(tx, DUE_NOW, [agentId, now - 1]);
      return expireLeases(tx, now);
    });
}
