import type Dockerode from "dockerode";
import type { JobLimits } from "../../protocol/index.js";

/** Labels that mark a container as labrun's, so a restarted agent can reap its orphans. */
export const JOB_LABEL = "labrun.job";
export const AGENT_LABEL = "labrun.agent";

/** Per-agent sandbox settings that are not per-job limits (the hardening knobs). */
export interface SandboxSettings {
  /** OCI runtime, e.g. "runsc" for gVisor; undefined = the engine's default. */
  runtime?: string | undefined;
  /**
   * A seccomp profile's JSON text (Docker's format), in place of the engine's
   * default profile; undefined = the engine's default.
   */
  seccompProfile?: string | undefined;
}

export const DEFAULT_SANDBOX: SandboxSettings = {};

const MIB = 1024 * 1024;

/**
 * The container for one job, with the sandbox defaults of DESIGN.md §3: no
 * network, read-only root, a small tmpfs, no capabilities, no privilege
 * escalation, an unprivileged user, and memory (swap = memory), CPU, pids and
 * /tmp limits from the job's own. Nothing of the agent reaches it: no env, no
 * mounts, no socket; the hostname and labels carry only the job id and the
 * agent's name.
 *
 * Only settings that mean the same on cgroup v1 and v2 hosts are used
 * (memory, memory+swap, CPU quota, pids); v1-only ones such as
 * KernelMemory or MemorySwappiness are never set.
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
      Tmpfs: { "/tmp": `rw,nosuid,nodev,noexec,size=${limits.tmpfsMb}m,mode=1777` },
      CapDrop: ["ALL"],
      SecurityOpt: [
        "no-new-privileges",
        // The API takes the profile's text; the docker CLI reads the file the same way.
        ...(sandbox.seccompProfile ? [`seccomp=${sandbox.seccompProfile}`] : []),
      ],
      Privileged: false,
      IpcMode: "private",
      PidMode: "",
      Memory: memoryBytes,
      MemorySwap: memoryBytes,
      NanoCpus: Math.round(limits.cpus * 1e9),
      PidsLimit: limits.pids,
      // Output is streamed by attach; a log driver would only copy it to disk.
      LogConfig: { Type: "none", Config: {} },
      AutoRemove: false,
      ...(sandbox.runtime ? { Runtime: sandbox.runtime } : {}),
    },
  };
}
