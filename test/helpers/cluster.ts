import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import pino from "pino";
import type { AgentConfigInput } from "../../agent/config.js";
import { connectDocker } from "../../agent/docker.js";
import { type RunningAgent, startAgent } from "../../agent/main.js";
import { AGENT_LABEL, JOB_LABEL } from "../../agent/sandbox/options.js";
import { LabrunClient } from "../../client/api.js";
import type { CoordinatorConfigInput } from "../../coordinator/config.js";
import { startCoordinator } from "../../coordinator/main.js";
import { runPrefix } from "./run-id.js";

/**
 * How much slower than this machine the tests' host is: the waits scale by it.
 * Only scripts/cgroup-v2-check.sh sets it (a VM under software emulation).
 */
export const SLOWDOWN = Math.max(1, Number(process.env.LABRUN_TEST_SLOWDOWN ?? 1) || 1);

/** Test logs stay quiet unless LABRUN_TEST_LOG=debug|info is set. */
export const testLogger = pino({ level: process.env.LABRUN_TEST_LOG ?? "silent" });

export interface TestCluster {
  url: string;
  tokens: { client: string; admin: string; agent: string };
  dataDir: string;
  agents: RunningAgent[];
  client: LabrunClient;
  admin: LabrunClient;
  addAgent(slots: number, settings?: Partial<AgentConfigInput>): Promise<RunningAgent>;
  /** Job containers of this cluster's agents that still exist. */
  leftoverContainers(): Promise<string[]>;
  close(): Promise<void>;
}

/**
 * A real coordinator on a loopback port and real agents on the real Docker
 * engine, all in this process. Agent names are unique per cluster so test
 * files running in parallel never reap each other's containers.
 */
export async function startTestCluster(options: {
  agents: number[];
  /** Extra agent settings for every agent, e.g. `{ warmPool: 0 }`. */
  agent?: Partial<AgentConfigInput>;
  /** Extra coordinator settings, e.g. `{ defaultLimits: { pids: 96 } }`. */
  coordinator?: Partial<CoordinatorConfigInput>;
}): Promise<TestCluster> {
  const dataDir = mkdtempSync(join(tmpdir(), "labrun-test-"));
  const coordinator = await startCoordinator(
    { host: "127.0.0.1", port: 0, dataDir, heartbeatMs: 500, ...options.coordinator },
    testLogger,
  );
  const prefix = `${runPrefix()}t${randomBytes(3).toString("hex")}`;
  const agents: RunningAgent[] = [];
  const addAgent = async (slots: number, settings: Partial<AgentConfigInput> = {}) => {
    const agent = await startAgent(
      {
        server: coordinator.url,
        token: coordinator.tokens.agent,
        name: `${prefix}-${agents.length + 1}`,
        slots,
        ...options.agent,
        ...settings,
      },
      testLogger,
    );
    agents.push(agent);
    return agent;
  };
  for (const slots of options.agents) await addAgent(slots);
  const docker = await connectDocker();
  return {
    url: coordinator.url,
    tokens: coordinator.tokens,
    dataDir,
    agents,
    client: new LabrunClient({ server: coordinator.url, token: coordinator.tokens.client }),
    admin: new LabrunClient({ server: coordinator.url, token: coordinator.tokens.admin }),
    addAgent,
    async leftoverContainers() {
      // Containers are removed in the background once a result is known, so
      // allow a moment; the warm containers the pools still hold are not leftovers.
      const deadline = Date.now() + 5_000;
      for (;;) {
        const leftovers = await jobContainersBeyondPools(docker, agents);
        if (leftovers.length === 0 || Date.now() > deadline) return leftovers;
        await sleep(100);
      }
    },
    async close() {
      await Promise.all(agents.map((agent) => agent.close()));
      await coordinator.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/**
 * Per agent: containers labelled with a job (cold runs) that still exist, plus
 * unlabelled (warm) ones beyond what its pool holds idle or is booting.
 */
async function jobContainersBeyondPools(
  docker: Awaited<ReturnType<typeof connectDocker>>,
  agents: RunningAgent[],
): Promise<string[]> {
  const list = await docker.listContainers({ all: true, filters: { label: [JOB_LABEL] } });
  const leftovers: string[] = [];
  for (const agent of agents) {
    const mine = list.filter((container) => container.Labels[AGENT_LABEL] === agent.name);
    const warm = mine.filter((container) => container.Labels[JOB_LABEL] === "");
    const pooled = agent.stats.pool.idle + agent.stats.pool.booting;
    leftovers.push(
      ...mine.filter((container) => container.Labels[JOB_LABEL] !== "").map((c) => c.Id),
      ...(warm.length > pooled ? warm.map((c) => c.Id) : []),
    );
  }
  return leftovers;
}

/** Submits a program and waits for its terminal job record. */
export async function run(
  client: LabrunClient,
  source: string,
  extra: { input?: unknown; filename?: string; limits?: Record<string, number> } = {},
) {
  const { id } = await client.submit({
    source,
    ...(extra.filename ? { filename: extra.filename } : {}),
    ...(extra.input !== undefined ? { input: extra.input as never } : {}),
    ...(extra.limits ? { limits: extra.limits } : {}),
  });
  return client.wait(id, { timeoutMs: 60_000 * SLOWDOWN });
}
