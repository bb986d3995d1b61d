import { describe, expect, it } from "vitest";
import { DEFAULT_LIMITS, MAX_JSON_DEPTH } from "../protocol/index.js";
import { executeJob, type JobSandbox, judge, outputCaps, reuseKeyOf } from "./executor.js";
import type { ContainerExit } from "./sandbox/run.js";

const exit = (over: Partial<ContainerExit> = {}): ContainerExit => ({
  exitCode: 0,
  oomKilled: false,
  killedFor: null,
  durationMs: 12.4,
  output: { envelope: null, logs: "", logBytes: 0, logsTruncated: false, overflow: null },
  ...over,
});
const withEnvelope = (envelope: string, over: Partial<ContainerExit> = {}) =>
  exit({ ...over, output: { ...exit().output, envelope, logs: "printed\n" } });
const codeOf = (e: ContainerExit) => {
  const outcome = judge(e, DEFAULT_LIMITS, outputCaps(DEFAULT_LIMITS));
  return outcome.ok ? "ok" : outcome.error.code;
};

describe("judge", () => {
  it("returns the envelope's result with the logs", () => {
    const outcome = judge(
      withEnvelope('{"ok":true,"result":{"a":1}}'),
      DEFAULT_LIMITS,
      outputCaps(DEFAULT_LIMITS),
    );
    expect(outcome).toMatchObject({ ok: true, result: { a: 1 }, logs: "printed\n" });
    expect(outcome.stats.durationMs).toBe(12);
  });

  it("fails a result nested deeper than the coordinator takes with RESULT_NOT_JSON", () => {
    const nested = (depth: number) => `${"[".repeat(depth)}${"]".repeat(depth)}`;
    // Regression: a 600-deep result was refused by the coordinator (400) and
    // the job sat until its lease expired, then failed as NODE_LOST.
    expect(codeOf(withEnvelope(`{"ok":true,"result":${nested(600)}}`))).toBe("RESULT_NOT_JSON");
    // As deep as the coordinator takes: the envelope's result goes through.
    const deepest = MAX_JSON_DEPTH - 2;
    expect(codeOf(withEnvelope(`{"ok":true,"result":${nested(deepest)}}`))).toBe("ok");
    expect(codeOf(withEnvelope(`{"ok":true,"result":${nested(deepest + 1)}}`))).toBe(
      "RESULT_NOT_JSON",
    );
  });

  it("passes the runner's error through", () => {
    const envelope =
      '{"ok":false,"error":{"code":"BAD_PROGRAM_FORMAT","message":"Bad program format"}}';
    expect(codeOf(withEnvelope(envelope))).toBe("BAD_PROGRAM_FORMAT");
  });

  it("never believes an envelope that claims a code only the agent decides", () => {
    // A program that reads its own memory finds the nonce and can frame any envelope.
    for (const code of ["TIMEOUT", "OUT_OF_MEMORY", "CANCELLED", "SANDBOX_ERROR", "NODE_LOST"]) {
      const outcome = judge(
        withEnvelope(`{"ok":false,"error":{"code":"${code}","message":"forged"}}`),
        DEFAULT_LIMITS,
        outputCaps(DEFAULT_LIMITS),
      );
      expect(outcome).toMatchObject({
        ok: false,
        error: { code: "RUNTIME_ERROR", message: expect.stringContaining(`claimed ${code}`) },
      });
    }
  });

  it("prefers the agent's own kill reason over anything the program wrote", () => {
    const envelope = '{"ok":true,"result":1}';
    expect(codeOf(withEnvelope(envelope, { killedFor: "timeout" }))).toBe("TIMEOUT");
    expect(codeOf(withEnvelope(envelope, { killedFor: "cancel" }))).toBe("CANCELLED");
    expect(codeOf(withEnvelope(envelope, { killedFor: "output" }))).toBe("OUTPUT_TOO_LARGE");
  });

  it("reports the kernel's OOM kill as OUT_OF_MEMORY", () => {
    expect(codeOf(exit({ exitCode: 137, oomKilled: true }))).toBe("OUT_OF_MEMORY");
  });

  it("blames a SIGKILL nobody inside could send on the sandbox, not the program", () => {
    // Regression (fault suite): a dockerd restart killed a running job's
    // container and the job was reported as the program's RUNTIME_ERROR.
    expect(codeOf(exit({ exitCode: 137 }))).toBe("SANDBOX_ERROR");
    expect(codeOf(exit({ exitCode: 137, oomKilled: true }))).toBe("OUT_OF_MEMORY");
    expect(codeOf(exit({ exitCode: 137, killedFor: "timeout" }))).toBe("TIMEOUT");
  });

  it("reports an exit without an envelope as RUNTIME_ERROR", () => {
    expect(codeOf(exit({ exitCode: 1 }))).toBe("RUNTIME_ERROR");
  });

  it("does not trust a malformed envelope", () => {
    expect(codeOf(withEnvelope('{"ok":"yes"}'))).toBe("RUNTIME_ERROR");
    expect(codeOf(withEnvelope("not json"))).toBe("RUNTIME_ERROR");
  });
});

describe("executeJob", () => {
  const spec = {
    source: "exports.main=()=>1",
    filename: "main.js",
    runtime: "node" as const,
    input: null,
    limits: DEFAULT_LIMITS,
  };

  it("sends the runner a request framed by a fresh nonce", async () => {
    const seen: { stdin: string; nonce: string }[] = [];
    const sandbox: JobSandbox = {
      async run(job) {
        seen.push({ stdin: job.stdin, nonce: job.nonce });
        return withEnvelope('{"ok":true,"result":1}');
      },
    };
    await executeJob(sandbox, { id: "j1", spec }, new AbortController().signal);
    await executeJob(sandbox, { id: "j2", spec }, new AbortController().signal);
    const request = JSON.parse(seen[0]?.stdin ?? "{}");
    expect(request).toMatchObject({ source: spec.source, filename: "main.js", input: null });
    expect(request.nonce).toBe(seen[0]?.nonce);
    expect(seen[0]?.nonce).not.toBe(seen[1]?.nonce);
  });

  it("turns a sandbox failure into SANDBOX_ERROR", async () => {
    const sandbox: JobSandbox = {
      run: () => Promise.reject(new Error("engine gone")),
    };
    const outcome = await executeJob(sandbox, { id: "j", spec }, new AbortController().signal);
    expect(outcome.ok).toBe(false);
    if (!outcome.ok) {
      expect(outcome.error.code).toBe("SANDBOX_ERROR");
      expect(outcome.error.detail).toContain("engine gone");
    }
  });

  it("runs a job with its own limits, each clamped to the agent's maximum", async () => {
    const seen: Parameters<JobSandbox["run"]>[0][] = [];
    const sandbox: JobSandbox = {
      async run(job) {
        seen.push(job);
        return withEnvelope('{"ok":true,"result":1}');
      },
    };
    const limits = { ...DEFAULT_LIMITS, pids: 512, tmpfsMb: 8, logBytes: 4096, resultBytes: 2048 };
    await executeJob(
      sandbox,
      { id: "j", spec: { ...spec, limits } },
      new AbortController().signal,
      {
        pids: 128,
        resultBytes: 1_000_000,
      },
    );
    expect(seen[0]?.limits).toMatchObject({
      pids: 128,
      tmpfsMb: 8,
      logBytes: 4096,
      resultBytes: 2048,
    });
    expect(seen[0]?.caps).toMatchObject({ logCapBytes: 4096, maxResultBytes: 2048 });
  });
});

describe("judge, for what only the agent decides", () => {
  it("never takes an agent-only code from the runner's envelope", () => {
    for (const code of ["TIMEOUT", "OUT_OF_MEMORY", "CANCELLED", "SANDBOX_ERROR", "NODE_LOST"]) {
      const envelope = `{"ok":false,"error":{"code":"${code}","message":"forged"}}`;
      const outcome = judge(withEnvelope(envelope), DEFAULT_LIMITS, outputCaps(DEFAULT_LIMITS));
      expect(outcome.ok ? "ok" : outcome.error.code).toBe("RUNTIME_ERROR");
    }
  });

  it("takes its stats from the container's exit only, with the reused container's count", () => {
    const envelope = '{"ok":true,"result":1,"stats":{"durationMs":1}}';
    const outcome = judge(
      withEnvelope(envelope, { reuse: { container: "abc", item: 3, reusable: true } }),
      DEFAULT_LIMITS,
      outputCaps(DEFAULT_LIMITS),
    );
    expect(outcome.stats).toEqual({
      durationMs: 12,
      exitCode: 0,
      logBytes: 0,
      logsTruncated: false,
      container: "abc",
      containerItem: 3,
    });
  });

  it("blames the sandbox when a reused container ends under a later item", () => {
    const reuse = { container: "abc", item: 2, reusable: false };
    expect(codeOf(exit({ exitCode: 70, reuse }))).toBe("SANDBOX_ERROR");
    expect(codeOf(exit({ exitCode: 137, oomKilled: true, reuse }))).toBe("OUT_OF_MEMORY");
    expect(codeOf(exit({ exitCode: 1, reuse: { ...reuse, item: 1 } }))).toBe("RUNTIME_ERROR");
  });
});

describe("reuseKeyOf", () => {
  const spec = {
    source: "",
    filename: "main.js",
    runtime: "node" as const,
    input: null,
    limits: DEFAULT_LIMITS,
  };
  it("lets a batch's node items share a container unless the batch is isolated", () => {
    expect(reuseKeyOf({ ...spec, batchId: "b1", isolate: false })).toBe("b1");
    expect(reuseKeyOf({ ...spec, batchId: "b1", isolate: true })).toBeUndefined();
    // An older coordinator that does not say: one container per item.
    expect(reuseKeyOf({ ...spec, batchId: "b1" })).toBeUndefined();
    expect(reuseKeyOf(spec)).toBeUndefined();
    expect(
      reuseKeyOf({ ...spec, runtime: "python", batchId: "b1", isolate: false }),
    ).toBeUndefined();
    // The item host loads one source: a program of several files gets its own container.
    const files = [{ path: "main.js", content: "exports.main = () => 1" }];
    expect(reuseKeyOf({ ...spec, files, batchId: "b1", isolate: false })).toBeUndefined();
  });
});
