import { type ChildProcess, spawn } from "node:child_process";
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "../../bench/e2e/processes.js";
import type { LeasedJob, Outcome } from "../../protocol/index.js";
import { bounded, CLI, killGroup, tail, waitFor } from "../faults/helpers/processes.js";
import { SLOWDOWN } from "./cluster.js";

/** One `labrun coordinator --store postgres://…` process on loopback. */
export interface PgCoordinator {
  url: string;
  child: ChildProcess;
  pid: number;
  logFile: string;
  tokens: { client: string; admin: string; agent: string };
  running(): boolean;
  /** SIGTERM, SIGKILL after 15 s; resolves when it is gone. */
  stop(): Promise<void>;
  /** Sends `signal` to its process group; with SIGKILL, waits until it is gone. */
  signal(signal: NodeJS.Signals): Promise<void>;
  /** A gauge or counter of its /metrics (summed over labels matching `labels`). */
  metric(name: string, labels?: string): Promise<number>;
}

/**
 * Coordinator processes of one test: all on one data dir (so they share
 * tokens.json) and the database `store`, each started with `args` more
 * (`--lease-ttl 3s`, `--sweep 20s`). close() stops them all and removes the dir.
 */
export function pgCoordinators(store: string) {
  const dataDir = mkdtempSync(join(tmpdir(), "labrun-pgc-"));
  const started: PgCoordinator[] = [];

  async function start(args: string[] = []): Promise<PgCoordinator> {
    if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run \`npm run build\` first`);
    const port = await freePort();
    const logFile = join(dataDir, `coordinator-${port}.log`);
    const fd = openSync(logFile, "a");
    const child = spawn(
      process.execPath,
      [CLI, "coordinator", "--host", "127.0.0.1", "--port", String(port), ...args],
      {
        stdio: ["ignore", fd, fd],
        detached: true,
        env: { ...process.env, LABRUN_LOG_LEVEL: "info", LABRUN_STORE: "" },
      },
    );
    closeSync(fd);
    const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
    const running = () => child.exitCode === null && child.signalCode === null;
    const url = `http://127.0.0.1:${port}`;
    const coordinator: PgCoordinator = {
      url,
      child,
      pid: child.pid ?? 0,
      logFile,
      tokens: { client: "", admin: "", agent: "" },
      running,
      async stop() {
        if (!running()) return;
        killGroup(child, "SIGCONT");
        killGroup(child, "SIGTERM");
        await bounded(exited, 15_000, "the coordinator to stop").catch(() => {
          killGroup(child, "SIGKILL");
        });
      },
      async signal(signal) {
        killGroup(child, signal);
        if (signal === "SIGKILL") await bounded(exited, 10_000, "the coordinator to die");
      },
      async metric(name, labels = "") {
        const response = await fetch(`${url}/metrics`, {
          headers: { authorization: `Bearer ${coordinator.tokens.admin}` },
          signal: AbortSignal.timeout(5_000),
        });
        if (!response.ok) throw new Error(`/metrics answered ${response.status}`);
        let sum = 0;
        for (const line of (await response.text()).split("\n")) {
          const match = /^([a-z_]+)(\{[^}]*\})? (\S+)$/.exec(line);
          if (match?.[1] === name && (match[2] ?? "").includes(labels)) sum += Number(match[3]);
        }
        return sum;
      },
    };
    started.push(coordinator);
    await waitFor(
      `the coordinator on ${url} to answer /readyz`,
      async () => {
        if (!running()) throw new Error(`exited during start-up:\n${tail(logFile, 20)}`);
        return (await fetch(`${url}/readyz`).catch(() => undefined))?.ok === true;
      },
      { timeoutMs: 30_000 * SLOWDOWN, intervalMs: 50 },
    );
    coordinator.tokens = JSON.parse(readFileSync(join(dataDir, "tokens.json"), "utf8"));
    return coordinator;
  }

  return {
    dataDir,
    /** Starts `labrun coordinator --data-dir <dir> --store <store> …args`; resolves when ready. */
    start: (args: string[] = []) => start(["--data-dir", dataDir, "--store", store, ...args]),
    async close() {
      await Promise.all(started.map((coordinator) => coordinator.stop()));
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** A JSON request with a bearer token; the body parsed (status checked against `expect`). */
export async function call<T>(
  url: string,
  token: string,
  method: string,
  path: string,
  body?: unknown,
  expectStatus = 200,
): Promise<T> {
  const response = await fetch(`${url}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${token}`,
      ...(body === undefined ? {} : { "content-type": "application/json" }),
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await response.text();
  if (response.status !== expectStatus) {
    throw new Error(`${method} ${path} answered ${response.status}: ${text.slice(0, 300)}`);
  }
  return (text === "" ? undefined : JSON.parse(text)) as T;
}

/**
 * An agent as the protocol sees it, driven by the test over HTTP (no
 * Docker): it registers, leases, heartbeats and reports when told to, on
 * whichever coordinator each call names.
 */
export async function simulatedAgent(on: PgCoordinator, name: string) {
  const registered = await call<{ agentId: string; token: string }>(
    on.url,
    on.tokens.agent,
    "POST",
    "/v1/agents/register",
    { name, hostname: "test", slots: 4, version: "test", labels: {} },
  );
  const { agentId, token } = registered;
  return {
    agentId,
    lease: async (via: PgCoordinator, waitMs: number, free = 1) =>
      (
        await call<{ jobs: LeasedJob[] }>(via.url, token, "POST", `/v1/agents/${agentId}/lease`, {
          free,
          waitMs,
        })
      ).jobs,
    heartbeat: (via: PgCoordinator, running: string[]) =>
      call<{ cancel: string[] }>(via.url, token, "POST", `/v1/agents/${agentId}/heartbeat`, {
        running,
      }),
    result: (via: PgCoordinator, leaseId: string, outcome: Outcome) =>
      call(via.url, token, "POST", `/v1/agents/${agentId}/results`, { leaseId, outcome }),
  };
}

/** What a simulated agent reports for a job that returned `result`. */
export const succeeded = (result: Extract<Outcome, { ok: true }>["result"]): Outcome => ({
  ok: true,
  result,
  logs: "",
  stats: { durationMs: 1 },
});
