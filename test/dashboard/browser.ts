import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type BrowserContext, chromium, type Locator, type Page } from "playwright-core";
import { expect } from "vitest";

/**
 * What the dashboard's browser suites share: headless Debian chromium driven
 * by playwright-core (no browser download), every URL the page asks for, and
 * what it reported that it should not.
 */
export const CHROMIUM = process.env.LABRUN_CHROMIUM ?? "/usr/bin/chromium";
const LOOPBACK_HOSTS = new Set(["127.0.0.1", "localhost", "[::1]"]);

/**
 * Whether chromium is there. A suite that cannot run is a failure, not a
 * pass; skipping it takes an explicit LABRUN_SKIP_BROWSER=1, which CI never sets.
 */
export function haveChromium(suite: string): boolean {
  if (existsSync(CHROMIUM)) return true;
  const message = `no chromium at ${CHROMIUM}: install it with \`bash scripts/ensure-chromium.sh\` (apt-get install chromium)`;
  if (process.env.LABRUN_SKIP_BROWSER !== "1") throw new Error(message);
  console.warn(`${suite} SKIPPED (LABRUN_SKIP_BROWSER=1): ${message}`);
  return false;
}

export interface BrowserPage {
  context: BrowserContext;
  page: Page;
  /** Every URL the page asked for, to check that none left the machine. */
  requested: string[];
  /** Script errors, CSP violations. */
  problems: string[];
  close(): Promise<void>;
}

/** A fresh chromium profile with one page, watched for requests and problems. */
export async function openBrowserPage(): Promise<BrowserPage> {
  const userDataDir = mkdtempSync(join(tmpdir(), "labrun-chromium-"));
  const context = await chromium.launchPersistentContext(userDataDir, {
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
  const page = context.pages()[0] ?? (await context.newPage());
  page.setDefaultTimeout(15_000);
  const requested: string[] = [];
  const problems: string[] = [];
  page.on("request", (request) => requested.push(request.url()));
  page.on("pageerror", (error) => problems.push(`page error: ${error.message}`));
  page.on("console", (message) => {
    // Chromium logs every non-2xx fetch ("Failed to load resource"); the suites'
    // wrong tokens and a missing /v1/admin/stats answer 401/403/404 on purpose.
    if (message.type() === "error" && !message.text().startsWith("Failed to load resource")) {
      problems.push(`console: ${message.text()}`);
    }
  });
  return {
    context,
    page,
    requested,
    problems,
    async close() {
      await context.close();
      rmSync(userDataDir, { recursive: true, force: true });
    },
  };
}

/** The URLs that went anywhere but this machine (data: and blob: stay in the page). */
export function outsideLoopback(requested: string[]): string[] {
  return requested.filter((url) => {
    const { protocol, host } = new URL(url);
    if (protocol === "data:" || protocol === "blob:") return false;
    return !LOOPBACK_HOSTS.has(host.replace(/:\d+$/, ""));
  });
}

/** The cell texts of a table row, header cell first. */
export const cells = async (row: Locator) =>
  (await row.locator("th, td").allInnerTexts()).map((text) => text.replace(/\s+/g, " ").trim());

/** Polls until the read matches, as a page that refreshes every 2 s needs. */
export const poll = <T>(read: () => Promise<T>) =>
  expect.poll(read, { timeout: 15_000, interval: 100 });
