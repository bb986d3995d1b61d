import { setTimeout as sleep } from "node:timers/promises";
import { describe, expect, it } from "vitest";
import type { SuiteContext } from "./types.js";

const NAME = "maintenance";

/**
 * Named leases (the maintenance leader). They run on the database's own
 * clock, not the `now` the other verbs take, so expiry is waited for on the
 * real clock, with short TTLs.
 */
export function leadershipSuite({ open, hooks }: SuiteContext): void {
  describe("leadership", () => {
    it("the first holder takes a free lease; another is refused while it is renewed", async () => {
      const store = await open();
      expect(await store.holdLeadership(NAME, "a", 60_000)).toBe(true);
      expect(await store.holdLeadership(NAME, "b", 60_000)).toBe(false);
      // Renewing is holding again: still a's, still refused to b.
      expect(await store.holdLeadership(NAME, "a", 60_000)).toBe(true);
      expect(await store.holdLeadership(NAME, "b", 60_000)).toBe(false);
    });

    it("leases of different names are held apart", async () => {
      const store = await open();
      expect(await store.holdLeadership(NAME, "a", 60_000)).toBe(true);
      expect(await store.holdLeadership("other", "b", 60_000)).toBe(true);
      expect(await store.holdLeadership("other", "a", 60_000)).toBe(false);
    });

    it("an expired lease goes to the next holder, and its old holder cannot renew it", async () => {
      const store = await open();
      expect(await store.holdLeadership(NAME, "a", 150)).toBe(true);
      expect(await store.holdLeadership(NAME, "b", 150)).toBe(false);
      await sleep(250);
      expect(await store.holdLeadership(NAME, "b", 60_000)).toBe(true);
      expect(await store.holdLeadership(NAME, "a", 60_000)).toBe(false);
    });

    it("a released lease is free at once; releasing one held by another changes nothing", async () => {
      const store = await open();
      expect(await store.holdLeadership(NAME, "a", 60_000)).toBe(true);
      await store.releaseLeadership(NAME, "b");
      expect(await store.holdLeadership(NAME, "b", 60_000)).toBe(false);
      await store.releaseLeadership(NAME, "a");
      expect(await store.holdLeadership(NAME, "b", 60_000)).toBe(true);
      // Releasing what one does not hold, or what nobody holds, is no error.
      await store.releaseLeadership(NAME, "a");
      await store.releaseLeadership("nobody", "a");
      expect(await store.holdLeadership(NAME, "a", 60_000)).toBe(false);
    });

    it("of holders racing for a free lease, exactly one wins", async () => {
      const store = await open();
      const holders = ["a", "b", "c", "d", "e", "f"];
      const won = await Promise.all(holders.map((h) => store.holdLeadership(NAME, h, 60_000)));
      expect(won.filter(Boolean)).toHaveLength(1);
    });

    it("the lease is in the database: a store opened again on it sees its holder", async () => {
      const store = await open();
      expect(await store.holdLeadership(NAME, "a", 60_000)).toBe(true);
      await store.close();
      const again = await hooks(store).reopen();
      expect(await again.holdLeadership(NAME, "b", 60_000)).toBe(false);
      expect(await again.holdLeadership(NAME, "a", 60_000)).toBe(true);
    });
  });
}
