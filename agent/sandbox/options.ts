import type Dockerode from "dockerode";
import type { JobLimits } from "../../protocol/index.js";

/** Labels that mark a container as labrun's, so a restarted agent can reap its orphans. */
export const JOB_LABEL = "labrun.job";
export const AGENT_LABEL = "labrun.agent";

/** Per-agent sandbox settings that are not per-job limits. */
export interface SandboxSettings {
  /** Size of the job's writable /tmp (tmpfs), MiB. */
  tmpfsMb: number;
  /** Most processes/threads in the container (node itself needs ~15). */
  pidsLimit: number;
  /** OCI runtime, e.g. "runsc" for gVisor; undefined = the engine's default. */
  runtime?: string | undefined;
}

export const DEFAULT_SANDBOX: SandboxSettings = { tmpfsMb: 64, pidsLimit: 64 };

const MIB = 1024 * 1024;

/**
 * The container for one job, with the sandbox defaults of DESIGN.md §3: no
 * network, read-only root, a small tmpfs, no capabilities, no privilege
 * escalation, an unprivileged user, and memory (swap = memory), CPU and pids
 * limits. Nothing of the agent reaches it: no env, no mounts, no socket; the
 * hostname and labels carry only the job id and the agent's name.
 */
export function containerOptions(args: {
  image: string;
  jobId: string;
  agentName: string;
  limits: JobLimits;
  sandbox: SandboxSettings;
}): Dockerode.ContainerCreateOptions {
  const { image, jobId, agentName, limits, sandbox } = args;
  const memoryBytes = limits.memoryMb * MIB;
  return {
    Image: image,
    Hostname: "sandbox",
    User: "65534:65534",
    WorkingDir: "/tmp",
    Env: [],
    AttachStdin: true,
    AttachStdout: true,
    AttachStderr: true,
    OpenStdin: true,
    StdinOnce: true,
    Tty: false,
    NetworkDisabled: true,
    Labels: { [JOB_LABEL]: jobId, [AGENT_LABEL]: agentName },
    HostConfig: {
      NetworkMode: "none",
      ReadonlyRootfs: true,
      Tmpfs: { "/tmp": `rw,nosuid,nodev,noexec,size=${sandbox.tmpfsMb}m,mode=1777` },
      CapDrop: ["ALL"],
      SecurityOpt: ["no-new-privileges"],
      Privileged: false,
      IpcMode: "private",
      PidMode: "",
      Memory: memoryBytes,
      MemorySwap: memoryBytes,
      NanoCpus: Math.round(limits.cpus * 1e9),
      PidsLimit: sandbox.pidsLimit,
      // Output is streamed by attach; a log driver would only copy it to disk.
      LogConfig: { Type: "none", Config: {} },
      AutoRemove: false,
      ...(sandbox.runtime ? { Runtime: sandbox.runtime } : {}),
    },
  };
}
