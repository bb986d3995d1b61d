import type Dockerode from "dockerode";
import { deferRarelyUsedDockerModules } from "./deferred-modules.js";

/** Docker could not be reached: says where it looked and what to do. */
export class DockerUnreachableError extends Error {
  constructor(where: string, cause: unknown) {
    super(
      `Docker is not reachable at ${where} — run scripts/ensure-docker.sh or set DOCKER_HOST (${
        cause instanceof Error ? cause.message : String(cause)
      })`,
    );
    this.name = "DockerUnreachableError";
  }
}

/** Where dockerode will connect: DOCKER_HOST if set, else the default socket. */
export function dockerAddress(): string {
  return process.env.DOCKER_HOST ?? "/var/run/docker.sock";
}

/** A dockerode client that has answered a ping. */
export async function connectDocker(): Promise<Dockerode> {
  deferRarelyUsedDockerModules();
  const { default: Dockerode } = await import("dockerode");
  const docker = new Dockerode();
  try {
    await docker.ping();
  } catch (error) {
    throw new DockerUnreachableError(dockerAddress(), error);
  }
  return docker;
}
