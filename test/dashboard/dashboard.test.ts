import { existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { type BrowserContext, chromium, type Locator, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Job } from "../../protocol/index.js";
import { startTestCluster, type TestCluster } from "../helpers/cluster.js";

/**
 * The dashboard end to end: a real coordinator and two real agents on Docker,
 * the page in headless Debian chromium driven by playwright-core (no browser
 * download). scripts/browser-test.sh installs chromium and runs this file.
 */
const CHROMIUM = process.env.LABRUN_CHROMIUM ?? "/usr/bin/chromium";
const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const SCREENSHOT = join(ROOT, "test-output", "dashboard.png");

const haveChromium = existsSync(CHROMIUM);
if (!haveChromium) {
  const message = `no chromium at ${CHROMIUM}: install it with \`bash scripts/ensure-chromium.sh\` (apt-get install chromium)`;
  // A suite that cannot run is a failure, not a pass; skipping it takes an
  // explicit LABRUN_SKIP_BROWSER=1, which CI never sets.
  if (process.env.LABRUN_SKIP_BROWSER !== "1") throw new Error(message);
  console.warn(`dashboard browser test SKIPPED (LABRUN_SKIP_BROWSER=1): ${message}`);
}

const PROGRAMS = {
  sum: `exports.main = async (input) => {
  console.log("adding", input.a, "and", input.b);
  return { sum: input.a + input.b };
};`,
  throws: `exports.main = () => { throw new Error("deliberate failure"); };`,
  noMain: "module.exports = 42;",
};

let cluster: TestCluster;
let context: BrowserContext;
let page: Page;
let userDataDir: string;
/** What the page reported that it should not: script errors, CSP violations. */
const pageProblems: string[] = [];
const jobs: Record<keyof typeof PROGRAMS, string> = { sum: "", throws: "", noMain: "" };

/** The cell texts of a table row, header cell first. */
const cells = async (row: Locator) =>
  (await row.locator("th, td").allInnerTexts()).map((text) => text.replace(/\s+/g, " ").trim());
const nodeRow = (name: string) => page.locator("#nodes tbody tr").filter({ hasText: name });
const jobRow = (id: string) => page.locator(`#jobs tbody tr[data-key="${id}"]`);
const queueCount = async (state: string) =>
  (await cells(page.locator(`#queue tbody tr[data-key="${state}"]`)))[1];
const poll = <T>(read: () => Promise<T>) => expect.poll(read, { timeout: 15_000, interval: 100 });

async function nodeState(name: string): Promise<string | undefined> {
  return (await cluster.admin.nodes()).find((node) => node.name === name)?.state;
}

describe.skipIf(!haveChromium)("the dashboard in a browser", () => {
  beforeAll(async () => {
    cluster = await startTestCluster({ agents: [2, 2] });
    userDataDir = mkdtempSync(join(tmpdir(), "labrun-chromium-"));
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: CHROMIUM,
      headless: true,
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
      ],
      viewport: { width: 1280, height: 900 },
    });
    page = context.pages()[0] ?? (await context.newPage());
    page.setDefaultTimeout(15_000);
    page.on("pageerror", (error) => pageProblems.push(`page error: ${error.message}`));
    page.on("console", (message) => {
      // Chromium logs every non-2xx fetch ("Failed to load resource"); the wrong
      // tokens below and a missing /v1/admin/stats answer 401/403/404 on purpose.
      if (message.type() === "error" && !message.text().startsWith("Failed to load resource")) {
        pageProblems.push(`console: ${message.text()}`);
      }
    });
  });

  afterAll(async () => {
    await context?.close();
    if (userDataDir) rmSync(userDataDir, { recursive: true, force: true });
    await cluster?.close();
  });

  it("serves a page with no data and a strict CSP, and asks for the admin token", async () => {
    const response = await page.goto(`${cluster.url}/`);
    expect(response?.status()).toBe(200);
    expect(response?.headers()["content-security-policy"]).toContain("default-src 'self'");
    expect(await response?.text()).not.toContain(cluster.tokens.admin);
    await page.getByLabel("Admin token").waitFor();
    expect(await page.locator("#board").isHidden()).toBe(true);
  });

  it("refuses a wrong token (401) and a client token (403), and asks again", async () => {
    await page.getByLabel("Admin token").fill("not-a-token");
    await page.getByRole("button", { name: "Open dashboard" }).click();
    await poll(() => page.locator("#login-error").textContent()).toContain(
      "refused the token (401",
    );
    expect(await page.getByLabel("Admin token").isVisible()).toBe(true);
    expect(await page.evaluate("sessionStorage.length")).toBe(0);

    await page.getByLabel("Admin token").fill(cluster.tokens.client);
    await page.getByRole("button", { name: "Open dashboard" }).click();
    await poll(() => page.locator("#login-error").textContent()).toContain(
      "not the admin token (403",
    );
    expect(await page.locator("#board").isHidden()).toBe(true);
  });

  it("signs in with the admin token and lists both nodes as the API does", async () => {
    await page.getByLabel("Admin token").fill(cluster.tokens.admin);
    await page.getByRole("button", { name: "Open dashboard" }).click();
    await page.getByRole("table", { name: "Nodes" }).waitFor();
    expect(await page.locator("#login").isHidden()).toBe(true);

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
    await poll(async () => (await cells(jobRow(id)))[1]).toBe("succeeded");
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

  it("logged no script error and no CSP violation", () => {
    expect(pageProblems).toEqual([]);
  });

  it("asks for the token again when the coordinator stops accepting it", async () => {
    await page.evaluate('sessionStorage.setItem("labrun.adminToken", "revoked-token")');
    await page.getByLabel("Admin token").waitFor();
    expect(await page.locator("#login-error").textContent()).toContain("refused the token (401");
    // Nothing the old token could read stays on the page.
    expect(await page.locator("#nodes tbody tr").count()).toBe(0);
    expect(await page.locator("#jobs tbody tr").count()).toBe(0);
  });
});
