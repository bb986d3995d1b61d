import { describe, expect, it } from "vitest";
import { DemandSplit } from "./pool-split.js";

describe("DemandSplit", () => {
  it("splits evenly before any job, node first", () => {
    const split = new DemandSplit(["node", "python"]);
    expect(split.shares(4)).toEqual({ node: 2, python: 2 });
    expect(split.shares(3)).toEqual({ node: 2, python: 1 });
  });

  it("gives everything to the only runtime in demand", () => {
    const split = new DemandSplit(["node", "python"]);
    for (let i = 0; i < 5; i++) split.record("python");
    expect(split.shares(4)).toEqual({ node: 0, python: 4 });
  });

  it("follows the proportions of the recent jobs", () => {
    const split = new DemandSplit(["node", "python"]);
    for (let i = 0; i < 30; i++) split.record(i % 4 === 0 ? "python" : "node");
    expect(split.shares(4)).toEqual({ node: 3, python: 1 });
  });

  it("keeps one container for a runtime in demand, however rare", () => {
    const split = new DemandSplit(["node", "python"]);
    for (let i = 0; i < 31; i++) split.record("node");
    split.record("python");
    expect(split.shares(2)).toEqual({ node: 1, python: 1 });
    expect(split.shares(1)).toEqual({ node: 1, python: 0 });
  });

  it("forgets jobs older than its window", () => {
    const split = new DemandSplit(["node", "python"]);
    split.record("python");
    for (let i = 0; i < 32; i++) split.record("node");
    expect(split.shares(4)).toEqual({ node: 4, python: 0 });
  });

  it("gives an agent with one runtime all of it", () => {
    expect(new DemandSplit(["node"]).shares(3)).toEqual({ node: 3 });
  });
});
