import { mkdtempSync, rmSync } from "node:fs";
import { Agent as HttpAgent, request as httpRequest } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import { afterEach, describe, expect, it } from "vitest";
import { startCoordinator } from "./main.js";

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});
function tempDir() {
  const dir = mkdtempSync(join(tmpdir(), "labrun-main-"));
  dirs.push(dir);
  return dir;
}
const silent = pino({ level: "silent" });

describe("startCoordinator", () => {
  it("serves /healthz on an ephemeral port and closes cleanly, keep-alive or not", async () => {
    const running = await startCoordinator({ dataDir: tempDir(), port: 0 }, silent);
    expect(running.port).toBeGreaterThan(0);
    expect(running.url).toBe(`http://127.0.0.1:${running.port}`);
    const response = await fetch(`${running.url}/healthz`);
    expect(await response.json()).toEqual({ ok: true });

    // A keep-alive socket left idle must not hold close() up.
    const agent = new HttpAgent({ keepAlive: true });
    await new Promise<void>((resolve, reject) => {
      httpRequest(`${running.url}/healthz`, { agent }, (res) => {
        res.resume();
        res.on("end", resolve);
      })
        .on("error", reject)
        .end();
    });
    const started = Date.now();
    await running.close();
    expect(Date.now() - started).toBeLessThan(900);
    agent.destroy();
    await expect(fetch(`${running.url}/healthz`)).rejects.toThrow();
  });

  it("answers a long-poll in flight when it closes", async () => {
    const running = await startCoordinator({ dataDir: tempDir(), port: 0 }, silent);
    const submitted = await fetch(`${running.url}/v1/jobs`, {
      method: "POST",
      headers: {
        authorization: `Bearer ${running.tokens.client}`,
        "content-type": "application/json",
      },
      body: JSON.stringify({ source: "exports.main = () => 1" }),
    });
    const { id } = (await submitted.json()) as { id: string };
    const waiting = fetch(`${running.url}/v1/jobs/${id}?wait=30`, {
      headers: { authorization: `Bearer ${running.tokens.client}` },
    });
    await new Promise((resolve) => setTimeout(resolve, 50));
    const started = Date.now();
    await running.close();
    expect(((await (await waiting).json()) as { state: string }).state).toBe("queued");
    expect(Date.now() - started).toBeLessThan(900);
  });

  it("keeps its tokens and jobs across a restart on the same data dir", async () => {
    const dataDir = tempDir();
    const first = await startCoordinator({ dataDir, port: 0 }, silent);
    const submitted = await fetch(`${first.url}/v1/jobs`, {
      method: "POST",
      headers: {
        authorization: `Bearer ${first.tokens.client}`,
        "content-type": "application/json",
      },
      body: JSON.stringify({ source: "exports.main = () => 1" }),
    });
    const { id } = (await submitted.json()) as { id: string };
    await first.close();
    const second = await startCoordinator({ dataDir, port: 0 }, silent);
    expect(second.tokens).toEqual(first.tokens);
    const job = await fetch(`${second.url}/v1/jobs/${id}`, {
      headers: { authorization: `Bearer ${second.tokens.client}` },
    });
    expect(((await job.json()) as { state: string }).state).toBe("queued");
    await second.close();
  });

  it("refuses bad settings with a message naming them", async () => {
    await expect(
      startCoordinator({ dataDir: tempDir(), port: 0, leaseTtlMs: 1000, heartbeatMs: 800 }, silent),
    ).rejects.toThrow(/heartbeatMs/);
    await expect(startCoordinator({ dataDir: "", port: -1 }, silent)).rejects.toThrow(/port/);
  });

  it("rejects when the port is taken, and leaves the data dir usable", async () => {
    const dataDir = tempDir();
    const first = await startCoordinator({ dataDir: tempDir(), port: 0 }, silent);
    await expect(startCoordinator({ dataDir, port: first.port }, silent)).rejects.toThrow(
      /EADDRINUSE/,
    );
    await first.close();
    const again = await startCoordinator({ dataDir, port: 0 }, silent);
    await again.close();
  });
});
