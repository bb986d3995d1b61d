import type Dockerode from "dockerode";
import type { Logger } from "pino";
import type { RuntimeImages } from "./sandbox/docker-sandbox.js";
import { AgentSettingsError } from "./sandbox/hardening.js";
import { ensureRunnerImage } from "./sandbox/image.js";
import { DEFAULT_PYTHON, ensurePythonImage } from "./sandbox/python-image.js";
import { PythonUnavailableError } from "./sandbox/python-layout.js";

/**
 * The runner image of every runtime this machine can offer, built on demand:
 * node always (the agent's own), python from `python` (`--python PATH`, else
 * python3 on PATH). Without a usable python3 the agent offers node only and
 * says so once; a `--python` given that cannot be used stops the agent
 * (AgentSettingsError, exit 2).
 */
export async function prepareRuntimeImages(
  docker: Dockerode,
  settings: { image?: string | undefined; python?: string | undefined },
  logger: Logger,
): Promise<RuntimeImages> {
  const node = settings.image ?? (await ensureRunnerImage(docker, logger));
  try {
    const python = await ensurePythonImage(docker, logger, settings.python ?? DEFAULT_PYTHON);
    return { node, python };
  } catch (error) {
    if (!(error instanceof PythonUnavailableError)) throw error;
    if (settings.python) {
      throw new AgentSettingsError(`--python ${settings.python} cannot run jobs: ${error.message}`);
    }
    logger.warn(
      { reason: error.message },
      "no usable python3 on this machine: this agent offers the node runtime only",
    );
    return { node };
  }
}
