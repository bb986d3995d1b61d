import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import { afterEach, describe, expect, it } from "vitest";
import { startRetention } from "./retention.js";
import { openStore } from "./store/index.js";

const T0 = 1_700_000_000_000;
const DAY = 86_400_000;
const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** A store with one job that finished (cancelled) at T0. */
async function finishedJob() {
  const dataDir = mkdtempSync(join(tmpdir(), "labrun-retention-"));
  const store = openStore(dataDir, { leaseTtlMs: 1000, maxAttempts: 3 });
  cleanups.push(async () => {
    await store.close();
    rmSync(dataDir, { recursive: true, force: true });
  });
  const { id } = await store.enqueue({ source: "x", filename: "main.js" }, T0);
  await store.cancel(id, T0);
  return { store, id };
}

describe("startRetention", () => {
  it("prunes finished jobs past retention at start", async () => {
    const { store, id } = await finishedJob();
    const stop = startRetention(store, pino({ level: "silent" }), DAY, () => T0 + 2 * DAY);
    await stop();
    await expect(store.getJob(id)).rejects.toMatchObject({ code: "NOT_FOUND" });
  });

  it("prunes nothing while another coordinator is the maintenance leader", async () => {
    const { store, id } = await finishedJob();
    const log = pino({ level: "silent" });
    const stop = startRetention(
      store,
      log,
      DAY,
      () => T0 + 2 * DAY,
      () => false,
    );
    await stop();
    expect((await store.getJob(id)).state).toBe("cancelled");
  });
});
