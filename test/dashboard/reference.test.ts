import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import { type Browser, chromium } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type RunningCoordinator, startCoordinator } from "../../coordinator/main.js";

/**
 * The API reference page (`/docs`) in headless Debian chromium: it renders
 * the coordinator's own document, and every request it makes goes to the
 * coordinator (the lab network has no internet, so no CDN, font or
 * validator host). A coordinator alone: no agent, no Docker.
 */
const CHROMIUM = process.env.LABRUN_CHROMIUM ?? "/usr/bin/chromium";
const haveChromium = existsSync(CHROMIUM);
if (!haveChromium && process.env.LABRUN_REQUIRE_BROWSER === "1") {
  throw new Error(`no chromium at ${CHROMIUM}: run scripts/browser-test.sh`);
}

const LOOPBACK_HOSTS = new Set(["127.0.0.1", "localhost", "[::1]"]);

let coordinator: RunningCoordinator;
let browser: Browser;
let dataDir: string;

describe.skipIf(!haveChromium)("the API reference page in a browser", () => {
  beforeAll(async () => {
    dataDir = mkdtempSync(join(tmpdir(), "labrun-docs-"));
    coordinator = await startCoordinator(
      { host: "127.0.0.1", port: 0, dataDir },
      pino({ level: "silent" }),
    );
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: [
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
      ],
    });
  });

  afterAll(async () => {
    await browser?.close();
    await coordinator?.close();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  it("lists POST /v1/jobs from /openapi.json, loading nothing from outside the coordinator", async () => {
    const page = await browser.newPage();
    const requested: string[] = [];
    const problems: string[] = [];
    page.on("request", (request) => requested.push(request.url()));
    page.on("pageerror", (error) => problems.push(`page error: ${error.message}`));
    page.on("console", (message) => {
      if (message.type() === "error") problems.push(`console: ${message.text()}`);
    });

    const response = await page.goto(`${coordinator.url}/docs`);
    expect(response?.status()).toBe(200);
    expect(response?.headers()["content-security-policy"]).toContain("default-src 'self'");
    const submit = page.locator('.opblock-post .opblock-summary-path[data-path="/v1/jobs"]');
    await submit.waitFor({ timeout: 20_000 });
    expect(await submit.isVisible()).toBe(true);
    expect(await submit.textContent()).toContain("/v1/jobs");
    await page.locator(".opblock-get .opblock-summary-path[data-path='/v1/jobs/{id}']").waitFor();

    expect(requested.some((url) => url.endsWith("/openapi.json"))).toBe(true);
    const outside = requested.filter((url) => {
      const { protocol, host } = new URL(url);
      if (protocol === "data:" || protocol === "blob:") return false;
      return !LOOPBACK_HOSTS.has(host.replace(/:\d+$/, ""));
    });
    expect(outside).toEqual([]);
    expect(problems).toEqual([]);
    await page.close();
  });
});
