import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import { connectDocker } from "../../agent/docker.js";
import { type RunningAgent, startAgent } from "../../agent/main.js";
import { AGENT_LABEL, JOB_LABEL } from "../../agent/sandbox/options.js";
import { LabrunClient } from "../../client/api.js";
import { startCoordinator } from "../../coordinator/main.js";

/** Test logs stay quiet unless LABRUN_TEST_LOG=debug|info is set. */
export const testLogger = pino({ level: process.env.LABRUN_TEST_LOG ?? "silent" });

export interface TestCluster {
  url: string;
  tokens: { client: string; admin: string; agent: string };
  dataDir: string;
  agents: RunningAgent[];
  client: LabrunClient;
  admin: LabrunClient;
  addAgent(slots: number): Promise<RunningAgent>;
  /** Job containers of this cluster's agents that still exist. */
  leftoverContainers(): Promise<string[]>;
  close(): Promise<void>;
}

/**
 * A real coordinator on a loopback port and real agents on the real Docker
 * engine, all in this process. Agent names are unique per cluster so test
 * files running in parallel never reap each other's containers.
 */
export async function startTestCluster(options: { agents: number[] }): Promise<TestCluster> {
  const dataDir = mkdtempSync(join(tmpdir(), "labrun-test-"));
  const coordinator = await startCoordinator(
    { host: "127.0.0.1", port: 0, dataDir, heartbeatMs: 500 },
    testLogger,
  );
  const prefix = `t${randomBytes(3).toString("hex")}`;
  const agents: RunningAgent[] = [];
  const addAgent = async (slots: number) => {
    const agent = await startAgent(
      {
        server: coordinator.url,
        token: coordinator.tokens.agent,
        name: `${prefix}-${agents.length + 1}`,
        slots,
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
      const names = new Set(agents.map((agent) => agent.name));
      const list = await docker.listContainers({ all: true, filters: { label: [JOB_LABEL] } });
      return list
        .filter((container) => names.has(container.Labels[AGENT_LABEL] ?? ""))
        .map((container) => container.Id);
    },
    async close() {
      await Promise.all(agents.map((agent) => agent.close()));
      await coordinator.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
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
  return client.wait(id, { timeoutMs: 60_000 });
}
