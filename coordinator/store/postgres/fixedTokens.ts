import type { Tokens } from "../../tokens.js";
import { type PgContext, query, writeTransaction } from "./database.js";

const OFFER = `INSERT INTO fixed_tokens (id, client, admin, agent) VALUES (1, $1, $2, $3)
  ON CONFLICT (id) DO NOTHING`;
const HELD = "SELECT client, admin, agent FROM fixed_tokens WHERE id = 1";

/**
 * claimTokens on PostgreSQL. Two statements in one READ COMMITTED
 * transaction, on purpose: an INSERT … ON CONFLICT DO NOTHING that meets a
 * racing coordinator's uncommitted row waits for it, then does nothing, and
 * that row is outside the statement's snapshot (a single `WITH … RETURNING
 * … UNION SELECT` statement would read nothing). The SELECT after it takes
 * a new snapshot, so it reads whichever row won.
 */
export function prepareClaimTokens({ sql }: PgContext) {
  return (offered: Tokens): Promise<Tokens> =>
    writeTransaction(sql, async (tx) => {
      await query(tx, OFFER, [offered.client, offered.admin, offered.agent]);
      const [row] = await query<Tokens>(tx, HELD);
      if (!row) throw new Error("fixed_tokens has no row right after the insert");
      return { client: row.client, admin: row.admin, agent: row.agent };
    });
}
