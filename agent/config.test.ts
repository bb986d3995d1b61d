import { availableParallelism } from "node:os";
import { describe, expect, it } from "vitest";
import { AgentConfig } from "./config.js";

describe("AgentConfig", () => {
  const join = { server: "http://127.0.0.1:7878", token: "t" };

  it("takes the largest job the protocol allows, within this machine's memory and cores", () => {
    const { maxLimits } = AgentConfig.parse(join);
    expect(maxLimits).toMatchObject({
      timeoutMs: 3_600_000,
      cpus: Math.min(64, availableParallelism()),
      pids: 1024,
      tmpfsMb: 1024,
      logBytes: 1024 * 1024,
      resultBytes: 8 * 1024 * 1024,
    });
    expect(maxLimits.memoryMb).toBeGreaterThanOrEqual(256);
    expect(maxLimits.memoryMb).toBeLessThanOrEqual(65_536);
  });

  it("keeps the maxima it is given over the machine's", () => {
    expect(AgentConfig.parse({ ...join, maxLimits: { pids: 200 } }).maxLimits.pids).toBe(200);
  });
});
