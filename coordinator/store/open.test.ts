import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it, vi } from "vitest";
import { usePostgresDatabase } from "../test-support/postgres.js";
import { describeStore, isPostgresUrl, openStoreFrom, StoreUrl } from "./open.js";

const SETTINGS = { leaseTtlMs: 1_000, maxAttempts: 2 };
const pg = usePostgresDatabase();
// Real transactions on a shared 2-core machine: more time than a unit test's 5 s.
vi.setConfig({ testTimeout: 30_000 });

describe("StoreUrl", () => {
  it("takes a PostgreSQL URL with a host and a database", () => {
    expect(StoreUrl.parse(" postgres://labrun@db:5432/labrun ")).toBe(
      "postgres://labrun@db:5432/labrun",
    );
    expect(StoreUrl.safeParse("postgresql://u:p@127.0.0.1/q").success).toBe(true);
  });

  it("refuses anything else, saying what it takes", () => {
    for (const bad of ["/var/lib/labrun", "mysql://db/x", "postgres://db", "postgres:///x", ""]) {
      const parsed = StoreUrl.safeParse(bad);
      expect(parsed.success).toBe(false);
      expect(parsed.error?.issues[0]?.message).toMatch(/must be a PostgreSQL URL/);
    }
  });
});

describe("openStoreFrom", () => {
  const dir = mkdtempSync(join(tmpdir(), "labrun-open-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("opens the SQLite store in a data dir, its verbs answering promises", async () => {
    expect(isPostgresUrl(dir)).toBe(false);
    const store = await openStoreFrom(dir, SETTINGS);
    try {
      const job = await store.enqueue({ source: "x", filename: "main.js" }, 1);
      expect((await store.getJob(job.id)).state).toBe("queued");
      await expect(store.getJob("j_nope")).rejects.toMatchObject({ code: "NOT_FOUND" });
    } finally {
      await store.close();
    }
  });

  it("opens the PostgreSQL store for a postgres:// URL", async () => {
    const store = await openStoreFrom(pg.url(), SETTINGS);
    try {
      const job = await store.enqueue({ source: "x", filename: "main.js" }, 1);
      expect((await store.getJob(job.id)).state).toBe("queued");
      expect(await store.hasQueued()).toBe(true);
    } finally {
      await store.close();
    }
  });

  it("refuses a PostgreSQL URL with no server behind it, naming the store but not its password", async () => {
    const opening = openStoreFrom("postgres://labrun:s3cret@127.0.0.1:1/labrun", SETTINGS);
    await expect(opening).rejects.toThrow(
      /^could not open the PostgreSQL store postgres:\/\/labrun:\*\*\*@127\.0\.0\.1:1\/labrun: .*ECONNREFUSED/,
    );
    await expect(opening).rejects.not.toThrow(/s3cret/);
  });
});

describe("describeStore", () => {
  it("names the store for a log line, without a password", () => {
    expect(describeStore("/var/lib/labrun")).toBe("sqlite /var/lib/labrun");
    expect(describeStore("postgres://u:pw@db:5432/q")).toBe("postgres://u:***@db:5432/q");
    expect(describeStore("postgres://u@db/q")).toBe("postgres://u@db/q");
  });
});
