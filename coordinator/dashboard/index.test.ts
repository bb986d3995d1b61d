import { join } from "node:path";
import { pathToFileURL } from "node:url";
import pino from "pino";
import { afterEach, describe, expect, it } from "vitest";
import type { ClusterStats } from "../../protocol/index.js";
import { createApp } from "../app.js";
import { Notifier } from "../notifier.js";
import { openTempCoordinator } from "../test-support/temp-coordinator.js";
import { DASHBOARD_CSP, dashboardAssetsDir, dashboardRoutes } from "./index.js";

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** The whole coordinator app over a temp store, as main.ts builds it. */
function coordinatorApp() {
  const { config, store, tokens, close } = openTempCoordinator("dashboard");
  cleanups.push(close);
  const logger = pino({ level: "silent" });
  return { app: createApp({ store, notifier: new Notifier(), tokens, config, logger }), tokens };
}

describe("dashboard routes", () => {
  it("serves the page at / without a token, with a strict CSP", async () => {
    const { app, tokens } = coordinatorApp();
    const response = await app.request("/");
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toBe("text/html; charset=utf-8");
    expect(response.headers.get("content-security-policy")).toBe(DASHBOARD_CSP);
    expect(DASHBOARD_CSP).toContain("default-src 'self'");
    expect(response.headers.get("x-content-type-options")).toBe("nosniff");
    const html = await response.text();
    expect(html).toContain('<label for="token">Token</label>');
    for (const token of Object.values(tokens)) expect(html).not.toContain(token);
  });

  it("serves every file the page links, each with its type and the CSP", async () => {
    const { app } = coordinatorApp();
    const html = await (await app.request("/")).text();
    const linked = [...html.matchAll(/(?:src|href)="(\/[^"]*)"/g)].map((match) => match[1]);
    expect(linked.sort()).toEqual([
      "/dashboard/app.js",
      "/dashboard/icon.svg",
      "/dashboard/style.css",
    ]);
    const types: Record<string, string> = {
      "/dashboard/app.js": "text/javascript; charset=utf-8",
      "/dashboard/style.css": "text/css; charset=utf-8",
      "/dashboard/icon.svg": "image/svg+xml",
    };
    for (const path of linked as string[]) {
      const response = await app.request(path);
      expect(response.status, path).toBe(200);
      expect(response.headers.get("content-type"), path).toBe(types[path]);
      expect(response.headers.get("content-security-policy"), path).toBe(DASHBOARD_CSP);
    }
  });

  it("has no inline script, inline style or event handler attribute (CSP would block them)", async () => {
    const { app } = coordinatorApp();
    const html = await (await app.request("/")).text();
    const scripts = [...html.matchAll(/<script\b[^>]*>([\s\S]*?)<\/script>/g)];
    expect(scripts).toHaveLength(1);
    for (const [tag, body] of scripts) {
      expect(tag).toContain('src="/dashboard/app.js"');
      expect(body?.trim()).toBe("");
    }
    expect(html).not.toMatch(/<style\b|\sstyle=|\son[a-z]+=/i);
  });

  it("leaves other paths to the API's JSON 404", async () => {
    const { app } = coordinatorApp();
    for (const path of ["/dashboard/", "/dashboard/missing.js", "/index.html"]) {
      const response = await app.request(path);
      expect(response.status, path).toBe(404);
      expect(await response.json()).toMatchObject({ error: { code: "NOT_FOUND" } });
    }
  });

  it("answers HEAD for the page", async () => {
    const response = await dashboardRoutes().request("/", { method: "HEAD" });
    expect(response.status).toBe(200);
  });

  it("refuses to start when the files are missing, naming the folder", () => {
    expect(() => dashboardRoutes("/nonexistent/labrun-dashboard")).toThrow(
      /labrun-dashboard.*index\.html|ENOENT/,
    );
  });
});

type QueueFromStats = (
  stats: unknown,
) => { counts: Record<string, { n: number; more: boolean }>; source: string } | null;

/** The page script's pure helper, loaded in Node (the script only starts the page in a browser). */
async function queueFromStats(): Promise<QueueFromStats> {
  const url = pathToFileURL(join(dashboardAssetsDir(), "app.js")).href;
  return ((await import(url)) as { queueFromStats: QueueFromStats }).queueFromStats;
}

describe("the page's reading of /v1/admin/stats", () => {
  const jobs = { queued: 3, leased: 1, running: 2, succeeded: 7, failed: 1, cancelled: 0 };

  it("takes the job counts by state and the recent throughput", async () => {
    const read = await queueFromStats();
    const stats = {
      at: "2025-01-01T00:00:00.000Z",
      jobs,
      finished: { lastMinute: 4, lastHour: 8 },
      nodes: { ready: 2, draining: 0, lost: 0 },
    } satisfies ClusterStats;
    const queue = read(stats);
    expect(queue?.counts).toEqual({
      queued: { n: 3, more: false },
      leased: { n: 1, more: false },
      running: { n: 2, more: false },
      succeeded: { n: 7, more: false },
      failed: { n: 1, more: false },
      cancelled: { n: 0, more: false },
    });
    expect(queue?.source).toBe(
      "From /v1/admin/stats. Finished in the last minute: 4; in the last hour: 8.",
    );
  });

  it("gives null, so the page counts the job list, when the body has no job counts", async () => {
    const read = await queueFromStats();
    expect(read(null)).toBeNull();
    expect(read({ nodes: { ready: 1 } })).toBeNull();
    expect(read({ jobs: { ...jobs, failed: "1" } })).toBeNull();
    expect(read({ jobs: { queued: 1 } })).toBeNull();
  });
});

interface PageHelpers {
  containerSeconds(seconds: number): string;
  shareText(share: number): string;
  auditDetails(details: unknown): string;
  batchRates(summary: unknown): { recent: number | null; overall: number | null };
  histogramRows(
    durations: unknown,
  ): { key: string; label: string; succeeded: number; failed: number }[];
}

/** The page script's batch helpers, loaded in Node. */
async function pageHelpers(): Promise<PageHelpers> {
  const url = pathToFileURL(join(dashboardAssetsDir(), "app.js")).href;
  return (await import(url)) as PageHelpers;
}

describe("the batch page's reading of /v1/batches/:id/summary", () => {
  const counts = { queued: 0, running: 0, succeeded: 40, failed: 10, cancelled: 0 };
  const summary = (state: string, extra: Record<string, unknown> = {}) => ({
    batch: { state, counts },
    at: "2026-01-01T00:00:30.000Z",
    firstStartedAt: "2026-01-01T00:00:00.000Z",
    lastFinishedAt: "2026-01-01T00:00:20.000Z",
    recent: { windowMs: 10_000, finished: 25 },
    ...extra,
  });

  it("gives items/s over the recent window and since the first start while a batch runs", async () => {
    const { batchRates } = await pageHelpers();
    // 50 done in the 30 s from the first start to now; 25 in the last 10 s.
    expect(batchRates(summary("running"))).toEqual({ recent: 2.5, overall: 50 / 30 });
  });

  it("gives items/s from the first start to the last end once it has ended", async () => {
    const { batchRates } = await pageHelpers();
    expect(batchRates(summary("failed"))).toEqual({ recent: null, overall: 2.5 });
    expect(batchRates(summary("queued", { firstStartedAt: undefined })).overall).toBeNull();
  });

  it("shows the buckets from the first to the last that holds an item", async () => {
    const { histogramRows } = await pageHelpers();
    const buckets = [
      { upToMs: 1, succeeded: 0, failed: 0 },
      { upToMs: 2, succeeded: 3, failed: 0 },
      { upToMs: 5, succeeded: 0, failed: 0 },
      { upToMs: 10, succeeded: 0, failed: 1 },
      { upToMs: 20, succeeded: 0, failed: 0 },
      { upToMs: null, succeeded: 0, failed: 0 },
    ];
    expect(histogramRows({ buckets, count: 4 })).toEqual([
      { key: "2", label: "1 ms – 2 ms", succeeded: 3, failed: 0 },
      { key: "5", label: "2 ms – 5 ms", succeeded: 0, failed: 0 },
      { key: "10", label: "5 ms – 10 ms", succeeded: 0, failed: 1 },
    ]);
    const longest = buckets.map((b) => (b.upToMs === null ? { ...b, succeeded: 1 } : b));
    expect(histogramRows({ buckets: longest, count: 5 }).at(-1)).toEqual({
      key: "null",
      label: "over 20 ms",
      succeeded: 1,
      failed: 0,
    });
    expect(
      histogramRows({ buckets: buckets.map((b) => ({ ...b, succeeded: 0, failed: 0 })) }),
    ).toEqual([]);
  });
});

describe("the admin pages' reading of /v1/admin/users and /v1/admin/audit", () => {
  it("writes decayed usage in container-seconds (hours past one) and the share in percent", async () => {
    const { containerSeconds, shareText } = await pageHelpers();
    expect([0, 0.004, 4.254, 9.999, 310.4, 3599, 3600, 9000].map(containerSeconds)).toEqual([
      "0 s",
      "0 s",
      "4.25 s",
      "10 s",
      "310 s",
      "3599 s",
      "1 h",
      "2.5 h",
    ]);
    expect([0, 0.375, 1 / 3, 1].map(shareText)).toEqual(["0%", "37.5%", "33.3%", "100%"]);
  });

  it("writes an audit entry's details as key=value, or a dash when there are none", async () => {
    const { auditDetails } = await pageHelpers();
    expect(auditDetails({ maxQueued: 9, weight: 2 })).toBe("maxQueued=9, weight=2");
    expect(auditDetails({ name: "node-1", nested: { a: [1] } })).toBe(
      'name=node-1, nested={"a":[1]}',
    );
    expect(auditDetails({})).toBe("—");
  });
});
