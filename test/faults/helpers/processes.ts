import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import {
  closeSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { connectDocker } from "../../../agent/docker.js";
import { AGENT_LABEL, JOB_LABEL } from "../../../agent/sandbox/options.js";
import { freePort } from "../../../bench/e2e/processes.js";
import { LabrunClient } from "../../../client/api.js";
import { runPrefix } from "../../helpers/run-id.js";

/** The built CLI, as a user runs it (`labrun …` = `node dist/client/cli.js …`). */
export const CLI = fileURLToPath(new URL("../../../dist/client/cli.js", import.meta.url));
/** Where the fault suite keeps its logs and report (git-ignored). */
export const OUTPUT_DIR = fileURLToPath(new URL("../../../test-output/", import.meta.url));

/** The coordinator's lease TTL: `labrun coordinator` has no flag for it, so the default. */
export const LEASE_TTL_MS = 10_000;

/** One spawned labrun process (its own process group, so the whole group can be killed). */
export interface LabrunProcess {
  readonly child: ChildProcess;
  readonly pid: number;
  readonly logFile: string;
  /** Resolves when the process has exited (never rejects). */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  readonly running: boolean;
}

export interface AgentOptions {
  slots: number;
  /** Warm containers (`--warm`); undefined = the agent's default (one per slot). */
  warm?: number;
  /** LABRUN_LOG_LEVEL for this agent (default info). */
  logLevel?: string;
}

export interface AgentProcess extends LabrunProcess {
  readonly name: string;
  /** When the agent appeared as a ready node (ms since epoch). */
  registeredAt: number;
}

/** Every process any cluster of this worker spawned: killed on exit as a last resort. */
const spawned = new Set<ChildProcess>();
process.once("exit", () => {
  for (const child of spawned) killGroup(child, "SIGKILL");
});

/**
 * A labrun cluster as real processes on loopback: `labrun coordinator` on a
 * fixed port and data dir (so it can be killed and started again in place)
 * and any number of `labrun agent`s, each named `<prefix>-<suffix>` so test
 * files running side by side never touch each other's containers. Logs go to
 * `test-output/faults/logs/<prefix>/` and stay there for post-mortems.
 */
export class ProcessCluster {
  readonly prefix: string;
  readonly dataDir: string;
  readonly logDir: string;
  readonly url: string;
  tokens = { client: "", admin: "", agent: "" };
  client!: LabrunClient;
  admin!: LabrunClient;
  coordinator: LabrunProcess | undefined;
  readonly agents = new Map<string, AgentProcess>();
  /** Every agent name ever started here (containers to clean up). */
  private readonly agentNames = new Set<string>();
  private coordinatorStarts = 0;

  private constructor(
    scenario: string,
    readonly port: number,
  ) {
    this.prefix = `${runPrefix()}f${scenario}-${randomBytes(3).toString("hex")}`;
    this.dataDir = mkdtempSync(join(tmpdir(), `labrun-faults-${scenario}-`));
    this.logDir = join(OUTPUT_DIR, "faults", "logs", this.prefix);
    mkdirSync(this.logDir, { recursive: true });
    this.url = `http://127.0.0.1:${port}`;
  }

  /** A coordinator on a free loopback port, started and ready. */
  static async start(scenario: string): Promise<ProcessCluster> {
    if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run \`npm run build\` first`);
    const cluster = new ProcessCluster(scenario, await freePort());
    try {
      await cluster.startCoordinator();
    } catch (error) {
      await cluster.close();
      throw error;
    }
    return cluster;
  }

  /** Starts (or restarts) the coordinator on the same port and data dir; resolves when ready. */
  async startCoordinator(): Promise<number> {
    if (this.coordinator?.running) throw new Error("the coordinator is already running");
    this.coordinatorStarts += 1;
    const started = Date.now();
    const coordinator = spawnLabrun(
      [
        "coordinator",
        "--host",
        "127.0.0.1",
        "--port",
        String(this.port),
        "--data-dir",
        this.dataDir,
      ],
      join(this.logDir, "coordinator.log"),
      "info",
    );
    this.coordinator = coordinator;
    await waitFor(
      `the coordinator (start ${this.coordinatorStarts}) to answer /readyz`,
      async () => {
        if (!coordinator.running) {
          throw new Error(
            `the coordinator exited during start-up:\n${tail(coordinator.logFile, 20)}`,
          );
        }
        return (await fetch(`${this.url}/readyz`).catch(() => undefined))?.ok === true;
      },
      { timeoutMs: 30_000, intervalMs: 25 },
    );
    this.tokens = JSON.parse(readFileSync(join(this.dataDir, "tokens.json"), "utf8"));
    this.client = new LabrunClient({ server: this.url, token: this.tokens.client });
    this.admin = new LabrunClient({ server: this.url, token: this.tokens.admin });
    return Date.now() - started;
  }

  /** Sends a signal to the coordinator's process group; with SIGKILL, waits until it is gone. */
  async signalCoordinator(signal: NodeJS.Signals): Promise<void> {
    const coordinator = this.coordinator;
    if (!coordinator?.running) throw new Error("the coordinator is not running");
    killGroup(coordinator.child, signal);
    if (signal === "SIGKILL") await bounded(coordinator.exited, 10_000, "the coordinator to die");
  }

  /** Starts `labrun agent --name <prefix>-<suffix>` and waits until it is a ready node. */
  async startAgent(suffix: string, options: AgentOptions): Promise<AgentProcess> {
    const name = `${this.prefix}-${suffix}`;
    if (this.agents.get(name)?.running) throw new Error(`agent ${name} is already running`);
    this.agentNames.add(name);
    const spawnedAt = Date.now();
    const args = ["agent", "--server", this.url, "--name", name, "--slots", String(options.slots)];
    if (options.warm !== undefined) args.push("--warm", String(options.warm));
    const agent = spawnLabrun(
      [...args, "--token", this.tokens.agent],
      join(this.logDir, `agent-${suffix}.log`),
      options.logLevel ?? "info",
    );
    const handle: AgentProcess = Object.assign(agent, { name, registeredAt: 0 });
    this.agents.set(name, handle);
    await waitFor(
      `agent ${name} to register`,
      async () => {
        if (!agent.running) {
          throw new Error(`agent ${name} exited during start-up:\n${tail(agent.logFile, 20)}`);
        }
        const nodes = await this.admin.nodes();
        return nodes.some(
          (node) =>
            node.name === name &&
            node.state === "ready" &&
            Date.parse(node.registeredAt) >= spawnedAt - 1_000,
        );
      },
      { timeoutMs: 60_000, intervalMs: 50 },
    );
    handle.registeredAt = Date.now();
    return handle;
  }

  /** Sends a signal to an agent's process group; with SIGKILL, waits until it is gone. */
  async signalAgent(suffix: string, signal: NodeJS.Signals): Promise<void> {
    const agent = this.agent(suffix);
    if (!agent.running) throw new Error(`agent ${agent.name} is not running`);
    killGroup(agent.child, signal);
    if (signal === "SIGKILL") await bounded(agent.exited, 10_000, `agent ${agent.name} to die`);
  }

  agent(suffix: string): AgentProcess {
    const agent = this.agents.get(`${this.prefix}-${suffix}`);
    if (!agent) throw new Error(`no agent ${suffix}`);
    return agent;
  }

  /** Containers Docker holds for an agent: id, its labrun.job label, and state. */
  async containersOf(
    agentName: string,
  ): Promise<Array<{ id: string; job: string; state: string; created: number }>> {
    const docker = await connectDocker();
    const list = await docker.listContainers({
      all: true,
      filters: { label: [`${AGENT_LABEL}=${agentName}`] },
    });
    return list.map((container) => ({
      id: container.Id,
      job: container.Labels[JOB_LABEL] ?? "",
      state: container.State,
      created: container.Created,
    }));
  }

  /**
   * Stops everything, even after a failure: agents get SIGTERM (they remove
   * their warm pools) then SIGKILL, the coordinator likewise; every container
   * of this cluster's agents is removed; the data dir is deleted.
   */
  async close(): Promise<void> {
    const processes = [...this.agents.values()];
    await Promise.all(processes.map((agent) => stopProcess(agent, 20_000)));
    if (this.coordinator) {
      if (this.coordinator.child.signalCode === null) killGroup(this.coordinator.child, "SIGCONT");
      await stopProcess(this.coordinator, 10_000);
    }
    await this.removeContainers().catch((error: unknown) => {
      process.stderr.write(`faults: could not remove containers: ${String(error)}\n`);
    });
    rmSync(this.dataDir, { recursive: true, force: true });
  }

  private removeContainers(): Promise<void> {
    return removeAgentContainers(this.agentNames);
  }
}

/** Spawns the CLI in its own process group; output is appended to `logFile`. */
export function spawnLabrun(args: string[], logFile: string, logLevel: string): LabrunProcess {
  const fd = openSync(logFile, "a");
  const child = spawn(process.execPath, [CLI, ...args], {
    stdio: ["ignore", fd, fd],
    detached: true,
    env: { ...process.env, LABRUN_LOG_LEVEL: logLevel },
  });
  closeSync(fd);
  spawned.add(child);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once("exit", (code, signal) => {
      spawned.delete(child);
      resolve({ code, signal });
    });
    child.once("error", () => {
      spawned.delete(child);
      resolve({ code: null, signal: null });
    });
  });
  return {
    child,
    pid: child.pid ?? 0,
    logFile,
    exited,
    get running() {
      return child.exitCode === null && child.signalCode === null && child.pid !== undefined;
    },
  };
}

/** Signals a child's whole process group (it was spawned detached, so it leads one). */
export function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    try {
      child.kill(signal);
    } catch {
      // Already gone.
    }
  }
}

/** SIGTERM, then SIGKILL after `graceMs`; resolves when the process is gone. */
export async function stopProcess(proc: LabrunProcess, graceMs: number): Promise<void> {
  if (!proc.running) return;
  killGroup(proc.child, "SIGTERM");
  const exitedInTime = await Promise.race([
    proc.exited.then(() => true),
    sleep(graceMs).then(() => false),
  ]);
  if (!exitedInTime) {
    killGroup(proc.child, "SIGKILL");
    await bounded(proc.exited, 5_000, "a killed process to exit").catch(() => {});
  }
}

/** Polls `check` until it returns true; throws (naming `what`) after `timeoutMs`. */
export async function waitFor(
  what: string,
  check: () => Promise<boolean> | boolean,
  options: { timeoutMs: number; intervalMs?: number },
): Promise<number> {
  const started = Date.now();
  const deadline = started + options.timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      if (await check()) return Date.now() - started;
    } catch (error) {
      if (error instanceof Error && /exited during start-up/.test(error.message)) throw error;
      lastError = error;
    }
    if (Date.now() > deadline) {
      const reason = lastError instanceof Error ? ` (last error: ${lastError.message})` : "";
      throw new Error(`timed out after ${options.timeoutMs} ms waiting for ${what}${reason}`);
    }
    await sleep(options.intervalMs ?? 100);
  }
}

/** `promise`, or an error naming `what` after `timeoutMs`. */
export async function bounded<T>(promise: Promise<T>, timeoutMs: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)),
      timeoutMs,
    );
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** The last `lines` lines of a log file (for failure messages). */
export function tail(file: string, lines: number): string {
  try {
    return readFileSync(file, "utf8").trimEnd().split("\n").slice(-lines).join("\n");
  } catch {
    return "(no log)";
  }
}

/** Log lines (pino JSON) of a file that match `msg`, parsed. */
export function logEntries(file: string, msg: RegExp): Array<Record<string, unknown>> {
  let text = "";
  try {
    text = readFileSync(file, "utf8");
  } catch {
    return [];
  }
  const entries: Array<Record<string, unknown>> = [];
  for (const line of text.split("\n")) {
    if (!line.startsWith("{")) continue;
    try {
      const entry = JSON.parse(line) as Record<string, unknown>;
      if (typeof entry.msg === "string" && msg.test(entry.msg)) entries.push(entry);
    } catch {
      // A line cut short by kill -9.
    }
  }
  return entries;
}

/** Force-removes every container labelled as run by one of the agents `names` (a test's leftovers). */
export async function removeAgentContainers(names: Iterable<string>): Promise<void> {
  const docker = await connectDocker();
  for (const name of names) {
    const list = await docker.listContainers({
      all: true,
      filters: { label: [`${AGENT_LABEL}=${name}`] },
    });
    await Promise.all(
      list.map((container) =>
        docker
          .getContainer(container.Id)
          .remove({ force: true })
          .catch(() => {}),
      ),
    );
  }
}
