import { spawn } from "node:child_process";
import type Dockerode from "dockerode";

/** Runs a command to its end with `stdin`; resolves with its stdout, rejects on a non-zero exit. */
export function runCommand(command: string, args: string[], stdin = ""): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ["pipe", "pipe", "pipe"] });
    let out = "";
    let err = "";
    child.stdout.on("data", (chunk: Buffer) => {
      out += chunk;
    });
    child.stderr.on("data", (chunk: Buffer) => {
      err += chunk;
    });
    child.once("error", reject);
    child.once("close", (code) => {
      if (code === 0) resolve(out);
      else reject(new Error(`${command} ${args.join(" ")} exited ${code}: ${err.trim()}`));
    });
    child.stdin.end(stdin);
  });
}

/**
 * The `docker run` flags that give a container the same sandbox as the
 * agent's job containers, derived from the agent's own create options so
 * the baseline cannot drift from what labrun runs.
 */
export function dockerRunFlags(options: Dockerode.ContainerCreateOptions): string[] {
  const host = options.HostConfig ?? {};
  const flags = ["run", "--rm", "-i", "--network", host.NetworkMode ?? "none"];
  if (options.User) flags.push("--user", options.User);
  if (options.Hostname) flags.push("--hostname", options.Hostname);
  if (options.WorkingDir) flags.push("--workdir", options.WorkingDir);
  if (host.ReadonlyRootfs) flags.push("--read-only");
  for (const [path, mount] of Object.entries(host.Tmpfs ?? {})) {
    flags.push("--tmpfs", `${path}:${mount}`);
  }
  for (const cap of host.CapDrop ?? []) flags.push("--cap-drop", cap);
  for (const option of host.SecurityOpt ?? []) flags.push("--security-opt", option);
  if (host.Memory) flags.push("--memory", `${host.Memory}b`);
  if (host.MemorySwap) flags.push("--memory-swap", `${host.MemorySwap}b`);
  if (host.NanoCpus) flags.push("--cpus", String(host.NanoCpus / 1e9));
  if (host.PidsLimit) flags.push("--pids-limit", String(host.PidsLimit));
  if (host.LogConfig?.Type) flags.push("--log-driver", host.LogConfig.Type);
  if (host.Runtime) flags.push("--runtime", host.Runtime);
  return flags;
}

/** A runner request for the trivial job, as the agent would write it. */
export function trivialRequest(source: string): { stdin: string; nonce: string } {
  const nonce = `bench${Math.random().toString(36).slice(2).padEnd(16, "0")}`;
  return { stdin: JSON.stringify({ source, filename: "main.js", input: null, nonce }), nonce };
}
