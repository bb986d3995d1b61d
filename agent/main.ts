import { hostname } from "node:os";
import type { Logger } from "pino";
import { z } from "zod";
import { clampLimits, DEFAULT_LIMITS } from "../protocol/index.js";
import { AgentConfig, type AgentConfigInput } from "./config.js";
import { CoordinatorApi } from "./coordinator-api.js";
import { connectDocker } from "./docker.js";
import { AgentLoop } from "./loop.js";
import { prepareRuntimeImages } from "./runtimes.js";
import { DockerSandbox } from "./sandbox/docker-sandbox.js";
import { AgentSettingsError, checkRuntime, loadSeccompProfile } from "./sandbox/hardening.js";
import { reapOrphans } from "./sandbox/reaper.js";

export const AGENT_VERSION = "0.1.0";

export interface RunningAgent {
  agentId: string;
  name: string;
  slots: number;
  /** Jobs run on warm and cold containers so far, and the pool's state. */
  readonly stats: DockerSandbox["stats"];
  /**
   * Graceful: stop leasing, let running jobs finish and report them (up to the
   * drain grace), empty the warm pool, leave the cluster.
   */
  close(): Promise<void>;
}

/**
 * Starts one agent (wiring only): Docker → reap orphans → runner image →
 * register → lease loop with heartbeats.
 */
export async function startAgent(input: AgentConfigInput, logger: Logger): Promise<RunningAgent> {
  const parsed = AgentConfig.safeParse(input);
  if (!parsed.success) {
    throw new AgentSettingsError(`invalid agent settings:\n${z.prettifyError(parsed.error)}`);
  }
  const config = parsed.data;
  const log = logger.child({ agent: config.name });
  const seccompProfile = config.seccompProfile
    ? loadSeccompProfile(config.seccompProfile)
    : undefined;
  const docker = await connectDocker();
  if (config.runtime) await checkRuntime(docker, config.runtime);
  await reapOrphans(docker, config.name, log);
  const images = await prepareRuntimeImages(docker, config, log);
  const runtimes = DockerSandbox.runtimesOf(images);

  const api = new CoordinatorApi(config.server, config.token);
  const register = () =>
    api.register({
      name: config.name,
      hostname: hostname(),
      slots: config.slots,
      version: AGENT_VERSION,
      labels: config.labels,
      maxLimits: config.maxLimits,
      capacity: config.capacity,
      runtimes,
    });
  const registration = await register();
  log.info(
    {
      agentId: registration.agentId,
      slots: config.slots,
      server: config.server,
      images,
      maxLimits: config.maxLimits,
      capacity: config.capacity,
      runtime: config.runtime,
      seccompProfile: config.seccompProfile,
    },
    "agent registered",
  );

  // Warm containers get the limits most jobs run under: the coordinator's
  // defaults, as a job gets them once clamped to this machine's maxima.
  const pooledLimits = clampLimits(registration.defaultLimits ?? DEFAULT_LIMITS, config.maxLimits);
  const sandbox = new DockerSandbox(
    docker,
    images,
    config.name,
    { runtime: config.runtime, seccompProfile },
    {
      size: config.warmPool ?? config.slots,
      maxIdleMs: config.warmMaxIdleMs,
      limits: pooledLimits,
    },
    log,
  );
  sandbox.start();
  const loop = new AgentLoop(
    api,
    sandbox,
    {
      slots: config.slots,
      heartbeatMs: registration.heartbeatMs,
      leaseWaitMs: config.leaseWaitMs,
      maxLimits: config.maxLimits,
      reregister: async () => {
        await register();
      },
    },
    log,
  );
  loop.start();

  return {
    agentId: registration.agentId,
    name: config.name,
    slots: config.slots,
    get stats() {
      return sandbox.stats;
    },
    async close() {
      await loop.stop(config.drainGraceMs);
      await sandbox.close();
      // Leaving at once requeues anything still leased now, not a lease TTL later.
      await api.deregister().catch((error: unknown) => {
        log.warn({ err: error }, "could not deregister; the coordinator will see this node lost");
      });
      await reapOrphans(docker, config.name, log);
      log.info("agent stopped");
    },
  };
}
