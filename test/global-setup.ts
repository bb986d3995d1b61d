import { randomBytes } from "node:crypto";
import pino from "pino";
import { connectDocker } from "../agent/docker.js";
import { ensureRunnerImage } from "../agent/sandbox/image.js";
import { AGENT_LABEL, JOB_LABEL } from "../agent/sandbox/options.js";
import { ensurePythonImage } from "../agent/sandbox/python-image.js";
import { TEST_RUN_ENV } from "./helpers/run-id.js";

/**
 * Integration tests run on a real Docker engine: check it answers and build
 * the runner images (node, and python from this machine's python3) once,
 * before any test file starts its cluster. Afterwards,
 * no job container may be left behind.
 */
export async function setup(): Promise<void> {
  // Every agent of this run is named after it (workers inherit the env), so
  // the check below counts this run's containers, not another run's on the
  // same engine.
  process.env[TEST_RUN_ENV] ??= `r${randomBytes(2).toString("hex")}`;
  const docker = await connectDocker();
  await ensureRunnerImage(docker, pino({ level: "warn" }));
  await ensurePythonImage(docker, pino({ level: "warn" }));
}

export async function teardown(): Promise<void> {
  const docker = await connectDocker();
  const run = process.env[TEST_RUN_ENV] ?? "";
  const left = (await docker.listContainers({ all: true, filters: { label: [JOB_LABEL] } })).filter(
    (container) => (container.Labels[AGENT_LABEL] ?? "").startsWith(run),
  );
  if (left.length > 0) {
    // Vitest only logs an error thrown here; the run must fail, so set the exit code too.
    process.exitCode = 1;
    throw new Error(
      `${left.length} job container(s) left behind: ${left.map((c) => c.Names.join(",")).join(" ")}`,
    );
  }
}
