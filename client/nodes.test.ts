import { describe, expect, it } from "vitest";
import type { NodeInfo } from "../protocol/index.js";
import { pickNode } from "./commands/nodes.js";
import { UsageError } from "./errors.js";

const node = (id: string, name: string, state: NodeInfo["state"]): NodeInfo => ({
  id,
  name,
  hostname: "h",
  state,
  slots: 2,
  running: 0,
  lastHeartbeatAt: "2026-11-25T00:00:00.000Z",
  registeredAt: "2026-11-25T00:00:00.000Z",
  version: "0.1.0",
  labels: {},
  jobsDone: 0,
  jobsFailed: 0,
});

describe("pickNode", () => {
  const list = [
    node("a_1", "lab-1", "lost"),
    node("a_2", "lab-1", "ready"),
    node("a_3", "lab-2", "ready"),
  ];

  it("takes an id as it is", () => {
    expect(pickNode(list, "a_1", "rm").id).toBe("a_1");
  });

  it("means the live node by a name an earlier, lost registration also has", () => {
    expect(pickNode(list, "lab-1", "drain").id).toBe("a_2");
  });

  it("refuses an unknown name, listing the known ones", () => {
    expect(() => pickNode(list, "lab-9", "drain")).toThrow(
      /no node named .* \(nodes: lab-1, lab-1, lab-2\)/,
    );
  });

  it("asks for the id when several live nodes share the name", () => {
    const twins = [node("a_1", "x", "ready"), node("a_2", "x", "draining")];
    expect(() => pickNode(twins, "x", "rm")).toThrow(UsageError);
    expect(() => pickNode(twins, "x", "rm")).toThrow(/a_1 \(ready\), a_2 \(draining\)/);
  });
});
