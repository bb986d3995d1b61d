import { describe, expect, it } from "vitest";
import { OutputRouter, READY_MARKER } from "./router.js";

function collect() {
  const seen = { stdout: "", stderr: "" };
  return {
    seen,
    sink: {
      stdout: (chunk: Buffer) => {
        seen.stdout += chunk;
      },
      stderr: (chunk: Buffer) => {
        seen.stderr += chunk;
      },
    },
  };
}

describe("OutputRouter", () => {
  it("finds the ready marker split at every byte, drops it, and keeps what surrounds it", async () => {
    const text = `(node) warning\n${READY_MARKER}after`;
    for (let cut = 1; cut < text.length; cut++) {
      const router = new OutputRouter();
      router.write(2, Buffer.from(text.slice(0, cut)));
      router.write(2, Buffer.from(text.slice(cut)));
      const { seen, sink } = collect();
      router.attach(sink);
      expect(router.runnerReady, `cut at ${cut}`).toBe(true);
      expect(seen.stderr, `cut at ${cut}`).toBe("(node) warning\nafter");
    }
  });

  it("passes a marker that comes after readiness through as output (only the head counts)", async () => {
    const router = new OutputRouter();
    const { seen, sink } = collect();
    router.attach(sink);
    router.write(2, READY_MARKER);
    await router.ready;
    router.write(2, Buffer.from(`program says ${READY_MARKER}`));
    router.write(1, Buffer.from("out"));
    expect(seen).toEqual({ stdout: "out", stderr: `program says ${READY_MARKER}` });
  });

  it("is not ready until the marker arrives, and keeps early output for the job", () => {
    const router = new OutputRouter();
    router.write(1, Buffer.from("early"));
    router.write(2, Buffer.from("LABRUN_RUN"));
    expect(router.runnerReady).toBe(false);
    const { seen, sink } = collect();
    router.attach(sink);
    expect(seen.stdout).toBe("early");
    router.write(2, Buffer.from("NER_READY\nlate"));
    expect(router.runnerReady).toBe(true);
    expect(seen.stderr).toBe("late");
  });

  it("hands a reused container's output to each item's collector in turn", () => {
    const router = new OutputRouter();
    router.write(2, READY_MARKER);
    const first = collect();
    router.attach(first.sink);
    router.write(1, Buffer.from("first item"));
    router.detach(Buffer.from(READY_MARKER));
    expect(router.runnerReady).toBe(true);
    // Nothing between two items goes to either collector's account but the next one's.
    router.write(1, Buffer.from(" between"));
    const second = collect();
    router.attach(second.sink);
    router.write(1, Buffer.from(" second item"));
    expect(first.seen.stdout).toBe("first item");
    expect(second.seen.stdout).toBe(" between second item");
  });
});
