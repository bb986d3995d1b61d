import type Dockerode from "dockerode";
import type { JobSandbox } from "../executor.js";
import { containerOptions, type SandboxSettings } from "./options.js";
import { type ContainerExit, runContainer } from "./run.js";

/** The executor's sandbox, backed by a Docker engine: one throwaway container per job. */
export class DockerSandbox implements JobSandbox {
  constructor(
    private readonly docker: Dockerode,
    private readonly image: string,
    private readonly agentName: string,
    private readonly settings: SandboxSettings,
  ) {}

  run(job: Parameters<JobSandbox["run"]>[0]): Promise<ContainerExit> {
    return runContainer(this.docker, {
      options: containerOptions({
        image: this.image,
        jobId: job.jobId,
        agentName: this.agentName,
        limits: job.limits,
        sandbox: this.settings,
      }),
      stdin: job.stdin,
      nonce: job.nonce,
      caps: job.caps,
      timeoutMs: job.limits.timeoutMs,
      signal: job.signal,
    });
  }
}
