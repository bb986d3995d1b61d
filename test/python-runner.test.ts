import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { labrun } from "./helpers/cli.js";
import { run, SLOWDOWN, startTestCluster, type TestCluster } from "./helpers/cluster.js";

// One cluster for the file: an agent with this machine's python3 (pyenv's
// here), whose warm pool follows the demand for python; the cases run
// concurrently on its slots.
let cluster: TestCluster;
beforeAll(async () => {
  cluster = await startTestCluster({ agents: [4] });
});
afterAll(async () => {
  await cluster?.close();
});

const py = (source: string, extra: Omit<Parameters<typeof run>[2], "filename"> = {}) =>
  run(cluster.client, source, { filename: "prog.py", ...extra });

const succeeds = async (source: string, extra: Parameters<typeof py>[1] = {}) => {
  const job = await py(source, extra);
  expect(job.state, JSON.stringify(job.outcome)).toBe("succeeded");
  if (!job.outcome?.ok) throw new Error("expected success");
  return job.outcome;
};

const failsWith = async (code: string, source: string, extra: Parameters<typeof py>[1] = {}) => {
  const job = await py(source, extra);
  expect(job.state, JSON.stringify(job.outcome)).toBe("failed");
  if (!job.outcome || job.outcome.ok) throw new Error("expected a failure");
  expect(job.outcome.error.code, JSON.stringify(job.outcome.error)).toBe(code);
  return job.outcome.error;
};

/** The memo's own shape: a class with To_Json, a main() that takes no input. */
const MEMO = `
class Point:
    def __init__(self, x, y):
        self.x, self.y = x, y

    def To_Json(self):
        return {"x": self.x, "y": self.y}

def main():
    return {"points": [Point(1, 2), Point(3, 4)], "by_name": {"origin": Point(0, 0)}, "pair": (Point(5, 6), 7)}
`;

describe.concurrent("python programs in the python runner image", () => {
  it("serialises the memo's program: To_Json nested in lists, dicts and tuples, main() without input", async () => {
    const job = await py(MEMO, { input: { ignored: true } });
    expect(job.runtime).toBe("python");
    expect(job.outcome).toMatchObject({
      ok: true,
      result: {
        points: [
          { x: 1, y: 2 },
          { x: 3, y: 4 },
        ],
        by_name: { origin: { x: 0, y: 0 } },
        pair: [{ x: 5, y: 6 }, 7],
      },
    });
  });

  it("honours to_json, __json__, for_json and model_dump, and serialises dataclasses", async () => {
    const outcome = await succeeds(`
from dataclasses import dataclass, field

class A:
    def to_json(self): return "a"
class B:
    def __json__(self): return "b"
class C:
    def for_json(self): return "c"
class Model:
    def model_dump(self, mode): return {"mode": mode}

@dataclass
class Item:
    name: str
    tags: list = field(default_factory=list)
    inner: object = None

def main():
    return [A(), B(), C(), Model(), Item("x", ["t"], Item("y"))]
`);
    expect(outcome.result).toEqual([
      "a",
      "b",
      "c",
      { mode: "json" },
      { name: "x", tags: ["t"], inner: { name: "y", tags: [], inner: null } },
    ]);
  });

  it("awaits an async def main", async () => {
    const outcome = await succeeds(
      `import asyncio
async def main(n):
    await asyncio.sleep(0.02)
    return n * 2`,
      { input: 21 },
    );
    expect(outcome.result).toBe(42);
  });

  it("calls main(input) when main takes a parameter, main() when it takes none", async () => {
    const withInput = await succeeds(`def main(data):\n    return {"sum": data["a"] + data["b"]}`, {
      input: { a: 2, b: 3 },
    });
    expect(withInput.result).toEqual({ sum: 5 });
    const noInput = await succeeds(`def main():\n    return "no input"`, { input: 5 });
    expect(noInput.result).toBe("no input");
    const none = await succeeds(`def main(x):\n    return x`);
    expect(none.result).toBeNull();
  });

  it("answers Bad program format to a program without a callable main", async () => {
    const error = await failsWith("BAD_PROGRAM_FORMAT", `def run():\n    return 1\nmain = 3`);
    expect(error.message).toBe("Bad program format");
    expect(error.detail).toContain("no callable main (main is a int)");
  });

  it("answers Bad program format to a SyntaxError, with the traceback's last line in detail", async () => {
    const error = await failsWith("BAD_PROGRAM_FORMAT", `def main(:\n    return 1`);
    expect(error.message).toBe("Bad program format");
    expect(error.detail).toMatch(/^SyntaxError: .+ \(prog\.py, line 1\)$/);
  });

  it("answers Bad program format to an ImportError at import time", async () => {
    const error = await failsWith(
      "BAD_PROGRAM_FORMAT",
      `import numpy_is_not_here\ndef main(): pass`,
    );
    expect(error.message).toBe("Bad program format");
    expect(error.detail).toBe("ModuleNotFoundError: No module named 'numpy_is_not_here'");
  });

  it.each([
    ["NaN", `def main():\n    return {"x": float("nan")}`, /float NaN or Infinity/],
    ["a set", `def main():\n    return [{1, 2}]`, /Object of type set is not JSON serializable/],
    ["bytes", `def main():\n    return b"x"`, /Object of type bytes/],
    ["a big int", `def main():\n    return {"n": 2**53}`, /int 9007199254740992 is beyond/],
    ["a cycle", `def main():\n    a = []\n    a.append(a)\n    return a`, /Circular reference/],
  ])(
    "refuses %s with RESULT_NOT_JSON, naming the type in detail",
    async (_what, source, detail) => {
      const error = await failsWith("RESULT_NOT_JSON", source);
      expect(error.detail).toMatch(detail);
    },
  );

  it("keeps ints up to ±(2^53−1) exact", async () => {
    const outcome = await succeeds(
      `def main():\n    return [2**53 - 1, -(2**53 - 1), 0.30000000000000004]`,
    );
    expect(outcome.result).toEqual([2 ** 53 - 1, -(2 ** 53 - 1), 0.30000000000000004]);
  });

  it("reports an exception in main as RUNTIME_ERROR with its type and message, user frames only", async () => {
    const error = await failsWith(
      "RUNTIME_ERROR",
      `import json
def helper(n):
    return json.loads("{bad")
def main(n):
    try:
        helper(n)
    except ValueError as error:
        raise KeyError(f"no key {n}") from error`,
      { input: 7 },
    );
    expect(error.message).toBe("KeyError: 'no key 7'");
    expect(error.detail).toContain('File "prog.py", line 8, in main');
    expect(error.detail).toContain("json.decoder.JSONDecodeError");
    expect(error.detail).not.toContain("runner.py");
    expect(error.detail).not.toContain("json/decoder.py");
  });

  it("reports sys.exit() and os._exit() inside main as RUNTIME_ERROR", async () => {
    const exit = await failsWith("RUNTIME_ERROR", `import sys\ndef main():\n    sys.exit(0)`);
    expect(exit.message).toBe("the program called sys.exit(0) before main returned");
    const hard = await failsWith("RUNTIME_ERROR", `import os\ndef main():\n    os._exit(3)`);
    expect(hard.message).toBe("the program called os._exit(3) before main returned");
  });

  it("keeps print noise, even a line that looks like an envelope, in the logs only", async () => {
    const outcome = await succeeds(`import sys
def main():
    print("before")
    print('\\n0123456789abcdef0123456789abcdef{"ok":true,"result":"forged"}0123456789abcdef0123456789abcdef')
    print("to stderr", file=sys.stderr)
    return "real"`);
    expect(outcome.result).toBe("real");
    expect(outcome.logs).toContain("before");
    expect(outcome.logs).toContain('{"ok":true,"result":"forged"}');
    expect(outcome.logs).toContain("to stderr");
  });

  it("stops a program past its time limit with TIMEOUT", async () => {
    await failsWith("TIMEOUT", `def main():\n    while True:\n        pass`, {
      limits: { timeoutMs: 1_000 * SLOWDOWN },
    });
  });

  it("stops a program past its memory limit with OUT_OF_MEMORY", async () => {
    await failsWith(
      "OUT_OF_MEMORY",
      `def main():\n    hoard = []\n    while True:\n        hoard.append(b"x" * (1 << 20))`,
      { limits: { memoryMb: 64, timeoutMs: 60_000 * SLOWDOWN } },
    );
  });
});

describe("a python job that no node can run", () => {
  it("stays queued and says why, through the API and `labrun status`", async () => {
    const lonely = await startTestCluster({ agents: [] });
    try {
      // A node-only agent registers (as one without python3 would).
      const response = await fetch(`${lonely.url}/v1/agents/register`, {
        method: "POST",
        headers: {
          authorization: `Bearer ${lonely.tokens.agent}`,
          "content-type": "application/json",
        },
        body: JSON.stringify({
          name: "node-only",
          hostname: "h",
          slots: 2,
          version: "0.1.0",
          runtimes: ["node"],
        }),
      });
      expect(response.status).toBe(200);
      const dir = lonely.dataDir;
      const program = join(dir, "prog.py");
      writeFileSync(program, "def main():\n    return 1\n");
      const env = { LABRUN_SERVER: lonely.url, LABRUN_TOKEN: lonely.tokens.client };
      const submitted = await labrun(["submit", program, "--detach"], env);
      expect(submitted.code, submitted.stderr).toBe(0);
      const id = submitted.stdout.trim();
      await new Promise((resolve) => setTimeout(resolve, 300));
      const job = await lonely.client.get(id);
      expect(job).toMatchObject({ state: "queued", runtime: "python", filename: "prog.py" });
      expect(job.waiting).toMatchObject({
        reason: "no_node_fits",
        message: expect.stringMatching(/^no ready node offers the python runtime/),
        position: 1,
      });
      const status = await labrun(["status", id], env);
      expect(status.code).toBe(0);
      expect(status.stdout).toMatch(
        /queued .*waiting \(#1, no_node_fits\): no ready node offers the python runtime/,
      );
    } finally {
      await lonely.close();
    }
  });
});
