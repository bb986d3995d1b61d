import pino from "pino";
import { describe, expect, it, vi } from "vitest";
import { DEFAULT_LIMITS, type LeasedJob, type Outcome } from "../protocol/index.js";
import { type CoordinatorApi, CoordinatorError } from "./coordinator-api.js";
import type { JobSandbox } from "./executor.js";
import { AgentLoop } from "./loop.js";
import type { ContainerExit } from "./sandbox/run.js";

const job = (n: number): LeasedJob => ({
  id: `j${n}`,
  leaseId: `l${n}`,
  attempt: 1,
  spec: {
    source: "exports.main=()=>1",
    filename: "main.js",
    runtime: "node",
    input: null,
    limits: DEFAULT_LIMITS,
  },
});

/** A sandbox that answers every job with a fixed envelope. */
const sandbox: JobSandbox = {
  async run(): Promise<ContainerExit> {
    return {
      exitCode: 0,
      oomKilled: false,
      killedFor: null,
      durationMs: 1,
      output: {
        envelope: '{"ok":true,"result":1}',
        logs: "",
        logBytes: 0,
        logsTruncated: false,
        overflow: null,
      },
    };
  },
};

/** A fake coordinator: hands out the given jobs once, then long-polls empty. */
function fakeApi(
  jobs: LeasedJob[],
  postResult: (leaseId: string, outcome: Outcome) => Promise<boolean>,
) {
  let handed = false;
  return {
    lease: vi.fn(async (_free: number, _waitMs: number, signal?: AbortSignal) => {
      if (!handed) {
        handed = true;
        return jobs;
      }
      await new Promise((resolve) => signal?.addEventListener("abort", resolve, { once: true }));
      return [];
    }),
    heartbeat: vi.fn(async () => []),
    postResult: vi.fn(postResult),
  } as unknown as CoordinatorApi & { postResult: ReturnType<typeof vi.fn> };
}

const settings = { slots: 2, heartbeatMs: 10_000, leaseWaitMs: 1000, reregister: async () => {} };
const logger = pino({ level: "silent" });

describe("AgentLoop", () => {
  it("retries a result with backoff while the coordinator is unreachable, then delivers it", async () => {
    let calls = 0;
    const api = fakeApi([job(1)], async () => {
      calls++;
      if (calls < 3) throw new TypeError("fetch failed");
      return true;
    });
    const loop = new AgentLoop(api, sandbox, settings, logger);
    loop.start();
    await vi.waitFor(() => expect(calls).toBe(3), { timeout: 3000 });
    await loop.stop();
    expect(api.postResult).toHaveBeenLastCalledWith(
      "l1",
      expect.objectContaining({ ok: true, result: 1 }),
    );
  });

  it("drops a result the coordinator refuses as stale (409) without retrying", async () => {
    const api = fakeApi([job(1)], async () => {
      throw new CoordinatorError(409, "STALE_LEASE", "stale");
    });
    const loop = new AgentLoop(api, sandbox, settings, logger);
    loop.start();
    await vi.waitFor(() => expect(api.postResult).toHaveBeenCalledTimes(1));
    await loop.stop();
    expect(api.postResult).toHaveBeenCalledTimes(1);
  });

  it("runs leased jobs and reports each once", async () => {
    const api = fakeApi([job(1), job(2)], async () => true);
    const loop = new AgentLoop(api, sandbox, settings, logger);
    loop.start();
    await vi.waitFor(() => expect(api.postResult).toHaveBeenCalledTimes(2));
    await loop.stop();
    expect(api.postResult.mock.calls.map((call) => call[0]).sort()).toEqual(["l1", "l2"]);
  });

  it("reports why when the coordinator refuses a result (413), instead of losing the job", async () => {
    const api = fakeApi([job(1)], async (_leaseId, outcome) => {
      if (outcome.ok) throw new CoordinatorError(413, "PAYLOAD_TOO_LARGE", "too large");
      return true;
    });
    const loop = new AgentLoop(api, sandbox, settings, logger);
    loop.start();
    await vi.waitFor(() => expect(api.postResult).toHaveBeenCalledTimes(2));
    await loop.stop();
    expect(api.postResult).toHaveBeenLastCalledWith(
      "l1",
      expect.objectContaining({
        ok: false,
        error: expect.objectContaining({ code: "SANDBOX_ERROR" }),
      }),
    );
  });

  it("on stop, lets jobs finish within the grace period, then stops the rest unreported", async () => {
    // Job 1 finishes after 50 ms; job 2 runs until it is aborted.
    const slow: JobSandbox = {
      async run(request) {
        if (request.jobId === "j1") {
          await new Promise((resolve) => setTimeout(resolve, 50));
          return sandbox.run(request);
        }
        await new Promise((resolve) => request.signal.addEventListener("abort", resolve));
        return { ...(await sandbox.run(request)), killedFor: "cancel" };
      },
    };
    const api = fakeApi([job(1), job(2)], async () => true);
    const loop = new AgentLoop(api, slow, settings, logger);
    loop.start();
    await vi.waitFor(() => expect(loop.busy).toBe(2));
    const started = Date.now();
    await loop.stop(300);
    expect(Date.now() - started).toBeGreaterThanOrEqual(250);
    expect(Date.now() - started).toBeLessThan(2_000);
    expect(api.postResult.mock.calls.map((call) => call[0])).toEqual(["l1"]);
    expect(loop.busy).toBe(0);
  });
});
