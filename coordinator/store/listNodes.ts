import type { AgentCapacity, MaxLimits, NodeInfo, Runtime } from "../../protocol/index.js";
import type { StoreContext } from "./database.js";

export interface NodeRow {
  id: string;
  name: string;
  hostname: string;
  slots: number;
  version: string;
  labels: string;
  state: "ready" | "draining";
  registered_at: number;
  last_heartbeat_at: number;
  running: number;
  done: number;
  failed: number;
  max_limits: string | null;
  capacity: string | null;
  runtimes: string | null;
}

/** Agents with their job counts (index jobs_by_agent answers each count). */
export const NODE_SELECT = `
  SELECT a.id, a.name, a.hostname, a.slots, a.version, a.labels, a.state,
    a.registered_at, a.last_heartbeat_at, a.max_limits, a.capacity, a.runtimes,
    (SELECT COUNT(*) FROM jobs j WHERE j.agent_id = a.id AND j.state IN ('leased', 'running')) AS running,
    (SELECT COUNT(*) FROM jobs j WHERE j.agent_id = a.id AND j.state = 'succeeded') AS done,
    (SELECT COUNT(*) FROM jobs j WHERE j.agent_id = a.id AND j.state = 'failed') AS failed
  FROM agents a`;

/**
 * A row as the API returns it (both stores). A node is lost once it has been
 * silent for a whole lease: by then every lease it held has expired too.
 */
export const toNode = (row: NodeRow, now: number, leaseTtlMs: number): NodeInfo => ({
  id: row.id,
  name: row.name,
  hostname: row.hostname,
  state: now - row.last_heartbeat_at > leaseTtlMs ? "lost" : row.state,
  slots: row.slots,
  running: row.running,
  lastHeartbeatAt: new Date(row.last_heartbeat_at).toISOString(),
  registeredAt: new Date(row.registered_at).toISOString(),
  version: row.version,
  labels: JSON.parse(row.labels) as Record<string, string>,
  jobsDone: row.done,
  jobsFailed: row.failed,
  ...(row.max_limits ? { maxLimits: JSON.parse(row.max_limits) as MaxLimits } : {}),
  ...(row.capacity ? { capacity: JSON.parse(row.capacity) as AgentCapacity } : {}),
  ...(row.runtimes ? { runtimes: JSON.parse(row.runtimes) as Runtime[] } : {}),
});

export function prepareListNodes({ db, settings }: StoreContext) {
  const all = db.prepare<[], NodeRow>(`${NODE_SELECT} ORDER BY a.name, a.registered_at`);
  const one = db.prepare<[string], NodeRow>(`${NODE_SELECT} WHERE a.id = ?`);

  return {
    listNodes: (now: number): NodeInfo[] =>
      all.all().map((row) => toNode(row, now, settings.leaseTtlMs)),
    getNode: (id: string, now: number): NodeInfo | undefined => {
      const row = one.get(id);
      return row ? toNode(row, now, settings.leaseTtlMs) : undefined;
    },
  };
}
