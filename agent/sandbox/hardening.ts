import { readFileSync } from "node:fs";
import type Dockerode from "dockerode";

/** A hardening setting the agent cannot use: it stops before registering, with what to fix. */
export class AgentSettingsError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "AgentSettingsError";
  }
}

/**
 * Reads a seccomp profile in Docker's JSON format and returns its text, for
 * the containers' `seccomp=<profile>` security option (the engine takes the
 * profile itself, not a path: the docker CLI reads the file the same way).
 * It must be a profile, not "unconfined": turning seccomp off is not a
 * hardening knob.
 *
 * @example
 * const profile = loadSeccompProfile("/etc/labrun/seccomp.json");
 */
export function loadSeccompProfile(path: string): string {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    throw new AgentSettingsError(
      `--seccomp-profile: cannot read ${path} (${(error as NodeJS.ErrnoException).code ?? error})`,
    );
  }
  let profile: unknown;
  try {
    profile = JSON.parse(text);
  } catch (error) {
    throw new AgentSettingsError(
      `--seccomp-profile: ${path} is not JSON (${(error as Error).message})`,
    );
  }
  const action = (profile as { defaultAction?: unknown } | null)?.defaultAction;
  if (typeof profile !== "object" || profile === null || typeof action !== "string") {
    throw new AgentSettingsError(
      `--seccomp-profile: ${path} is not a seccomp profile (Docker's format needs a "defaultAction", e.g. "SCMP_ACT_ERRNO")`,
    );
  }
  // Compact: the profile travels in every container create request.
  return JSON.stringify(profile);
}

/**
 * Checks that the engine knows the OCI runtime (`--runtime runsc` needs
 * gVisor installed and registered in daemon.json); a typo would otherwise
 * fail every job as SANDBOX_ERROR.
 */
export async function checkRuntime(docker: Dockerode, runtime: string): Promise<void> {
  const info = (await docker.info()) as { Runtimes?: Record<string, unknown> };
  const known = Object.keys(info.Runtimes ?? {});
  if (!known.includes(runtime)) {
    throw new AgentSettingsError(
      `--runtime: the Docker engine has no runtime "${runtime}" (it has: ${known.join(", ") || "none"}); install it and list it under "runtimes" in /etc/docker/daemon.json`,
    );
  }
}
