import { describe, expect, it } from "vitest";
import type { Tokens } from "../../tokens.js";
import type { SuiteContext } from "./types.js";

const tokensOf = (tag: string): Tokens => ({
  client: `lrc_${tag}-client-0123456789`,
  admin: `lra_${tag}-admin-0123456789`,
  agent: `lrj_${tag}-agent-0123456789`,
});

/** The fixed tokens (claimTokens): the first offer is kept, for every coordinator on the store. */
export function tokenSuite({ open, hooks }: SuiteContext): void {
  describe("fixed tokens", () => {
    it("keeps the first tokens offered and answers them to every later offer", async () => {
      const store = await open();
      expect(await store.claimTokens(tokensOf("first"))).toEqual(tokensOf("first"));
      expect(await store.claimTokens(tokensOf("second"))).toEqual(tokensOf("first"));
    });

    it("gives every one of many offers made at once the same winner, one of them", async () => {
      const store = await open();
      const offers = Array.from({ length: 8 }, (_, n) => tokensOf(`racer${n}`));
      const answers = await Promise.all(offers.map((offer) => store.claimTokens(offer)));
      const [winner] = answers;
      expect(offers).toContainEqual(winner);
      for (const answer of answers) expect(answer).toEqual(winner);
    });

    it("holds them across a reopen (a coordinator restarted on the same data)", async () => {
      const store = await open();
      await store.claimTokens(tokensOf("kept"));
      await store.close();
      const again = await hooks(store).reopen();
      expect(await again.claimTokens(tokensOf("later"))).toEqual(tokensOf("kept"));
    });
  });
}
