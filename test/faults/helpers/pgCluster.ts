import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "../../../bench/e2e/processes.js";
import { LabrunClient } from "../../../client/api.js";
import { runPrefix } from "../../helpers/run-id.js";
import {
  CLI,
  killGroup,
  type LabrunProcess,
  OUTPUT_DIR,
  removeAgentContainers,
  spawnLabrun,
  stopProcess,
  tail,
  waitFor,
} from "./processes.js";

/** One `labrun coordinator --store postgres://…` of a PgCluster, on its own port and data dir. */
export interface PgCoordinator {
  readonly name: string;
  readonly url: string;
  readonly dataDir: string;
  readonly logFile: string;
  process: LabrunProcess;
}

/** One `labrun agent --server A,B` of a PgCluster. */
export interface PgAgent extends LabrunProcess {
  readonly name: string;
}

export interface PgClusterOptions {
  /** The PostgreSQL database every coordinator shares. */
  store: string;
  /** Coordinator names, e.g. ["a", "b"]: each gets a port and a data dir of its own. */
  coordinators: string[];
  /** `--lease-ttl` of every coordinator (e.g. "8s"); absent: the default 10 s. */
  leaseTtl?: string;
}

/**
 * Several real coordinators on one PostgreSQL database (DESIGN.md §4), each
 * with a data dir of its own (their tokens come from the database), and
 * agents given the server list. Logs go to
 * `test-output/faults/logs/<prefix>/`, as ProcessCluster's.
 */
export class PgCluster {
  readonly prefix: string;
  readonly logDir: string;
  readonly coordinators = new Map<string, PgCoordinator>();
  readonly agents = new Map<string, PgAgent>();
  tokens = { client: "", admin: "", agent: "" };

  private constructor(
    scenario: string,
    private readonly options: PgClusterOptions,
  ) {
    this.prefix = `${runPrefix()}f${scenario}-${randomBytes(3).toString("hex")}`;
    this.logDir = join(OUTPUT_DIR, "faults", "logs", this.prefix);
    mkdirSync(this.logDir, { recursive: true });
  }

  /** Every coordinator started and ready, on free loopback ports. */
  static async start(scenario: string, options: PgClusterOptions): Promise<PgCluster> {
    if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run \`npm run build\` first`);
    const cluster = new PgCluster(scenario, options);
    try {
      for (const name of options.coordinators) {
        const port = await freePort();
        const dataDir = mkdtempSync(join(tmpdir(), `labrun-faults-${scenario}${name}-`));
        const logFile = join(cluster.logDir, `coordinator-${name}.log`);
        const coordinator = { name, url: `http://127.0.0.1:${port}`, dataDir, logFile };
        cluster.coordinators.set(name, { ...coordinator, process: cluster.spawn(coordinator) });
      }
      for (const name of options.coordinators) await cluster.ready(name);
      const first = cluster.coordinator(options.coordinators[0] ?? "");
      cluster.tokens = JSON.parse(readFileSync(join(first.dataDir, "tokens.json"), "utf8"));
    } catch (error) {
      await cluster.close();
      throw error;
    }
    return cluster;
  }

  coordinator(name: string): PgCoordinator {
    const coordinator = this.coordinators.get(name);
    if (!coordinator) throw new Error(`no coordinator ${name}`);
    return coordinator;
  }

  /** The coordinators' URLs as a server list, in the order given (the first is preferred). */
  servers(...names: string[]): string {
    return names.map((name) => this.coordinator(name).url).join(",");
  }

  /** A client with the shared client token (or `token`) on these coordinators, in this order. */
  client(names: string[], token = this.tokens.client): LabrunClient {
    return new LabrunClient({ server: this.servers(...names), token });
  }

  /** Sends a signal to a coordinator's process group; with SIGKILL, waits until it is gone. */
  async signal(name: string, signal: NodeJS.Signals): Promise<void> {
    const { process } = this.coordinator(name);
    killGroup(process.child, signal);
    if (signal === "SIGKILL") await process.exited;
  }

  /**
   * `labrun agent --server <servers>` (logs at debug: "job started" once
   * per job it runs), resolved once it is a ready node.
   */
  async startAgent(
    suffix: string,
    options: { servers: string[]; slots: number; warm?: number },
  ): Promise<PgAgent> {
    const name = `${this.prefix}-${suffix}`;
    const args = ["agent", "--server", this.servers(...options.servers), "--name", name];
    args.push("--slots", String(options.slots), "--token", this.tokens.agent);
    if (options.warm !== undefined) args.push("--warm", String(options.warm));
    const agent = Object.assign(
      spawnLabrun(args, join(this.logDir, `agent-${suffix}.log`), "debug"),
      { name },
    );
    this.agents.set(suffix, agent);
    const admin = this.client(options.servers, this.tokens.admin);
    await waitFor(
      `agent ${name} to register`,
      async () => {
        if (!agent.running) {
          throw new Error(`agent ${name} exited during start-up:\n${tail(agent.logFile, 20)}`);
        }
        return (await admin.nodes()).some((node) => node.name === name && node.state === "ready");
      },
      { timeoutMs: 60_000, intervalMs: 50 },
    );
    return agent;
  }

  /**
   * Stops the agent `suffix` with SIGTERM and waits for it to exit, so its
   * log is flushed before the tests count job starts from it. Undefined
   * when there is no such agent.
   */
  async stopAgent(suffix: string): Promise<PgAgent | undefined> {
    const agent = this.agents.get(suffix);
    if (agent) {
      process.kill(-agent.pid, "SIGTERM");
      await agent.exited;
    }
    return agent;
  }

  /**
   * Stops everything, even after a failure: agents (SIGTERM, then SIGKILL),
   * coordinators (SIGCONT first, in case one is stopped), every container of
   * the agents, the data dirs.
   */
  async close(): Promise<void> {
    await Promise.all([...this.agents.values()].map((agent) => stopProcess(agent, 20_000)));
    await Promise.all(
      [...this.coordinators.values()].map(async ({ process }) => {
        killGroup(process.child, "SIGCONT");
        await stopProcess(process, 10_000);
      }),
    );
    await this.removeContainers().catch((error: unknown) => {
      process.stderr.write(`faults: could not remove containers: ${String(error)}\n`);
    });
    for (const { dataDir } of this.coordinators.values()) {
      rmSync(dataDir, { recursive: true, force: true });
    }
  }

  private spawn(coordinator: Omit<PgCoordinator, "process">): LabrunProcess {
    const port = new URL(coordinator.url).port;
    const args = ["coordinator", "--host", "127.0.0.1", "--port", port];
    args.push("--data-dir", coordinator.dataDir, "--store", this.options.store);
    if (this.options.leaseTtl) args.push("--lease-ttl", this.options.leaseTtl);
    return spawnLabrun(args, coordinator.logFile, "info");
  }

  private async ready(name: string): Promise<void> {
    const { url, process } = this.coordinator(name);
    await waitFor(
      `coordinator ${name} to answer /readyz`,
      async () => {
        if (!process.running) {
          throw new Error(
            `coordinator ${name} exited during start-up:\n${tail(process.logFile, 20)}`,
          );
        }
        return (await fetch(`${url}/readyz`).catch(() => undefined))?.ok === true;
      },
      { timeoutMs: 30_000, intervalMs: 25 },
    );
  }

  private removeContainers(): Promise<void> {
    return removeAgentContainers([...this.agents.values()].map(({ name }) => name));
  }
}
