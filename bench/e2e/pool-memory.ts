import type Dockerode from "dockerode";
import { AGENT_LABEL, JOB_LABEL } from "../../agent/sandbox/options.js";

/**
 * Memory the agent's idle warm containers use (their cgroups' usage, MiB
 * summed): what a full pool costs the machine beyond the agent's own RSS.
 */
export async function warmContainersMemory(
  docker: Dockerode,
  agentName: string,
): Promise<{ containers: number; totalMb: number }> {
  const list = await docker.listContainers({
    filters: { label: [`${AGENT_LABEL}=${agentName}`, `${JOB_LABEL}=`] },
  });
  let bytes = 0;
  for (const container of list) {
    const stats = (await docker.getContainer(container.Id).stats({ stream: false })) as {
      memory_stats?: { usage?: number };
    };
    bytes += stats.memory_stats?.usage ?? 0;
  }
  return { containers: list.length, totalMb: Math.round((bytes / 2 ** 20) * 10) / 10 };
}
