import { describe, expect, it } from "vitest";
import {
  MAX_PAYLOADS,
  PAYLOAD_LIMIT_BYTES,
  type PendingWakes,
  parseWakeMessage,
  wakePayloads,
} from "./wakeMessage.js";

const pending = (work: number, finished: string[] = [], agents: string[] = []): PendingWakes => ({
  work,
  finished: new Set(finished),
  agents: new Set(agents),
});
const ids = (n: number, prefix = "j_") =>
  Array.from({ length: n }, (_, i) => `${prefix}${String(i).padStart(20, "0")}`);

describe("wakePayloads", () => {
  it("puts one flush's wakes in one payload, which reads back as they were", () => {
    const payloads = wakePayloads("c1", pending(3, ["j_1", "b_2"], ["a_1"]));
    expect(payloads).toHaveLength(1);
    expect(parseWakeMessage(payloads[0] ?? "")).toEqual({
      from: "c1",
      work: 3,
      finished: ["j_1", "b_2"],
      agents: ["a_1"],
    });
  });

  it("says 'every lease waiter' as -1 (JSON has no Infinity)", () => {
    const [payload] = wakePayloads("c1", pending(Number.POSITIVE_INFINITY));
    expect(parseWakeMessage(payload ?? "")).toEqual({ from: "c1", work: -1 });
  });

  it("splits past PostgreSQL's payload limit, every id in exactly one payload under it", () => {
    const finished = ids(500);
    const agents = ids(50, "a_");
    const payloads = wakePayloads("c1", pending(1, finished, agents));
    expect(payloads.length).toBeGreaterThan(1);
    expect(payloads.length).toBeLessThanOrEqual(MAX_PAYLOADS);
    for (const payload of payloads) {
      expect(Buffer.byteLength(payload)).toBeLessThanOrEqual(PAYLOAD_LIMIT_BYTES);
    }
    const messages = payloads.map((p) => parseWakeMessage(p));
    expect(messages.flatMap((m) => m?.finished ?? [])).toEqual(finished);
    expect(messages.flatMap((m) => m?.agents ?? [])).toEqual(agents);
    expect(messages.filter((m) => m?.work !== undefined)).toHaveLength(1);
  });

  it("a flood of ids becomes one 'everything'", () => {
    const payloads = wakePayloads("c1", pending(5, ids(5_000)));
    expect(payloads.map((p) => parseWakeMessage(p))).toEqual([{ from: "c1", everything: true }]);
  });

  it("refuses what is not a wake message", () => {
    expect(parseWakeMessage("not json")).toBeUndefined();
    expect(parseWakeMessage('{"work":1}')).toBeUndefined();
    expect(parseWakeMessage('{"from":"c1","work":"many"}')).toBeUndefined();
  });
});
