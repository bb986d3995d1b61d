import { describe, expect, it } from "vitest";
import { DEFAULT_LIMITS } from "../../protocol/index.js";
import { containerOptions } from "./options.js";

const options = (over: Partial<Parameters<typeof containerOptions>[0]> = {}) =>
  containerOptions({
    image: "labrun-runner:test",
    jobId: "j_1",
    agentName: "lab-01",
    limits: DEFAULT_LIMITS,
    sandbox: {},
    ...over,
  });

describe("containerOptions", () => {
  it("takes memory, CPU, pids and /tmp size from the job's limits", () => {
    const host = options({
      limits: { ...DEFAULT_LIMITS, memoryMb: 100, cpus: 0.5, pids: 200, tmpfsMb: 7 },
    }).HostConfig;
    expect(host?.Memory).toBe(100 * 2 ** 20);
    expect(host?.MemorySwap).toBe(100 * 2 ** 20);
    expect(host?.NanoCpus).toBe(5e8);
    expect(host?.PidsLimit).toBe(200);
    expect(host?.Tmpfs?.["/tmp"]).toContain("size=7m");
  });

  it("passes the agent's seccomp profile as text and no other security option", () => {
    const profile = JSON.stringify({ defaultAction: "SCMP_ACT_ALLOW", syscalls: [] });
    expect(options().HostConfig?.SecurityOpt).toEqual(["no-new-privileges"]);
    expect(options({ sandbox: { seccompProfile: profile } }).HostConfig?.SecurityOpt).toEqual([
      "no-new-privileges",
      `seccomp=${profile}`,
    ]);
  });

  it("gives the container nothing of the agent, and only cgroup v1/v2 portable limits", () => {
    const created = options({ sandbox: { runtime: "runsc" } });
    expect(created.Env).toEqual([]);
    expect(created.HostConfig).toMatchObject({
      NetworkMode: "none",
      ReadonlyRootfs: true,
      Privileged: false,
      CapDrop: ["ALL"],
      IpcMode: "private",
      Runtime: "runsc",
    });
    expect(created.HostConfig?.Binds).toBeUndefined();
    expect(created.HostConfig?.Mounts).toBeUndefined();
    for (const v1Only of ["KernelMemory", "KernelMemoryTCP", "MemorySwappiness", "BlkioWeight"]) {
      expect(created.HostConfig, v1Only).not.toHaveProperty(v1Only);
    }
    expect(Object.values(created.Labels ?? {})).toEqual(["j_1", "lab-01"]);
  });
});
