import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import pino from "pino";
import type { Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type RunningCoordinator, startCoordinator } from "../../coordinator/main.js";
import { type JobPage, type UserInfo, type UserList, UserToken } from "../../protocol/index.js";
import {
  type BrowserPage,
  cells,
  haveChromium,
  openBrowserPage,
  outsideLoopback,
  poll,
} from "./browser.js";

/**
 * The dashboard for many users, in headless chromium against a real
 * coordinator on loopback: alice and bob sign in with their own tokens and
 * see only their own work and none of the admin's pages; the admin sees
 * both, the users table and the audit log. No agent runs, so every job
 * stays queued and the counts are exact.
 */
const runs = haveChromium("dashboard users browser test");

const PROGRAM = "exports.main = (n) => n";
const OUTPUT = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "test-output");
/** The audit page the dashboard shows (AUDIT_PAGE in app.js). */
const AUDIT_PAGE = 20;
/** carol's token is rotated this often, so the audit log runs past one page. */
const ROTATIONS = 20;

let coordinator: RunningCoordinator;
let dataDir: string;
let browser: BrowserPage;
let page: Page;
const tokens: Record<string, string> = {};
/** Each user's jobs and batch. */
const work: Record<string, { jobs: string[]; batch: string }> = {};

async function call(method: string, path: string, token: string, body?: unknown) {
  const response = await fetch(`${coordinator.url}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${token}`,
      ...(body === undefined ? {} : { "content-type": "application/json" }),
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const json = (await response.json()) as unknown;
  expect(response.status, `${method} ${path}: ${JSON.stringify(json)}`).toBeLessThan(300);
  return json;
}

async function addUser(name: string, quotas: Record<string, number> = {}) {
  const added = UserToken.parse(
    await call("POST", "/v1/admin/users", coordinator.tokens.admin, { name, ...quotas }),
  );
  tokens[name] = added.token;
}

async function submitWork(name: string, jobs: number, items: number) {
  const token = tokens[name] as string;
  const ids: string[] = [];
  for (let i = 0; i < jobs; i++) {
    ids.push(((await call("POST", "/v1/jobs", token, { source: PROGRAM })) as { id: string }).id);
  }
  const inputs = Array.from({ length: items }, (_, i) => i);
  const batch = (await call("POST", "/v1/batches", token, { source: PROGRAM, inputs })) as {
    id: string;
  };
  // The job list holds single jobs, newest first; a batch's items are in the batch.
  const listed = (await call("GET", "/v1/jobs?limit=100", token)) as JobPage;
  expect(listed.jobs.map((job) => job.id)).toEqual([...ids].reverse());
  work[name] = { jobs: ids, batch: batch.id };
}

const tokenField = () => page.getByLabel("Token", { exact: true });
const keysOf = (table: string) =>
  page
    .locator(`#${table} tbody tr`)
    .evaluateAll((rows) => rows.map((row) => row.getAttribute("data-key")));
const userRow = (name: string) => cells(page.locator(`#users tbody tr[data-key="${name}"]`));
const columnOf = (table: string, index: number) =>
  page
    .locator(`#${table} tbody tr`)
    .evaluateAll((rows, i) => rows.map((row) => row.children[i]?.textContent?.trim() ?? ""), index);

async function signIn(token: string) {
  await page.goto(`${coordinator.url}/`);
  await tokenField().fill(token);
  await page.getByRole("button", { name: "Open dashboard" }).click();
  await poll(() => page.locator("#status").textContent()).toContain("Updated");
}

async function signOut() {
  await page.getByRole("button", { name: "Sign out" }).click();
  await tokenField().waitFor();
  expect(await page.evaluate("sessionStorage.length")).toBe(0);
  // Nothing the last token read stays on the page.
  for (const table of ["jobs", "batches", "queue", "users", "audit", "nodes"]) {
    expect(await page.locator(`#${table} tbody tr`).count(), table).toBe(0);
  }
  expect(await page.locator("#signed-in").isHidden()).toBe(true);
}

/** What a user's page shows of the work: exactly their own jobs and batch, none of the other's. */
async function expectOwnWork(name: string, other: string) {
  const own = work[name];
  const theirs = work[other];
  if (!own || !theirs) throw new Error("no work submitted");
  await poll(() => keysOf("jobs")).toEqual([...own.jobs].reverse());
  const shown = await keysOf("jobs");
  for (const id of theirs.jobs) expect(shown).not.toContain(id);
  expect(new Set(await columnOf("jobs", 1))).toEqual(new Set([name]));
  await poll(() => keysOf("batches")).toEqual([own.batch]);
  expect(await columnOf("batches", 1)).toEqual([name]);
  // Their queue, counted from their own job list.
  expect(await page.locator("#queue-title").textContent()).toBe("Your jobs by state");
  await poll(async () => (await cells(page.locator('#queue tbody tr[data-key="queued"]')))[1]).toBe(
    String(own.jobs.length),
  );
}

/** The admin's sections are hidden, and the page says why. */
async function expectNoAdminPages() {
  for (const section of ["nodes-section", "users-section", "audit-section"]) {
    expect(await page.locator(`#${section}`).isHidden(), section).toBe(true);
  }
  expect(await page.locator("#user-note").isVisible()).toBe(true);
  expect(await page.locator("#user-note").textContent()).toMatch(
    /Nodes, cluster stats, users and the audit log need\s+the\s+admin token/,
  );
}

describe.skipIf(!runs)("the dashboard for users and the admin", () => {
  beforeAll(async () => {
    dataDir = mkdtempSync(join(tmpdir(), "labrun-dash-users-"));
    coordinator = await startCoordinator(
      { host: "127.0.0.1", port: 0, dataDir },
      pino({ level: "silent" }),
    );
    await addUser("alice", { maxQueued: 10, weight: 2 });
    await addUser("bob");
    await addUser("carol");
    for (let i = 0; i < ROTATIONS; i++) {
      await call("POST", "/v1/admin/users/carol/token", coordinator.tokens.admin);
    }
    await submitWork("alice", 2, 3);
    await submitWork("bob", 1, 1);
    browser = await openBrowserPage();
    page = browser.page;
  });

  afterAll(async () => {
    await browser?.close();
    await coordinator?.close();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  it("alice signs in with her own token: her jobs and batch, not bob's, and no admin page", async () => {
    const before = browser.requested.length;
    await signIn(tokens.alice as string);
    expect(await page.locator("#signed-in").textContent()).toBe("Signed in as alice");
    await expectOwnWork("alice", "bob");
    await expectNoAdminPages();

    // Her job's page says whose it is.
    const mine = work.alice?.jobs[0] as string;
    await page.getByRole("button", { name: `Job ${mine}` }).click();
    await page.getByRole("heading", { name: `Job ${mine}` }).waitFor();
    expect(await page.locator("#detail-fields").textContent()).toMatch(/Owner\s*alice/);

    // Two more refreshes: the page never asked her token for an admin route.
    const refreshes = async () =>
      browser.requested.slice(before).filter((url) => url.includes("/v1/batches?")).length;
    await poll(refreshes).toBeGreaterThanOrEqual(3);
    const asked = browser.requested.slice(before).map((url) => new URL(url).pathname);
    expect(asked).toContain("/v1/whoami");
    expect(asked).toContain("/v1/jobs");
    expect(asked.filter((path) => path.startsWith("/v1/admin"))).toEqual([]);
    mkdirSync(OUTPUT, { recursive: true });
    await page.screenshot({ path: join(OUTPUT, "dashboard-user.png"), fullPage: true });
  });

  it("alice signs out: nothing of hers stays, the token is forgotten", async () => {
    await signOut();
  });

  it("bob signs in and sees his work, not alice's", async () => {
    await signIn(tokens.bob as string);
    expect(await page.locator("#signed-in").textContent()).toBe("Signed in as bob");
    await expectOwnWork("bob", "alice");
    await expectNoAdminPages();
    await signOut();
  });

  it("the admin sees both users with their counts, usage, share and quotas, as the API lists them", async () => {
    await signIn(coordinator.tokens.admin);
    expect(await page.locator("#signed-in").textContent()).toBe("Signed in with the admin token");
    expect(await page.locator("#user-note").isHidden()).toBe(true);
    await page.getByRole("table", { name: "Users" }).waitFor();

    const listed = ((await call("GET", "/v1/admin/users", coordinator.tokens.admin)) as UserList)
      .users;
    const api = (name: string) => listed.find((user) => user.name === name) as UserInfo;
    expect(api("alice")).toMatchObject({ queued: 5, running: 0, weight: 2, maxQueued: 10 });
    expect(api("bob")).toMatchObject({ queued: 2, running: 0, weight: 1 });
    const time = expect.stringMatching(/^\d\d:\d\d:\d\d$/);
    await poll(() => userRow("alice")).toEqual([
      "alice",
      time,
      "0",
      "5",
      "0 s",
      "0%",
      "2",
      "—",
      "10",
    ]);
    expect(await userRow("bob")).toEqual(["bob", time, "0", "2", "0 s", "0%", "1", "—", "—"]);
    expect(await keysOf("users")).toEqual(listed.map((user) => user.name));

    // Everyone's work, each with its owner.
    await poll(async () => new Set(await keysOf("jobs"))).toEqual(
      new Set([...(work.alice?.jobs ?? []), ...(work.bob?.jobs ?? [])]),
    );
    expect(new Set(await columnOf("jobs", 1))).toEqual(new Set(["alice", "bob"]));
    await poll(async () => new Set(await keysOf("batches"))).toEqual(
      new Set([work.alice?.batch, work.bob?.batch]),
    );
    expect(await page.locator("#nodes-section").isVisible()).toBe(true);
  });

  it("the admin reads the audit log newest first, a page at a time, and sees a new entry arrive", async () => {
    const audit = page.getByRole("table", { name: "Audit log, newest first" });
    await audit.waitFor();
    await poll(() => page.locator("#audit tbody tr").count()).toBe(AUDIT_PAGE);
    expect(new Set(await columnOf("audit", 2))).toEqual(new Set(["user.rotate"]));
    expect(await page.locator("#audit-page").textContent()).toBe(`Entries 1–${AUDIT_PAGE}.`);
    expect(await page.locator("#audit-newer").isHidden()).toBe(true);

    await page.getByRole("button", { name: "Older entries" }).click();
    const older = ROTATIONS + 3 - AUDIT_PAGE;
    await poll(() => page.locator("#audit-page").textContent()).toBe(
      `Entries ${AUDIT_PAGE + 1}–${AUDIT_PAGE + older}.`,
    );
    const rows = page.locator("#audit tbody tr");
    expect(await rows.count()).toBe(older);
    const time = expect.stringMatching(/^\d\d:\d\d:\d\d$/);
    expect(await cells(rows.nth(older - 3))).toEqual([time, "admin", "user.add", "carol", "—"]);
    expect(await cells(rows.nth(older - 2))).toEqual([time, "admin", "user.add", "bob", "—"]);
    expect(await cells(rows.nth(older - 1))).toEqual([
      time,
      "admin",
      "user.add",
      "alice",
      "maxQueued=10, weight=2",
    ]);
    expect(await page.locator("#audit-older").isHidden()).toBe(true);

    await page.getByRole("button", { name: "Newer entries" }).click();
    await poll(() => page.locator("#audit-page").textContent()).toBe(`Entries 1–${AUDIT_PAGE}.`);
    // An admin action elsewhere shows up on top without a reload.
    await addUser("dave", { maxRunning: 1 });
    await poll(() => cells(rows.first())).toEqual([
      time,
      "admin",
      "user.add",
      "dave",
      "maxRunning=1",
    ]);
    await poll(() => userRow("dave")).toEqual(["dave", time, "0", "0", "0 s", "0%", "1", "1", "—"]);
    mkdirSync(OUTPUT, { recursive: true });
    await page.screenshot({ path: join(OUTPUT, "dashboard-admin-users.png"), fullPage: true });
  });

  it("asked for nothing outside the coordinator, and logged no script error or CSP violation", () => {
    expect(browser.requested.some((url) => url.includes("/v1/admin/audit"))).toBe(true);
    expect(outsideLoopback(browser.requested)).toEqual([]);
    expect(browser.problems).toEqual([]);
  });
});
