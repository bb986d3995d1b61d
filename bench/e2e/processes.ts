import { type ChildProcess, spawn } from "node:child_process";
import { createWriteStream, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { readMemory } from "../coordinator/launch.js";

/** The services' entry (`labrun coordinator|agent` = `node dist/client/cli.js …`). */
export const CLI = fileURLToPath(new URL("../../client/cli.js", import.meta.url));
/** The `labrun` command as a user runs it: the package's bin (the bundled CLI). */
export const BIN = fileURLToPath(new URL("../../../bin/labrun.js", import.meta.url));
/** The breakdown's preload (bench/e2e/trace-hooks.ts). */
const TRACE_HOOKS = fileURLToPath(new URL("./trace-hooks.js", import.meta.url));

/** A labrun cluster as separate processes, each with its own CPU and RSS. */
export interface ClusterProcesses {
  url: string;
  tokens: { client: string; admin: string; agent: string };
  coordinatorPid: number;
  agentPid: number;
  agentName: string;
  /** With `trace`: where each process writes its events when it exits. */
  traceFiles: { coordinator: string; agent: string } | null;
  /** Client config for `labrun` CLI runs against this cluster. */
  cliEnv: NodeJS.ProcessEnv;
  stop(): Promise<void>;
}

/**
 * `labrun coordinator` + one `labrun agent` on loopback with a temp data dir;
 * their logs go to files in it (`coordinator.log`, `agent.log`).
 */
export async function launchCluster(options: {
  slots: number;
  warm: number;
  /** Loads trace-hooks into both processes, writing their events into this folder. */
  trace?: string;
  /** The coordinator's store (`--store postgres://…`); left out, SQLite in the data dir. */
  store?: string;
  /** Another build's dist/ (BENCH_COMPARE_DIST): its client/cli.js runs both services. */
  dist?: string;
}): Promise<ClusterProcesses> {
  const cli = options.dist ? join(options.dist, "client", "cli.js") : CLI;
  const dataDir = mkdtempSync(join(tmpdir(), "labrun-bench-e2e-"));
  const traceFiles = options.trace
    ? {
        coordinator: join(options.trace, "coordinator.trace.json"),
        agent: join(options.trace, "agent.trace.json"),
      }
    : null;
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const children: ChildProcess[] = [];
  const stop = async () => {
    await Promise.all(children.reverse().map(stopChild));
    rmSync(dataDir, { recursive: true, force: true });
  };
  try {
    children.push(
      spawnLogged(
        [
          "coordinator",
          "--host",
          "127.0.0.1",
          "--port",
          String(port),
          "--data-dir",
          dataDir,
          ...(options.store ? ["--store", options.store] : []),
        ],
        join(dataDir, "coordinator.log"),
        traceFiles?.coordinator,
        cli,
      ),
    );
    await waitUntil(async () => (await fetch(`${url}/readyz`).catch(() => null))?.ok === true);
    const tokens = JSON.parse(readFileSync(join(dataDir, "tokens.json"), "utf8"));
    const agentName = `bench-${port}`;
    const agent = spawnLogged(
      [
        "agent",
        "--server",
        url,
        "--token",
        tokens.agent,
        "--name",
        agentName,
        "--slots",
        String(options.slots),
        "--warm",
        String(options.warm),
      ],
      join(dataDir, "agent.log"),
      traceFiles?.agent,
      cli,
    );
    children.push(agent);
    await waitUntil(async () => {
      const answer = await fetch(`${url}/v1/admin/nodes`, {
        headers: { authorization: `Bearer ${tokens.admin}` },
      });
      const { nodes } = (await answer.json()) as { nodes: Array<{ state: string }> };
      return nodes.some((node) => node.state === "ready");
    });
    return {
      url,
      tokens,
      coordinatorPid: children[0]?.pid ?? 0,
      agentPid: agent.pid ?? 0,
      agentName,
      traceFiles,
      cliEnv: { ...process.env, LABRUN_SERVER: url, LABRUN_TOKEN: tokens.client },
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}

/** Resident memory of a process in MiB (VmRSS), 0 when it is gone. */
export function rssMb(pid: number): number {
  try {
    return readMemory(pid).rssMb;
  } catch {
    return 0;
  }
}

function spawnLogged(
  args: string[],
  logFile: string,
  traceFile: string | undefined,
  cli: string,
): ChildProcess {
  const preload = traceFile ? ["--import", TRACE_HOOKS] : [];
  const child = spawn(process.execPath, [...preload, cli, ...args], {
    stdio: ["ignore", "pipe", "pipe"],
    env: {
      ...process.env,
      LABRUN_LOG_LEVEL: process.env.LABRUN_LOG_LEVEL ?? "warn",
      ...(traceFile ? { LABRUN_TRACE_FILE: traceFile } : {}),
    },
  });
  const log = createWriteStream(logFile);
  child.stdout?.pipe(log);
  child.stderr?.pipe(log);
  return child;
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once("exit", resolve));
  child.kill("SIGTERM");
  const forced = sleep(20_000).then(() => child.kill("SIGKILL"));
  await Promise.race([exited, forced]);
}

async function waitUntil(ready: () => Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await ready().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error("the bench cluster did not come up in time");
    await sleep(100);
  }
}

/** A free TCP port on loopback (for a process that needs a fixed one). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => resolve(typeof address === "object" && address ? address.port : 0));
    });
  });
}
