import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ItemResult, NDJSON } from "../protocol/index.js";
import { labrun } from "./helpers/cli.js";
import { SLOWDOWN, startTestCluster, type TestCluster } from "./helpers/cluster.js";

let cluster: TestCluster;
let env: Record<string, string>;
let dir: string;
const file = (name: string, text: string) => {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
};
const jsonl = (values: unknown[]) => `${values.map((value) => JSON.stringify(value)).join("\n")}\n`;
const range = (count: number) => Array.from({ length: count }, (_, index) => index);

beforeAll(async () => {
  cluster = await startTestCluster({ agents: [2] });
  dir = mkdtempSync(join(tmpdir(), "labrun-batches-"));
  env = {
    LABRUN_SERVER: cluster.url,
    LABRUN_TOKEN: cluster.tokens.client,
    LABRUN_CONFIG: join(dir, "no-config.json"),
    LABRUN_DATA_DIR: join(dir, "no-data"),
  };
});
afterAll(async () => {
  await cluster?.close();
});

/** POSTs an NDJSON batch straight to the API: the spec, then one input per line. */
async function postNdjson(body: string) {
  const response = await fetch(`${cluster.url}/v1/batches`, {
    method: "POST",
    headers: { authorization: `Bearer ${cluster.tokens.client}`, "content-type": NDJSON },
    body,
  });
  return { status: response.status, body: (await response.json()) as Record<string, never> };
}

describe("labrun map", () => {
  it("prints one line per item in input order, each item's own error, and exits 1 when one failed", async () => {
    const program = file(
      "double.js",
      `exports.main = (n) => { if (n === 13) throw new Error("unlucky " + n); return n * 2; };`,
    );
    // The issue's 500: the items share containers, so this takes seconds, not minutes.
    const count = 500;
    const inputs = file("numbers.jsonl", jsonl(range(count)));
    const out = await labrun(["map", program, "--inputs", inputs], env);
    expect(out.code).toBe(1);
    const lines = out.stdout
      .trim()
      .split("\n")
      .map((line) => JSON.parse(line));
    expect(lines.map((line) => line.index)).toEqual(range(count));
    for (const line of lines) {
      if (line.index === 13) {
        expect(line).toEqual({
          index: 13,
          ok: false,
          error: { code: "RUNTIME_ERROR", message: "unlucky 13" },
        });
      } else {
        expect(line).toEqual({ index: line.index, ok: true, result: line.index * 2 });
      }
    }
    expect(out.stderr).toMatch(/batch b_\S+ failed: 500 items, 499 succeeded, 1 failed/);
    expect(await cluster.leftoverContainers()).toEqual([]);
  });

  it("exits 0 when every item succeeded, with inputs from stdin", async () => {
    const program = file("echo.js", `exports.main = (x) => ({ got: x });`);
    const out = await labrun(["map", program, "--inputs", "-"], env, {
      stdin: jsonl([{ a: 1 }, "two", null]),
    });
    expect(out.code).toBe(0);
    expect(
      out.stdout
        .trim()
        .split("\n")
        .map((line) => JSON.parse(line)),
    ).toEqual([
      { index: 0, ok: true, result: { got: { a: 1 } } },
      { index: 1, ok: true, result: { got: "two" } },
      { index: 2, ok: true, result: { got: null } },
    ]);
  });

  it("refuses a bad JSONL line with exit 2 and its line number, and queues nothing", async () => {
    const program = file("never.js", `exports.main = () => 1;`);
    const inputs = file("bad.jsonl", '1\n2\n\n{"oops"\n5\n');
    const before = (await cluster.client.listBatches()).batches.length;
    const out = await labrun(["map", program, "--inputs", inputs], env);
    expect(out.code).toBe(2);
    expect(out.stderr).toContain(`${inputs}:4: not valid JSON`);
    expect((await cluster.client.listBatches()).batches.length).toBe(before);
  });

  it("never runs two items at once with --parallel 1", async () => {
    const program = file(
      "window.js",
      `exports.main = async () => { const start = Date.now(); await new Promise((r) => setTimeout(r, 300)); return [start, Date.now()]; };`,
    );
    const inputs = file("five.jsonl", jsonl(range(5)));
    const out = await labrun(["map", program, "--inputs", inputs, "--parallel", "1"], env);
    expect(out.code).toBe(0);
    const windows = out.stdout
      .trim()
      .split("\n")
      .map((line) => JSON.parse(line).result as [number, number])
      .sort((a, b) => a[0] - b[0]);
    for (let i = 1; i < windows.length; i++) {
      expect(windows[i]?.[0]).toBeGreaterThanOrEqual(windows[i - 1]?.[1] ?? 0);
    }
  });

  it("detaches, then batch status, results and wait follow it by id", async () => {
    const program = file("square.js", `exports.main = (n) => n * n;`);
    const inputs = file("three.jsonl", jsonl([1, 2, 3]));
    const submitted = await labrun(["map", program, "--inputs", inputs, "--detach"], env);
    expect(submitted.code).toBe(0);
    const id = submitted.stdout.trim();
    expect(id).toMatch(/^b_/);
    const waited = await labrun(["batch", "wait", id, "--json"], env);
    expect(waited.code).toBe(0);
    expect(JSON.parse(waited.stdout)).toMatchObject({ id, state: "succeeded", total: 3 });
    const results = await labrun(["batch", "results", id, "--from", "1"], env);
    expect(
      results.stdout
        .trim()
        .split("\n")
        .map((line) => JSON.parse(line).result),
    ).toEqual([4, 9]);
    const listed = await labrun(["batches"], env);
    expect(listed.stdout).toContain(id);
  });
});

describe("a batch on a real cluster", () => {
  it("cancels mid-batch: queued items at once, running ones killed, no container left", async () => {
    const { status, body } = await postNdjson(
      `${JSON.stringify({
        source: "exports.main = () => new Promise(() => setInterval(() => {}, 1000));",
        limits: { timeoutMs: 60_000 },
      })}\n${jsonl(range(12))}`,
    );
    expect(status).toBe(201);
    const id = String(body.id);
    const deadline = Date.now() + 30_000 * SLOWDOWN;
    while ((await cluster.client.getBatch(id)).counts.running < 2 && Date.now() < deadline) {
      await sleep(100);
    }
    const cancelled = await cluster.client.cancelBatch(id);
    expect(cancelled).toMatchObject({ state: "cancelled", counts: { cancelled: 12 } });
    // The agents stop their leases on their next heartbeat; their containers go.
    const running = async () =>
      (await cluster.admin.nodes()).reduce((n, node) => n + node.running, 0);
    const stopped = Date.now() + 10_000 * SLOWDOWN;
    while ((await running()) > 0 && Date.now() < stopped) await sleep(100);
    expect(await running()).toBe(0);
    expect(await cluster.leftoverContainers()).toEqual([]);
  });

  it("times out one item without failing its neighbours", async () => {
    const { body } = await postNdjson(
      `${JSON.stringify({
        source: `exports.main = (x) => { if (x === "hang") for (;;) {} return x; };`,
        limits: { timeoutMs: 1_000 },
      })}\n${jsonl(["a", "hang", "c"])}`,
    );
    const response = await fetch(`${cluster.url}/v1/batches/${body.id}/results`, {
      headers: { authorization: `Bearer ${cluster.tokens.client}` },
    });
    const lines = (await response.text())
      .trim()
      .split("\n")
      .map((line) => JSON.parse(line) as ItemResult);
    expect(lines.map((line) => (line.ok ? line.result : line.error.code))).toEqual([
      "a",
      "TIMEOUT",
      "c",
    ]);
  });

  it("accepts a 100,000-item NDJSON batch and streams its first results", async () => {
    const spec = JSON.stringify({ source: "exports.main = (n) => n + 1" });
    const { status, body } = await postNdjson(`${spec}\n${jsonl(range(100_000))}`);
    expect(status).toBe(201);
    expect(body.total).toBe(100_000);
    const id = String(body.id);
    const controller = new AbortController();
    const response = await fetch(`${cluster.url}/v1/batches/${id}/results`, {
      headers: { authorization: `Bearer ${cluster.tokens.client}` },
      signal: controller.signal,
    });
    const reader = response.body?.getReader();
    const { value } = (await reader?.read()) ?? {};
    const first = JSON.parse(new TextDecoder().decode(value).split("\n")[0] ?? "") as ItemResult;
    expect(first).toMatchObject({ index: 0, ok: true, result: 1 });
    controller.abort();
    const cancelled = await cluster.client.cancelBatch(id);
    expect(cancelled.state).toBe("cancelled");
  });
});
