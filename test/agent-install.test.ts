import { execFileSync, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readEnvFile, UNIT_NAME } from "../client/commands/install.js";
import { labrun } from "./helpers/cli.js";
import { startTestCluster, type TestCluster } from "./helpers/cluster.js";
import { runPrefix } from "./helpers/run-id.js";

let cluster: TestCluster;
let dir: string;
beforeAll(async () => {
  cluster = await startTestCluster({ agents: [] });
  dir = mkdtempSync(join(tmpdir(), "labrun-install-"));
});
afterAll(async () => {
  await cluster?.close();
  rmSync(dir, { recursive: true, force: true });
});

/** The ExecStart command line of a unit, split as systemd would (plain or "quoted" words). */
function execStart(unit: string): string[] {
  const line = /^ExecStart=(.*)$/m.exec(unit)?.[1] ?? "";
  return [...line.matchAll(/"((?:[^"\\]|\\.)*)"|(\S+)/g)].map((m) =>
    m[1] !== undefined ? m[1].replace(/\\(["\\])/g, "$1") : (m[2] ?? ""),
  );
}

describe("labrun agent install", () => {
  it("writes a valid unit whose ExecStart starts an agent that registers, and uninstalls it", async () => {
    const unitDir = join(dir, "units");
    const envDir = join(dir, "etc");
    const name = `${runPrefix()}inst-${process.pid}`;
    const installed = await labrun(
      [
        "agent",
        "install",
        "--server",
        cluster.url,
        "--token",
        cluster.tokens.agent,
        "--name",
        name,
        "--slots",
        "1",
        "--max-pids",
        "512",
        "--cpus",
        "2",
        "--grace",
        "5s",
        "--unit-dir",
        unitDir,
        "--env-dir",
        envDir,
        "--no-enable",
      ],
      {},
    );
    expect(installed.stderr).toBe("");
    expect(installed.code).toBe(0);
    const unitFile = join(unitDir, UNIT_NAME);
    const envFile = join(envDir, "agent.env");
    expect(installed.stdout).toContain(`wrote ${unitFile}`);
    expect(statSync(envFile).mode & 0o777).toBe(0o600);
    const unit = readFileSync(unitFile, "utf8");
    // The token is a secret: only in the 0600 env file, never in the unit.
    expect(unit).not.toContain(cluster.tokens.agent);
    expect(readEnvFile(envFile)).toMatchObject({
      LABRUN_SERVER: cluster.url,
      LABRUN_AGENT_TOKEN: cluster.tokens.agent,
    });
    expect(unit).toContain(`EnvironmentFile=${envFile}`);
    // The agent's flags go into ExecStart as they were written.
    expect(unit).toMatch(/ExecStart=.* --max-pids 512/);
    expect(unit).toMatch(/ExecStart=.* --cpus 2/);
    expect(unit).toMatch(/ExecStart=.* --grace 5s/);

    if (existsSync("/usr/bin/systemd-analyze")) {
      // Fails on unknown keys, bad ExecStart paths or syntax errors.
      execFileSync("systemd-analyze", ["verify", unitFile], { stdio: "pipe" });
    }

    // Run the ExecStart line exactly as systemd would, with the env file's variables.
    const [command, ...args] = execStart(unit);
    const agent = spawn(command ?? "", args, {
      env: { PATH: process.env.PATH ?? "", ...readEnvFile(envFile), LABRUN_LOG_LEVEL: "warn" },
      stdio: "ignore",
    });
    try {
      const deadline = Date.now() + 30_000;
      let registered: Awaited<ReturnType<typeof cluster.admin.nodes>>[number] | undefined;
      while (!registered && Date.now() < deadline) {
        const nodes = await cluster.admin.nodes();
        registered = nodes.find((node) => node.name === name && node.state === "ready");
        if (!registered) await sleep(200);
      }
      expect(registered).toMatchObject({ maxLimits: { pids: 512 }, capacity: { cpus: 2 } });
    } finally {
      const exited = new Promise<number | null>((resolve) => agent.once("exit", resolve));
      agent.kill("SIGTERM");
      expect(await exited).toBe(0);
    }

    const removed = await labrun(
      ["agent", "uninstall", "--unit-dir", unitDir, "--env-dir", envDir],
      {},
    );
    expect(removed.code).toBe(0);
    expect(existsSync(unitFile)).toBe(false);
    expect(existsSync(envFile)).toBe(false);
  });

  it("refuses an agent flag it would write into the unit when the value is bad", async () => {
    const out = await labrun(
      [
        "agent",
        "install",
        "--server",
        cluster.url,
        "--token",
        "t",
        "--max-pids",
        "1",
        "--no-enable",
      ],
      {},
    );
    expect(out.code).toBe(2);
    expect(out.stderr).toContain("--max-pids: ");
  });

  it("refuses an install without a token, in one line", async () => {
    const out = await labrun(["agent", "install", "--server", cluster.url, "--no-enable"], {});
    expect(out.code).toBe(2);
    expect(out.stderr.trim().split("\n")).toHaveLength(1);
    expect(out.stderr).toContain("--token is required");
  });
});
