import pino from "pino";
import { describe, expect, it, vi } from "vitest";
import {
  DEFAULT_LIMITS,
  type LeasedJob,
  type Outcome,
  type ResultGroupResponse,
} from "../protocol/index.js";
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

/** What a coordinator without the group route answers. */
const noGroupRoute = async (): Promise<ResultGroupResponse["results"]> => {
  throw new CoordinatorError(404, "NOT_FOUND", "no such route");
};

/**
 * A fake coordinator: hands out the given jobs once, then long-polls empty.
 * Without `postResultGroup` it is one from before result groups (404).
 */
function fakeApi(
  jobs: LeasedJob[],
  postResult: (leaseId: string, outcome: Outcome) => Promise<boolean>,
  postResultGroup: (
    results: readonly string[],
  ) => Promise<ResultGroupResponse["results"]> = noGroupRoute,
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
    postResultGroup: vi.fn(postResultGroup),
  } as unknown as CoordinatorApi & {
    postResult: ReturnType<typeof vi.fn>;
    postResultGroup: ReturnType<typeof vi.fn>;
    heartbeat: ReturnType<typeof vi.fn>;
  };
}

/** The lease ids of a group request's entries. */
const leaseIds = (results: readonly string[]) =>
  results.map((json) => (JSON.parse(json) as { leaseId: string }).leaseId);

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
      expect.any(String),
    );
    // The body goes as it was serialised when the result was sized.
    const [, outcome, json] = api.postResult.mock.lastCall as [string, Outcome, string];
    expect(JSON.parse(json)).toEqual({ leaseId: "l1", outcome });
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
      expect.any(String),
    );
    // The body is the replacement's, not the refused outcome's.
    const [, outcome, json] = api.postResult.mock.lastCall as [string, Outcome, string];
    expect(JSON.parse(json)).toEqual({ leaseId: "l1", outcome });
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

  it("reports results that are ready together in one group request", async () => {
    const api = fakeApi(
      [job(1), job(2), job(3)],
      async () => true,
      async (results) => leaseIds(results).map((leaseId) => ({ leaseId, accepted: true })),
    );
    const loop = new AgentLoop(api, sandbox, { ...settings, slots: 3 }, logger);
    loop.start();
    await vi.waitFor(() => expect(api.postResultGroup).toHaveBeenCalledTimes(1));
    await loop.stop();
    expect(leaseIds(api.postResultGroup.mock.calls[0]?.[0]).sort()).toEqual(["l1", "l2", "l3"]);
    expect(api.postResult).not.toHaveBeenCalled();
  });

  it("drops a stale result of a group without retrying it, and the others are taken", async () => {
    const api = fakeApi(
      [job(1), job(2)],
      async () => true,
      async (results) =>
        leaseIds(results).map((leaseId) =>
          leaseId === "l1"
            ? { leaseId, accepted: false, error: { code: "STALE_LEASE", message: "stale" } }
            : { leaseId, accepted: true },
        ),
    );
    const loop = new AgentLoop(api, sandbox, settings, logger);
    loop.start();
    await vi.waitFor(() => expect(api.postResultGroup).toHaveBeenCalledTimes(1));
    await loop.stop();
    expect(api.postResultGroup).toHaveBeenCalledTimes(1);
    expect(api.postResult).not.toHaveBeenCalled();
  });

  it("retries a group that did not get through, keeping its leases in heartbeats, then delivers it", async () => {
    let groupCalls = 0;
    const api = fakeApi(
      [job(1), job(2)],
      async () => true,
      async (results) => {
        groupCalls++;
        if (groupCalls < 3) throw new TypeError("connect ECONNREFUSED");
        return leaseIds(results).map((leaseId) => ({ leaseId, accepted: true }));
      },
    );
    const loop = new AgentLoop(api, sandbox, { ...settings, heartbeatMs: 20 }, logger);
    loop.start();
    // While undelivered, both leases are renewed by the heartbeats.
    await vi.waitFor(() =>
      expect(api.heartbeat.mock.calls.some((call) => (call[0] as string[]).length === 2)).toBe(
        true,
      ),
    );
    await vi.waitFor(() => expect(groupCalls).toBe(3), { timeout: 3000 });
    await loop.stop();
    // Both retried together each time (they wake together), and delivered once.
    for (const call of api.postResultGroup.mock.calls) {
      expect(leaseIds(call[0]).sort()).toEqual(["l1", "l2"]);
    }
    expect(api.postResult).not.toHaveBeenCalled();
  });
});
