import { describe, expect, it, vi } from "vitest";
import { MAX_RESULT_GROUP, type Outcome } from "../protocol/index.js";
import { CoordinatorError } from "./coordinator-api.js";
import { GROUP_ENTRY_MAX_BYTES, ResultGroups, type ResultRoutes } from "./result-groups.js";

const outcome: Outcome = { ok: true, result: 1, logs: "", stats: { durationMs: 1 } };

/** Routes that accept everything, recording what each request carried. */
function acceptingRoutes(delayMs = 0) {
  const groups: string[][] = [];
  const singles: string[] = [];
  const routes = {
    postResult: vi.fn(async (leaseId: string) => {
      singles.push(leaseId);
      if (delayMs) await new Promise((resolve) => setTimeout(resolve, delayMs));
      return true;
    }),
    postResultGroup: vi.fn(async (results: readonly string[]) => {
      const leaseIds = results.map((json) => (JSON.parse(json) as { leaseId: string }).leaseId);
      groups.push(leaseIds);
      if (delayMs) await new Promise((resolve) => setTimeout(resolve, delayMs));
      return leaseIds.map((leaseId) => ({ leaseId, accepted: true }));
    }),
  } satisfies ResultRoutes;
  return { routes, groups, singles };
}

describe("ResultGroups", () => {
  it("sends a lone result at once through the single route", async () => {
    const { routes, groups, singles } = acceptingRoutes();
    const results = new ResultGroups(routes);
    await expect(results.post("l1", outcome)).resolves.toBe(true);
    expect(singles).toEqual(["l1"]);
    expect(groups).toEqual([]);
  });

  it("sends results ready together in one group request", async () => {
    const { routes, groups, singles } = acceptingRoutes();
    const results = new ResultGroups(routes);
    const answers = await Promise.all(["l1", "l2", "l3"].map((id) => results.post(id, outcome)));
    expect(answers).toEqual([true, true, true]);
    expect(groups).toEqual([["l1", "l2", "l3"]]);
    expect(singles).toEqual([]);
    expect(results.groupsSent).toBe(1);
  });

  it("groups the results that become ready while a request is on its way", async () => {
    const { routes, groups, singles } = acceptingRoutes(30);
    const results = new ResultGroups(routes);
    const first = results.post("l1", outcome);
    await new Promise((resolve) => setTimeout(resolve, 5)); // l1 is on its way
    const later = ["l2", "l3", "l4"].map((id) => results.post(id, outcome));
    await Promise.all([first, ...later]);
    expect(singles).toEqual(["l1"]);
    expect(groups).toEqual([["l2", "l3", "l4"]]);
  });

  it(`never puts more than ${MAX_RESULT_GROUP} results in one group`, async () => {
    const { routes, groups } = acceptingRoutes();
    const results = new ResultGroups(routes);
    const ids = Array.from({ length: MAX_RESULT_GROUP + 10 }, (_, i) => `l${i}`);
    await Promise.all(ids.map((id) => results.post(id, outcome)));
    expect(groups.map((group) => group.length)).toEqual([MAX_RESULT_GROUP, 10]);
    expect(groups.flat()).toEqual(ids);
  });

  it("sends a large result alone through the single route, beside a group", async () => {
    const { routes, groups, singles } = acceptingRoutes();
    const results = new ResultGroups(routes);
    const large: Outcome = { ...outcome, result: "x".repeat(GROUP_ENTRY_MAX_BYTES) };
    await Promise.all([
      results.post("l1", outcome),
      results.post("big", large),
      results.post("l2", outcome),
    ]);
    expect(singles).toEqual(["big"]);
    expect(groups).toEqual([["l1", "l2"]]);
  });

  it("rejects a stale result of a group with 409, as a single post would, and takes the rest", async () => {
    const routes: ResultRoutes = {
      postResult: vi.fn(async () => true),
      postResultGroup: vi.fn(async () => [
        { leaseId: "l1", accepted: true },
        { leaseId: "l2", accepted: false, error: { code: "STALE_LEASE", message: "stale" } },
      ]),
    };
    const results = new ResultGroups(routes);
    const [one, two] = await Promise.allSettled([
      results.post("l1", outcome),
      results.post("l2", outcome),
    ]);
    expect(one).toEqual({ status: "fulfilled", value: true });
    expect(two.status).toBe("rejected");
    const error = (two as PromiseRejectedResult).reason as CoordinatorError;
    expect(error).toBeInstanceOf(CoordinatorError);
    expect([error.status, error.code]).toEqual([409, "STALE_LEASE"]);
    expect(routes.postResult).not.toHaveBeenCalled();
  });

  it("asks the single route about a result the group's answer left out or refused otherwise", async () => {
    const routes: ResultRoutes = {
      postResult: vi.fn(async () => true),
      postResultGroup: vi.fn(async () => [
        { leaseId: "l1", accepted: false, error: { code: "SOMETHING_NEW", message: "?" } },
      ]),
    };
    const results = new ResultGroups(routes);
    await Promise.all([results.post("l1", outcome), results.post("l2", outcome)]);
    expect(
      vi
        .mocked(routes.postResult)
        .mock.calls.map((call) => call[0])
        .sort(),
    ).toEqual(["l1", "l2"]);
  });

  it("rejects every result of a group that did not get through with its error", async () => {
    const failure = new TypeError("connect ECONNREFUSED");
    const routes: ResultRoutes = {
      postResult: vi.fn(async () => true),
      postResultGroup: vi.fn(async () => {
        throw failure;
      }),
    };
    const results = new ResultGroups(routes);
    const settled = await Promise.allSettled([
      results.post("l1", outcome),
      results.post("l2", outcome),
    ]);
    expect(settled).toEqual([
      { status: "rejected", reason: failure },
      { status: "rejected", reason: failure },
    ]);
  });

  it("falls back to single results for good when the coordinator has no group route (404)", async () => {
    const onNoGroupRoute = vi.fn();
    const routes: ResultRoutes = {
      postResult: vi.fn(async () => true),
      postResultGroup: vi.fn(async () => {
        throw new CoordinatorError(404, "NOT_FOUND", "no such route");
      }),
    };
    const results = new ResultGroups(routes, onNoGroupRoute);
    await Promise.all([results.post("l1", outcome), results.post("l2", outcome)]);
    await Promise.all([results.post("l3", outcome), results.post("l4", outcome)]);
    expect(routes.postResultGroup).toHaveBeenCalledTimes(1);
    expect(routes.postResult).toHaveBeenCalledTimes(4);
    expect(onNoGroupRoute).toHaveBeenCalledTimes(1);
  });

  it("sends each result of a group refused as a whole (413) alone, for its own answer", async () => {
    const routes: ResultRoutes = {
      postResult: vi.fn(async (leaseId: string) => {
        if (leaseId === "l2") throw new CoordinatorError(413, "PAYLOAD_TOO_LARGE", "too large");
        return true;
      }),
      postResultGroup: vi.fn(async () => {
        throw new CoordinatorError(413, "PAYLOAD_TOO_LARGE", "too large");
      }),
    };
    const results = new ResultGroups(routes);
    const [one, two] = await Promise.allSettled([
      results.post("l1", outcome),
      results.post("l2", outcome),
    ]);
    expect(one.status).toBe("fulfilled");
    expect(((two as PromiseRejectedResult).reason as CoordinatorError).status).toBe(413);
    // The next group is tried again: a 413 says nothing about the route.
    await Promise.all([results.post("l3", outcome), results.post("l4", outcome)]);
    expect(routes.postResultGroup).toHaveBeenCalledTimes(2);
  });
});
