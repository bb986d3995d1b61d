import { existsSync, mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type Batch,
  DURATION_BUCKETS_MS,
  type ItemResult,
  type Job,
  NDJSON,
} from "../../protocol/index.js";
import { startTestCluster, type TestCluster } from "../helpers/cluster.js";
import {
  type BrowserPage,
  cells,
  haveChromium,
  openBrowserPage,
  outsideLoopback,
  poll,
} from "./browser.js";

/**
 * The dashboard end to end with the admin token: a real coordinator and two
 * real agents on Docker, the page in headless Debian chromium driven by
 * playwright-core (no browser download). scripts/browser-test.sh installs
 * chromium and runs this file; users.test.ts signs in as users.
 */
const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const SCREENSHOT = join(ROOT, "test-output", "dashboard.png");
const BATCH_SCREENSHOT = join(ROOT, "test-output", "dashboard-batch.png");
const runs = haveChromium("dashboard browser test");

const PROGRAMS = {
  sum: `exports.main = async (input) => {
  console.log("adding", input.a, "and", input.b);
  return { sum: input.a + input.b };
};`,
  throws: `exports.main = () => { throw new Error("deliberate failure"); };`,
  noMain: "module.exports = 42;",
};

let cluster: TestCluster;
let browser: BrowserPage;
let page: Page;
const jobs: Record<keyof typeof PROGRAMS, string> = { sum: "", throws: "", noMain: "" };

const nodeRow = (name: string) => page.locator("#nodes tbody tr").filter({ hasText: name });
const jobRow = (id: string) => page.locator(`#jobs tbody tr[data-key="${id}"]`);
const queueCount = async (state: string) =>
  (await cells(page.locator(`#queue tbody tr[data-key="${state}"]`)))[1];

async function nodeState(name: string): Promise<string | undefined> {
  return (await cluster.admin.nodes()).find((node) => node.name === name)?.state;
}

describe.skipIf(!runs)("the dashboard in a browser", () => {
  beforeAll(async () => {
    cluster = await startTestCluster({ agents: [2, 2] });
    browser = await openBrowserPage();
    page = browser.page;
  });

  afterAll(async () => {
    await browser?.close();
    await cluster?.close();
  });

  it("serves a page with no data and a strict CSP, and asks for a token", async () => {
    const response = await page.goto(`${cluster.url}/`);
    expect(response?.status()).toBe(200);
    expect(response?.headers()["content-security-policy"]).toContain("default-src 'self'");
    expect(await response?.text()).not.toContain(cluster.tokens.admin);
    await page.getByLabel("Token", { exact: true }).waitFor();
    expect(await page.locator("#board").isHidden()).toBe(true);
  });

  it("refuses a wrong token (401) and the agent join token (403), and asks again", async () => {
    await page.getByLabel("Token", { exact: true }).fill("not-a-token");
    await page.getByRole("button", { name: "Open dashboard" }).click();
    await poll(() => page.locator("#login-error").textContent()).toContain(
      "refused the token (401",
    );
    expect(await page.getByLabel("Token", { exact: true }).isVisible()).toBe(true);
    expect(await page.evaluate("sessionStorage.length")).toBe(0);

    await page.getByLabel("Token", { exact: true }).fill(cluster.tokens.agent);
    await page.getByRole("button", { name: "Open dashboard" }).click();
    await poll(() => page.locator("#login-error").textContent()).toContain(
      "neither a user's token nor the admin token (403",
    );
    expect(await page.locator("#board").isHidden()).toBe(true);
    expect(await page.evaluate("sessionStorage.length")).toBe(0);
  });

  it("signs in with the admin token and lists both nodes as the API does", async () => {
    await page.getByLabel("Token", { exact: true }).fill(cluster.tokens.admin);
    await page.getByRole("button", { name: "Open dashboard" }).click();
    await page.getByRole("table", { name: "Nodes" }).waitFor();
    expect(await page.locator("#login").isHidden()).toBe(true);
    expect(await page.locator("#signed-in").textContent()).toBe("Signed in with the admin token");
    expect(await page.locator("#user-note").isHidden()).toBe(true);

    for (const node of await cluster.admin.nodes()) {
      await poll(() => cells(nodeRow(node.name))).toEqual([
        node.name,
        "ready",
        "2",
        expect.stringMatching(/^\d+$/),
        expect.stringMatching(/ ago$/),
        node.version,
        String(node.jobsDone),
        String(node.jobsFailed),
        `Drain node ${node.name} Remove node ${node.name}`,
      ]);
    }
    expect(await page.locator("#nodes tbody tr").count()).toBe(2);
    await poll(() => page.locator("#status").textContent()).toContain("Updated");
  });

  it("shows jobs submitted through the API with their outcome, without a reload", async () => {
    for (const [key, source] of Object.entries(PROGRAMS)) {
      const input = key === "sum" ? { a: 2, b: 3 } : undefined;
      const { id } = await cluster.client.submit({ source, ...(input ? { input } : {}) });
      jobs[key as keyof typeof PROGRAMS] = id;
    }
    const finished: Job[] = await Promise.all(
      Object.values(jobs).map((id) => cluster.client.wait(id, { timeoutMs: 60_000 })),
    );
    expect(finished.map((job) => job.state)).toEqual(["succeeded", "failed", "failed"]);

    const expected = {
      sum: ["succeeded", "ok"],
      throws: ["failed", "RUNTIME_ERROR"],
      noMain: ["failed", "BAD_PROGRAM_FORMAT"],
    };
    for (const job of finished) {
      const key = (Object.keys(jobs) as (keyof typeof jobs)[]).find((k) => jobs[k] === job.id);
      const [state, outcome] = expected[key as keyof typeof expected];
      await poll(() => cells(jobRow(job.id))).toEqual([
        `Job ${job.id}`,
        "default",
        state,
        outcome,
        expect.stringMatching(/^\d+(\.\d+)? (ms|s)$/),
        job.node,
        expect.stringMatching(/^\d\d:\d\d:\d\d$/),
      ]);
    }
    // Newest first, as the API lists them.
    const order = await page
      .locator("#jobs tbody tr")
      .evaluateAll((rows) => rows.map((row) => row.getAttribute("data-key")));
    expect(order).toEqual([jobs.noMain, jobs.throws, jobs.sum]);
  });

  it("counts the queue by state", async () => {
    await poll(() => queueCount("succeeded")).toBe("1");
    await poll(() => queueCount("failed")).toBe("2");
    for (const state of ["queued", "leased", "running", "cancelled"]) {
      expect(await queueCount(state)).toBe("0");
    }
    const source = await page.locator("#queue-source").textContent();
    expect(source).toMatch(/\/v1\/admin\/stats/);
    console.info(`dashboard queue counts: ${source}`);
  });

  it("counts the queue from the job list when /v1/admin/stats does not answer", async () => {
    await page.route("**/v1/admin/stats", (route) =>
      route.fulfill({
        status: 404,
        contentType: "application/json",
        body: JSON.stringify({ error: { code: "NOT_FOUND", message: "there is no route" } }),
      }),
    );
    try {
      await poll(() => page.locator("#queue-source").textContent()).toContain(
        "Counted from the job list",
      );
      expect(await queueCount("succeeded")).toBe("1");
      expect(await queueCount("failed")).toBe("2");
      expect(await queueCount("queued")).toBe("0");
    } finally {
      await page.unroute("**/v1/admin/stats");
    }
  });

  it("opens a failed job's error and a successful job's result and logs", async () => {
    await page.getByRole("button", { name: `Job ${jobs.throws}` }).click();
    await page.getByRole("heading", { name: `Job ${jobs.throws}` }).waitFor();
    expect(await page.locator("#detail-error-code").textContent()).toBe("RUNTIME_ERROR");
    expect(await page.locator("#detail-error-message").textContent()).toContain(
      "deliberate failure",
    );
    expect(await page.locator("#detail-result").isHidden()).toBe(true);

    await page.getByRole("button", { name: `Job ${jobs.noMain}` }).click();
    await page.getByRole("heading", { name: `Job ${jobs.noMain}` }).waitFor();
    expect(await page.locator("#detail-error-code").textContent()).toBe("BAD_PROGRAM_FORMAT");
    expect(await page.locator("#detail-error-message").textContent()).toBe("Bad program format");

    await page.getByRole("button", { name: `Job ${jobs.sum}` }).click();
    await page.getByRole("heading", { name: `Job ${jobs.sum}` }).waitFor();
    expect(await page.locator("#detail-error").isHidden()).toBe(true);
    expect(JSON.parse((await page.locator("#detail-result-json").textContent()) ?? "")).toEqual({
      sum: 5,
    });
    expect(await page.locator("#detail-logs").textContent()).toContain("adding 2 and 3");
    expect(await jobRow(jobs.sum).getAttribute("aria-current")).toBe("true");
  });

  it("drains a node from the page (draining on the page and in the API), then resumes it", async () => {
    const name = cluster.agents[0]?.name as string;
    await page.getByRole("button", { name: `Drain node ${name}` }).click();
    await poll(async () => (await cells(nodeRow(name)))[1]).toBe("draining");
    expect(await nodeState(name)).toBe("draining");
    await poll(() => page.getByRole("status").textContent()).toBe(`Node ${name} is draining.`);

    // The other node stays ready and keeps its Drain button.
    const other = cluster.agents[1]?.name as string;
    expect((await cells(nodeRow(other)))[1]).toBe("ready");

    await page.getByRole("button", { name: `Resume node ${name}` }).click();
    await poll(async () => (await cells(nodeRow(name)))[1]).toBe("ready");
    expect(await nodeState(name)).toBe("ready");
    await page.getByRole("button", { name: `Drain node ${name}` }).waitFor();
  });

  it("keeps the token for the tab across a reload, refreshes every 2 s, and saves a screenshot", async () => {
    await page.reload();
    await page.getByRole("table", { name: "Nodes" }).waitFor();
    expect(await page.locator("#login").isHidden()).toBe(true);

    const { id } = await cluster.client.submit({ source: PROGRAMS.sum, input: { a: 40, b: 2 } });
    await cluster.client.wait(id, { timeoutMs: 60_000 });
    await poll(async () => (await cells(jobRow(id)))[2]).toBe("succeeded");
    await poll(() => queueCount("succeeded")).toBe("2");

    // Draining one node again shows both states in the picture.
    const name = cluster.agents[1]?.name as string;
    await page.getByRole("button", { name: `Drain node ${name}` }).click();
    await poll(async () => (await cells(nodeRow(name)))[1]).toBe("draining");
    await page.getByRole("button", { name: `Job ${jobs.sum}` }).click();
    await page.getByRole("heading", { name: `Job ${jobs.sum}` }).waitFor();

    mkdirSync(dirname(SCREENSHOT), { recursive: true });
    await page.screenshot({ path: SCREENSHOT, fullPage: true });
    expect(existsSync(SCREENSHOT)).toBe(true);
    await cluster.admin.resume(
      (await cluster.admin.nodes()).find((node) => node.name === name)?.id as string,
    );
  });

  describe("batches", () => {
    /** Item 3 fails; the others sleep in steps of 150 ms, so their times fall in several buckets. */
    const SWEEP = `exports.main = async (n) => {
  if (n === 3) throw new Error("item 3 is bad");
  await new Promise((resolve) => setTimeout(resolve, (n % 3) * 150));
  return n * n;
};`;
    let sweep: Batch;
    const batchRow = (id: string) => page.locator(`#batches tbody tr[data-key="${id}"]`);
    const batchCount = async (state: string) =>
      (await cells(page.locator(`#batch-counts tbody tr[data-key="${state}"]`)))[1];

    async function submitBatch(body: Record<string, unknown>): Promise<string> {
      const response = await fetch(`${cluster.url}/v1/batches`, {
        method: "POST",
        headers: {
          authorization: `Bearer ${cluster.tokens.client}`,
          "content-type": "application/json",
        },
        body: JSON.stringify(body),
      });
      expect(response.status).toBe(201);
      return ((await response.json()) as { id: string }).id;
    }

    async function ended(id: string): Promise<Batch> {
      await poll(async () => (await cluster.client.getBatch(id)).finishedAt !== undefined).toBe(
        true,
      );
      return cluster.client.getBatch(id);
    }

    /** Every result line of a finished batch, from the API's own stream. */
    async function results(id: string): Promise<ItemResult[]> {
      const response = await fetch(`${cluster.url}/v1/batches/${id}/results`, {
        headers: { authorization: `Bearer ${cluster.tokens.client}`, accept: NDJSON },
      });
      const text = await response.text();
      return text
        .split("\n")
        .filter(Boolean)
        .map((line) => JSON.parse(line) as ItemResult);
    }

    it("lists a finished batch with its state, progress and counts", async () => {
      const id = await submitBatch({ source: SWEEP, inputs: [0, 1, 2, 3, 4, 5, 6, 7] });
      sweep = await ended(id);
      expect(sweep.state).toBe("failed");
      expect(sweep.counts).toEqual({
        queued: 0,
        running: 0,
        succeeded: 7,
        failed: 1,
        cancelled: 0,
      });
      await poll(() => cells(batchRow(id))).toEqual([
        `Batch ${id}`,
        "default",
        "failed",
        "8 of 8 done (100%)",
        "0",
        "0",
        "7",
        "1",
        "0",
        expect.stringMatching(/^\d\d:\d\d:\d\d$/),
      ]);
      const bar = batchRow(id).locator("progress");
      expect(await bar.getAttribute("max")).toBe("8");
      expect(await bar.getAttribute("value")).toBe("8");
    });

    it("opens the batch page: counts, items/s, the failed item with its error, the histogram", async () => {
      await page.getByRole("button", { name: `Batch ${sweep.id}`, exact: true }).click();
      await page.getByRole("heading", { name: `Batch ${sweep.id}` }).waitFor();
      expect(await page.locator("#batch-progress-text").textContent()).toBe("8 of 8 done (100%)");
      expect(await page.locator("#batch-progress").getAttribute("value")).toBe("8");
      await poll(() => batchCount("succeeded")).toBe("7");
      expect(await batchCount("failed")).toBe("1");
      for (const state of ["queued", "running", "cancelled"])
        expect(await batchCount(state)).toBe("0");
      const fields = await page.locator("#batch-fields").textContent();
      expect(fields).toMatch(
        /Items\/s\s*\d+(\.\d+)? \(from the first item's start to the last one's end\)/,
      );
      expect(await page.locator("#batch-cancel").isHidden()).toBe(true);
      expect(await page.locator("#batch-retry").isVisible()).toBe(true);

      const lines = await results(sweep.id);
      const failedLine = lines.find((line) => !line.ok);
      expect(failedLine?.index).toBe(3);
      expect(await cells(page.locator("#batch-failed tbody tr"))).toEqual([
        "3",
        `Job ${failedLine?.jobId}`,
        "RUNTIME_ERROR",
        expect.stringContaining("item 3 is bad"),
      ]);

      // The histogram, computed here from the results stream's stats, bucket by bucket.
      const expected = new Map<string, { succeeded: number; failed: number }>();
      for (const line of lines) {
        const i = DURATION_BUCKETS_MS.findIndex((bound) => line.stats.durationMs <= bound);
        const key = String(i === -1 ? null : DURATION_BUCKETS_MS[i]);
        const bucket = expected.get(key) ?? { succeeded: 0, failed: 0 };
        bucket[line.ok ? "succeeded" : "failed"]++;
        expected.set(key, bucket);
      }
      const shown = await page.locator("#batch-histogram tbody tr").evaluateAll((rows) =>
        rows.map((row) => ({
          key: row.getAttribute("data-key"),
          succeeded: Number(row.children[1]?.textContent),
          failed: Number(row.children[2]?.textContent),
        })),
      );
      expect(shown.length).toBeGreaterThanOrEqual(2);
      for (const row of shown) {
        expect({ ...row }, `bucket ${row.key}`).toEqual({
          key: row.key,
          ...(expected.get(row.key ?? "") ?? { succeeded: 0, failed: 0 }),
        });
      }
      expect(shown.reduce((n, row) => n + row.succeeded + row.failed, 0)).toBe(8);
      expect(await page.locator("#batch-histogram-note").textContent()).toContain(
        "8 items that ran to an end",
      );
      mkdirSync(dirname(BATCH_SCREENSHOT), { recursive: true });
      await page.locator("#batch").screenshot({ path: BATCH_SCREENSHOT });
    });

    it("links a failed item to its job, and the job back to its batch", async () => {
      const failedLine = (await results(sweep.id)).find((line) => !line.ok);
      await page.getByRole("button", { name: `Job ${failedLine?.jobId}` }).click();
      await page.getByRole("heading", { name: `Job ${failedLine?.jobId}` }).waitFor();
      expect(await page.locator("#detail-error-code").textContent()).toBe("RUNTIME_ERROR");
      expect(await page.locator("#detail-fields").textContent()).toMatch(
        new RegExp(`Batch\\s*${sweep.id} item 3`),
      );
      await page
        .locator("#detail")
        .getByRole("button", { name: `Batch ${sweep.id} item 3` })
        .click();
      await page.locator("#batch").waitFor();
      expect(await page.evaluate("document.activeElement?.id")).toBe("batch");
    });

    it("retries the failed item from the page", async () => {
      await page.getByRole("button", { name: "Retry failed items" }).click();
      await poll(() => page.locator("#batch-status").textContent()).toBe(
        `Queued 1 failed items of batch ${sweep.id} again.`,
      );
      // It fails again (its program always does), and the page follows it.
      const again = await ended(sweep.id);
      expect(again.counts).toMatchObject({ succeeded: 7, failed: 1 });
      await poll(() => page.locator("#batch-progress-text").textContent()).toBe(
        "8 of 8 done (100%)",
      );
      await poll(() => batchCount("failed")).toBe("1");
      const shown = await page
        .locator("#batch-histogram tbody tr")
        .evaluateAll((rows) => rows.map((row) => Number(row.children[2]?.textContent)));
      expect(shown.reduce((n, failed) => n + failed, 0)).toBe(1);
    });

    it("cancels a running batch from the page: every item cancelled, no container left", async () => {
      const id = await submitBatch({
        source: "exports.main = () => new Promise((resolve) => setTimeout(resolve, 60_000));",
        inputs: Array.from({ length: 12 }, (_, i) => i),
        maxParallel: 2,
        limits: { timeoutMs: 120_000 },
      });
      await page.getByRole("button", { name: `Batch ${id}`, exact: true }).click();
      await page.getByRole("heading", { name: `Batch ${id}` }).waitFor();
      await poll(() => batchCount("running")).toBe("2");
      expect(await batchCount("queued")).toBe("10");
      expect(await page.locator("#batch-retry").isHidden()).toBe(true);
      const fields = await page.locator("#batch-fields").textContent();
      expect(fields).toMatch(/Items\/s\s*0\.0 in the last 10 s/);
      expect(fields).toContain("at most 2");

      page.once("dialog", (dialog) => dialog.accept());
      await page.getByRole("button", { name: "Cancel batch" }).click();
      await poll(() => page.locator("#batch-status").textContent()).toBe(
        `Batch ${id} was cancelled.`,
      );
      await poll(() => batchCount("cancelled")).toBe("12");
      expect(await batchCount("running")).toBe("0");
      expect(await page.locator("#batch-fields dd").first().textContent()).toBe("cancelled");
      expect(await page.locator("#batch-cancel").isHidden()).toBe(true);
      await poll(async () => (await cells(batchRow(id)))[2]).toBe("cancelled");
      const batch = await cluster.client.getBatch(id);
      expect(batch.state).toBe("cancelled");
      expect(batch.counts.cancelled).toBe(12);
      expect(await cluster.leftoverContainers()).toEqual([]);
      // Newest first.
      const order = await page
        .locator("#batches tbody tr")
        .evaluateAll((rows) => rows.map((row) => row.getAttribute("data-key")));
      expect(order).toEqual([id, sweep.id]);
    });
  });

  it("asked for nothing outside the coordinator, on any of its pages", () => {
    expect(browser.requested.some((url) => url.includes("/summary"))).toBe(true);
    expect(browser.requested.some((url) => url.includes("/v1/batches?"))).toBe(true);
    expect(outsideLoopback(browser.requested)).toEqual([]);
  });

  it("logged no script error and no CSP violation", () => {
    expect(browser.problems).toEqual([]);
  });

  it("asks for the token again when the coordinator stops accepting it", async () => {
    await page.evaluate('sessionStorage.setItem("labrun.token", "revoked-token")');
    await page.getByLabel("Token", { exact: true }).waitFor();
    expect(await page.locator("#login-error").textContent()).toContain("refused the token (401");
    // Nothing the old token could read stays on the page.
    expect(await page.locator("#nodes tbody tr").count()).toBe(0);
    expect(await page.locator("#jobs tbody tr").count()).toBe(0);
  });
});
