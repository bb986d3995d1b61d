import { describe, expect, it } from "vitest";
import { type OutputCaps, OutputCollector } from "./output.js";

const NONCE = "N0nceN0nceN0nceN0nce";
const CAPS: OutputCaps = { logCapBytes: 1024, maxResultBytes: 1024, maxOutputBytes: 4096 };
const frame = (json: string) => `\n${NONCE}${json}${NONCE}\n`;

function collect(stdout: string[], caps = CAPS) {
  const overflows: string[] = [];
  const collector = new OutputCollector(NONCE, caps, (reason) => overflows.push(reason));
  for (const chunk of stdout) collector.stdout(Buffer.from(chunk));
  return { ...collector.finish(), overflows };
}

describe("OutputCollector", () => {
  it("separates the framed envelope from the program's logs", () => {
    const out = collect([`hello\nworld\n${frame('{"ok":true,"result":1}')}`]);
    expect(out.envelope).toBe('{"ok":true,"result":1}');
    expect(out.logs).toBe("hello\nworld\n");
  });

  it("finds a frame split at every possible chunk boundary", () => {
    const text = `log line\n${frame('{"ok":true,"result":"x"}')}`;
    for (let cut = 1; cut < text.length; cut++) {
      const out = collect([text.slice(0, cut), text.slice(cut)]);
      expect(out.envelope, `cut at ${cut}`).toBe('{"ok":true,"result":"x"}');
      expect(out.logs, `cut at ${cut}`).toBe("log line\n");
    }
  });

  it("treats a forged envelope without the nonce as logs", () => {
    const forged = '\nFAKE{"ok":true,"result":"forged"}FAKE\n';
    const out = collect([forged, frame('{"ok":true,"result":"real"}')]);
    expect(out.envelope).toBe('{"ok":true,"result":"real"}');
    expect(out.logs).toContain("forged");
  });

  it("keeps output printed after the envelope as logs", () => {
    const out = collect([`${frame("{}")}late\n`]);
    expect(out.envelope).toBe("{}");
    expect(out.logs).toBe("late\n");
  });

  it("reports no envelope when the frame never closes", () => {
    const out = collect([`\n${NONCE}{"ok":tr`]);
    expect(out.envelope).toBeNull();
  });

  it("caps kept logs and counts the rest", () => {
    const out = collect(["a".repeat(3000)]);
    expect(out.logs.length).toBe(CAPS.logCapBytes);
    expect(out.logBytes).toBe(3000);
    expect(out.logsTruncated).toBe(true);
    expect(out.overflows).toEqual([]);
  });

  it("trips overflow once when the program prints past the output bound", () => {
    const out = collect(["a".repeat(3000), "b".repeat(3000), "c".repeat(3000)]);
    expect(out.overflow).toBe("logs");
    expect(out.overflows).toEqual(["logs"]);
  });

  it("trips overflow and drops an envelope larger than the result bound", () => {
    const out = collect([frame(`"${"x".repeat(2000)}"`)]);
    expect(out.overflow).toBe("result");
    expect(out.envelope).toBeNull();
  });

  it("interleaves stderr into the logs", () => {
    const collector = new OutputCollector(NONCE, CAPS);
    collector.stdout(Buffer.from("out\n"));
    collector.stderr(Buffer.from("err\n"));
    collector.stdout(Buffer.from(frame("1")));
    const out = collector.finish();
    expect(out.envelope).toBe("1");
    expect(out.logs).toBe("out\nerr\n");
  });

  describe("completion (envelope on stdout + the nonce on stderr)", () => {
    function completion(steps: Array<["stdout" | "stderr", string]>) {
      let completions = 0;
      const collector = new OutputCollector(NONCE, CAPS, undefined, () => completions++);
      const seen: boolean[] = [];
      for (const [stream, text] of steps) {
        collector[stream](Buffer.from(text));
        seen.push(collector.complete);
      }
      return { seen, completions, ...collector.finish() };
    }

    it("completes once both the envelope and the stderr marker are in, in either order", () => {
      const a = completion([
        ["stderr", `warn\n${NONCE}`],
        ["stdout", frame("1")],
      ]);
      expect(a.seen).toEqual([false, true]);
      const b = completion([
        ["stdout", frame("1")],
        ["stderr", `warn\n${NONCE}`],
      ]);
      expect(b.seen).toEqual([false, true]);
      expect(a.completions + b.completions).toBe(2);
      expect(a.logs).toBe("warn\n");
      expect(b.logs).toBe("warn\n");
    });

    it("finds the stderr marker split at every chunk boundary and keeps the logs before it", () => {
      const text = `oops: ${"x".repeat(30)}\n${NONCE}`;
      for (let cut = 1; cut < text.length; cut++) {
        const out = completion([
          ["stdout", frame("2")],
          ["stderr", text.slice(0, cut)],
          ["stderr", text.slice(cut)],
        ]);
        expect(out.completions, `cut at ${cut}`).toBe(1);
        expect(out.logs, `cut at ${cut}`).toBe(`oops: ${"x".repeat(30)}\n`);
      }
    });

    it("does not complete on the envelope alone (stderr may still be in flight)", () => {
      const out = completion([["stdout", frame("3")]]);
      expect(out.completions).toBe(0);
      expect(out.envelope).toBe("3");
    });

    it("keeps a stderr tail that looks like the start of a nonce when the run ends", () => {
      const out = completion([["stderr", `tail ${NONCE.slice(0, 5)}`]]);
      expect(out.logs).toBe(`tail ${NONCE.slice(0, 5)}`);
      expect(out.completions).toBe(0);
    });
  });
});
