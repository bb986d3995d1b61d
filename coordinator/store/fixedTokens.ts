import type { Tokens } from "../tokens.js";
import { type StoreContext, writeTransaction } from "./database.js";

/** The one row of fixed tokens: offered ones are kept only when there is none. */
const FIXED_TOKENS_SQL = {
  offer: `INSERT INTO fixed_tokens (id, client, admin, agent) VALUES (1, ?, ?, ?)
    ON CONFLICT (id) DO NOTHING`,
  held: "SELECT client, admin, agent FROM fixed_tokens WHERE id = 1",
};

/**
 * claimTokens on SQLite: the offer and the read in one write transaction,
 * so a second process on the same file waits for the first and reads its row.
 */
export function prepareClaimTokens({ db }: StoreContext) {
  const offer = db.prepare<[string, string, string]>(FIXED_TOKENS_SQL.offer);
  const held = db.prepare<[], Tokens>(FIXED_TOKENS_SQL.held);
  return writeTransaction(db, (offered: Tokens): Tokens => {
    offer.run(offered.client, offered.admin, offered.agent);
    const row = held.get();
    if (!row) throw new Error("fixed_tokens has no row right after the insert");
    return { client: row.client, admin: row.admin, agent: row.agent };
  });
}
