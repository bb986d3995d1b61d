import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connectDocker } from "../agent/docker.js";
import { startAgent } from "../agent/main.js";
import { runnerImageTag } from "../agent/sandbox/image.js";
import { AGENT_LABEL, JOB_LABEL } from "../agent/sandbox/options.js";
import { labrun } from "./helpers/cli.js";
import { startTestCluster, type TestCluster, testLogger } from "./helpers/cluster.js";

let cluster: TestCluster;
beforeAll(async () => {
  cluster = await startTestCluster({ agents: [] });
});
afterAll(async () => {
  await cluster?.close();
});

describe("agent start-up", () => {
  it("removes the job containers an earlier run of the same agent left behind", async () => {
    const docker = await connectDocker();
    const name = `orphan-${process.pid}`;
    // What a kill -9'd agent leaves: a job container labelled with its name.
    const orphan = await docker.createContainer({
      Image: runnerImageTag(),
      Labels: { [JOB_LABEL]: "j_orphan", [AGENT_LABEL]: name },
      HostConfig: { NetworkMode: "none" },
    });
    const agent = await startAgent(
      { server: cluster.url, token: cluster.tokens.agent, name, slots: 1 },
      testLogger,
    );
    try {
      await expect(docker.getContainer(orphan.id).inspect()).rejects.toMatchObject({
        statusCode: 404,
      });
    } finally {
      await agent.close();
    }
  });

  it("says clearly that Docker is unreachable and exits 3", async () => {
    const out = await labrun(
      ["agent", "--server", cluster.url, "--token", cluster.tokens.agent, "--name", "nodocker"],
      { DOCKER_HOST: "unix:///nonexistent/docker.sock", LABRUN_LOG_LEVEL: "silent" },
    );
    expect(out.code).toBe(3);
    expect(out.stderr).toContain("Docker is not reachable at unix:///nonexistent/docker.sock");
    expect(out.stderr).toContain("scripts/ensure-docker.sh");
    expect(out.stderr).not.toMatch(/\n\s+at .+:\d+:\d+/);
  });
});
