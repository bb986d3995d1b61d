import { z } from "zod";

export const NodeState = z.enum(["ready", "draining", "lost"]);
export type NodeState = z.infer<typeof NodeState>;

/** One node as `GET /v1/admin/nodes` lists it. */
export const NodeInfo = z.object({
  id: z.string(),
  name: z.string(),
  hostname: z.string(),
  state: NodeState,
  slots: z.number().int(),
  running: z.number().int(),
  lastHeartbeatAt: z.string(),
  registeredAt: z.string(),
  version: z.string(),
  labels: z.record(z.string(), z.string()),
  jobsDone: z.number().int(),
  jobsFailed: z.number().int(),
});
export type NodeInfo = z.infer<typeof NodeInfo>;

export const NodeList = z.object({ nodes: z.array(NodeInfo) });
export type NodeList = z.infer<typeof NodeList>;
