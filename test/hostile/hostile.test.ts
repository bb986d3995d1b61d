import { request } from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DEFAULT_LIMITS } from "../../protocol/index.js";
import { run, SLOWDOWN, startTestCluster, type TestCluster } from "../helpers/cluster.js";
import { HOSTILE, type HostileProgram } from "./programs.js";
import { PYTHON_HOSTILE } from "./python-programs.js";

// Two agents with 3 slots each: hostile and benign jobs share them.
let cluster: TestCluster;
beforeAll(async () => {
  cluster = await startTestCluster({ agents: [3, 3] });
});
afterAll(async () => {
  await cluster?.close();
});

/**
 * A program's wall-time limit; on a slower host (LABRUN_TEST_SLOWDOWN) it
 * scales, so a program gets the same work done before its clock runs out.
 */
const timeLimit = (program: HostileProgram) =>
  Math.min(3_600_000, (program.limits?.timeoutMs ?? DEFAULT_LIMITS.timeoutMs) * SLOWDOWN);

const BENIGN = `exports.main = async (n) => { await new Promise((r) => setTimeout(r, 100)); return n * 2; };`;
const BENIGN_PYTHON = `import time
def main(n):
    time.sleep(0.1)
    return n * 2`;

describe("hostile programs are contained", () => {
  it(
    "gives every hostile Node program its exact code in time, while benign jobs still succeed",
    () => containsAll(HOSTILE, () => BENIGN),
    180_000 * SLOWDOWN,
  );

  it(
    "gives every hostile Python program its exact code in time, while benign Node and Python jobs still succeed",
    () => containsAll(PYTHON_HOSTILE, (n) => (n % 2 === 0 ? BENIGN_PYTHON : BENIGN)),
    180_000 * SLOWDOWN,
  );

  it("rejects a 10 MB program and a 100 MB input at submit with 413, queueing nothing", async () => {
    const before = (await cluster.client.list({ limit: 500 })).jobs.length;
    for (const body of [
      { source: `exports.main = () => 1; //${"x".repeat(10 * 1024 * 1024)}` },
      { source: "exports.main = (i) => i.length;", input: "z".repeat(100 * 1024 * 1024) },
    ]) {
      const response = await postEarlyAnswered(
        `${cluster.url}/v1/jobs`,
        cluster.tokens.client,
        body,
      );
      expect(response.status).toBe(413);
      expect((JSON.parse(response.body) as { error: { code: string } }).error.code).toBe(
        "PAYLOAD_TOO_LARGE",
      );
    }
    expect((await cluster.client.list({ limit: 500 })).jobs.length).toBe(before);
  });

  it("keeps the agents answering heartbeats and leaves no container behind", async () => {
    const nodes = await cluster.admin.nodes();
    expect(nodes.map((node) => node.state)).toEqual(["ready", "ready"]);
    expect(await cluster.leftoverContainers()).toEqual([]);
  });
});

/**
 * POSTs a JSON body and takes the answer as soon as it arrives, as a careful
 * HTTP/1.1 client does: the server answers 413 before reading a body that
 * large and closes the connection once it has drained a bound of it, so the
 * upload can fail after the answer is in (fetch then reports only the reset,
 * which a slow host makes likely).
 */
function postEarlyAnswered(
  url: string,
  token: string,
  body: unknown,
): Promise<{ status: number; body: string }> {
  const payload = Buffer.from(JSON.stringify(body));
  return new Promise((resolve, reject) => {
    let answered = false;
    const req = request(
      url,
      {
        method: "POST",
        headers: {
          authorization: `Bearer ${token}`,
          "content-type": "application/json",
          "content-length": payload.length,
        },
      },
      (response) => {
        answered = true;
        let text = "";
        response.setEncoding("utf8");
        response.on("data", (chunk: string) => {
          text += chunk;
        });
        response.on("end", () => resolve({ status: response.statusCode ?? 0, body: text }));
        response.on("error", reject);
      },
    );
    const onError = (error: Error) => {
      if (!answered) reject(error);
    };
    req.on("error", onError);
    // The write still under way when the server closes fails on the socket
    // itself, once the request has let go of it.
    req.on("socket", (socket) => socket.on("error", onError));
    req.end(payload);
  });
}

/**
 * Runs `programs` at once beside 12 benign jobs on the cluster's agents and
 * checks each program's exact code, in time, and that every benign job is right.
 */
async function containsAll(programs: HostileProgram[], benignSource: (n: number) => string) {
  // The agents run in this process: its RSS bounds theirs. A program that
  // prints without end must not grow it (output is read through bounded buffers).
  const baseline = process.memoryUsage().rss;
  let peak = baseline;
  const sampler = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage().rss);
  }, 50);
  const hostile = programs.map(async (program) => {
    const started = Date.now();
    const job = await run(cluster.client, program.source, {
      ...(program.filename ? { filename: program.filename } : {}),
      limits: { ...program.limits, timeoutMs: timeLimit(program) },
    });
    return { program, job, ms: Date.now() - started };
  });
  const benign = Array.from({ length: 12 }, (_, n) => {
    const source = benignSource(n);
    return run(cluster.client, source, {
      input: n,
      ...(source === BENIGN_PYTHON ? { filename: "benign.py" } : {}),
    });
  });
  const [hostileDone, benignDone] = await Promise.all([Promise.all(hostile), Promise.all(benign)]);

  benignDone.forEach((job, n) => {
    expect(job.outcome, `benign job ${n}`).toMatchObject({ ok: true, result: n * 2 });
  });
  clearInterval(sampler);
  const grewMb = Math.round((peak - baseline) / 2 ** 20);
  const table = hostileDone.map(({ program, job, ms }) => {
    const code = job.outcome?.ok ? "ok" : job.outcome?.error.code;
    return `${program.name.padEnd(80)} ${String(code).padEnd(17)} ran ${job.outcome?.stats.durationMs} ms, ${ms} ms from submit`;
  });
  table.push(`test process RSS grew by at most ${grewMb} MB (2 agents + coordinator)`);
  // Before any check can fail, so a failing run shows every outcome.
  if (process.env.LABRUN_HOSTILE_TABLE) console.log(table.join("\n"));

  for (const { program, job } of hostileDone) {
    const outcome = job.outcome;
    const code = outcome?.ok ? "ok" : outcome?.error.code;
    expect.soft(code, program.name).toBe(program.expect);
    // Within its limit + 2 s of reaching the runner (time queued or booting is not the program's).
    const ranMs = outcome?.stats.durationMs ?? Number.NaN;
    if (outcome) {
      expect
        .soft(ranMs, program.name)
        .toBeLessThanOrEqual(timeLimit(program) + (program.teardownMs ?? 2_000) * SLOWDOWN);
    }
    try {
      program.check?.({
        ...(outcome?.ok ? { result: outcome.result } : { message: outcome?.error.message }),
        logs: outcome?.logs ?? "",
      });
    } catch (error) {
      expect.soft((error as Error).message, `${program.name}: its own check`).toBe("");
    }
  }
  expect(grewMb).toBeLessThan(150);
}
