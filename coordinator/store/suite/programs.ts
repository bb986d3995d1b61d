import { describe, expect, it } from "vitest";
import { DEFAULT_LIMITS, type ProgramFile } from "../../../protocol/index.js";
import { agentSpec, T0 } from "./fixtures.js";
import type { SuiteContext } from "./types.js";

const MAIN: ProgramFile = {
  path: "main.js",
  content: "exports.main = (n) => require('./lib/two.js')(n)",
};
const TWO: ProgramFile = { path: "lib/two.js", content: "module.exports = (n) => n * 2" };

/**
 * Programs of several files (DESIGN.md §7): stored as given, leased with
 * their files and entry; a one-file program's spec has no `files`.
 */
export function programSuite({ open }: SuiteContext): void {
  describe("programs of several files", () => {
    it("leases a single job's files with its entry as the file name, and a one-file job without files", async () => {
      const store = await open();
      const many = await store.enqueue({ files: [MAIN, TWO], entry: "main.js", input: 1 }, T0);
      expect(many.filename).toBe("main.js");
      const one = await store.enqueue({ source: "exports.main = () => 1" }, T0 + 1);
      const agent = await store.registerAgent(agentSpec(), "h", T0);
      const leases = await store.lease(agent.id, 2, T0 + 2);
      expect(leases.map((lease) => lease.id)).toEqual([many.id, one.id]);
      // The spec as the lease answer writes it (its files stay the stored JSON until then).
      expect(asWritten(leases[0]?.spec)).toEqual({
        source: "",
        files: [MAIN, TWO],
        filename: "main.js",
        runtime: "node",
        input: 1,
        limits: DEFAULT_LIMITS,
      });
      expect(leases[1]?.spec).not.toHaveProperty("files");
      expect(leases[1]?.spec.source).toBe("exports.main = () => 1");
    });

    it("leases a batch's items with the batch's files, its id and whether it isolates them", async () => {
      const store = await open();
      const batch = await store.enqueueBatch(
        {
          spec: { files: [MAIN, TWO], entry: "main.js", retries: 0, isolate: true },
          inputs: ["1", "2"],
        },
        DEFAULT_LIMITS,
        T0,
      );
      const agent = await store.registerAgent(agentSpec(), "h", T0);
      const leases = await store.lease(agent.id, 2, T0);
      expect(leases.map((lease) => asWritten(lease.spec))).toEqual(
        [1, 2].map((input) => ({
          source: "",
          files: [MAIN, TWO],
          filename: "main.js",
          runtime: "node",
          input,
          limits: DEFAULT_LIMITS,
          batchId: batch.id,
          isolate: true,
        })),
      );
      expect((await store.getBatch(batch.id)).filename).toBe("main.js");
    });
  });
}

/** A value as JSON.stringify writes it (a leased spec's stored files as their value). */
const asWritten = (value: unknown): unknown => JSON.parse(JSON.stringify(value));
