import type { NodeInfo } from "../../../protocol/index.js";
import { NODE_SELECT, type NodeRow, toNode } from "../listNodes.js";
import { type PgContext, type Queryable, query } from "./database.js";

// runtimes is a text[] here, a JSON array in SQLite: read as JSON, both rows are alike.
const SELECT = NODE_SELECT.replace("a.runtimes,", "array_to_json(a.runtimes)::text AS runtimes,");
const ALL = `${SELECT} ORDER BY a.name, a.registered_at`;
const ONE = `${SELECT} WHERE a.id = $1`;

export type GetNode = (id: string, now: number, on?: Queryable) => Promise<NodeInfo | undefined>;

export function prepareListNodes({ sql, settings }: PgContext) {
  const getNode: GetNode = async (id, now, on = sql) => {
    const [row] = await query<NodeRow>(on, ONE, [id]);
    return row ? toNode(row, now, settings.leaseTtlMs) : undefined;
  };
  return {
    listNodes: async (now: number): Promise<NodeInfo[]> =>
      (await query<NodeRow>(sql, ALL)).map((row) => toNode(row, now, settings.leaseTtlMs)),
    getNode,
  };
}
