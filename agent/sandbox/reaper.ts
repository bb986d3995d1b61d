import type Dockerode from "dockerode";
import type { Logger } from "pino";
import { AGENT_LABEL } from "./options.js";
import { removeContainer } from "./run.js";

/**
 * Removes the job containers an earlier run of this agent left behind (found by
 * label): after a crash or kill -9 nothing of it may linger on the machine.
 * Returns how many it removed.
 */
export async function reapOrphans(
  docker: Dockerode,
  agentName: string,
  logger: Logger,
): Promise<number> {
  const orphans = await docker.listContainers({
    all: true,
    filters: { label: [`${AGENT_LABEL}=${agentName}`] },
  });
  await Promise.all(orphans.map((orphan) => removeContainer(docker.getContainer(orphan.Id))));
  if (orphans.length > 0) {
    logger.info({ removed: orphans.length }, "removed job containers left by an earlier run");
  }
  return orphans.length;
}
