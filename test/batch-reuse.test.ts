import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SLOWDOWN, startTestCluster, type TestCluster } from "./helpers/cluster.js";

interface ItemResult {
  index: number;
  ok: boolean;
  result?: unknown;
  error?: { code: string; message: string };
  stats: { durationMs: number; container?: string; containerItem?: number };
}

/** Submits a batch and reads its results stream (held open until the batch ends), in index order. */
async function runBatch(
  cluster: TestCluster,
  body: { source: string; inputs: unknown[]; limits?: Record<string, number>; isolate?: boolean },
): Promise<ItemResult[]> {
  const headers = {
    authorization: `Bearer ${cluster.tokens.client}`,
    "content-type": "application/json",
  };
  const submitted = await fetch(`${cluster.url}/v1/batches`, {
    method: "POST",
    headers,
    body: JSON.stringify(body),
  });
  expect(submitted.status).toBe(201);
  const { id } = (await submitted.json()) as { id: string };
  const results = await fetch(`${cluster.url}/v1/batches/${id}/results`, {
    headers,
    signal: AbortSignal.timeout(90_000 * SLOWDOWN),
  });
  const lines = (await results.text()).split("\n").filter((line) => line !== "");
  return lines.map((line) => JSON.parse(line) as ItemResult);
}

const codeOf = (item: ItemResult | undefined) => (item?.ok ? "ok" : item?.error?.code);

/**
 * Leaves behind all it can ("pollute"), or reports what it finds of that
 * ("observe"): a global, patched built-ins (its realm's and Node's shared
 * modules), files in /tmp (one in a directory it made unremovable, one it
 * keeps open), a detached child process, a timer printing after main
 * returned, a pending promise that would write a global and a file later,
 * an environment variable and a process listener. Every item returns the
 * pid of the process it ran in (the item host).
 */
const LEFTOVERS = `
const fs = require("node:fs");
const cp = require("node:child_process");
const live = () => fs.readdirSync("/proc").filter((name) => {
  if (!/^[0-9]+$/.test(name) || name === String(process.pid)) return false;
  try {
    const stat = fs.readFileSync("/proc/" + name + "/stat", "latin1");
    return stat[stat.lastIndexOf(")") + 2] !== "Z";
  } catch { return false; }
});
exports.main = (role) => {
  if (role === "pollute") {
    globalThis.leftBehind = "a global";
    Array.prototype.includes = () => true;
    JSON.parse = () => "patched";
    require("node:path").join = () => "patched";
    Buffer.prototype.toJSON = () => "patched";
    process.env.LEFT_BEHIND = "yes";
    process.on("exit", () => {});
    process.chdir("/");
    fs.writeFileSync("/tmp/left-behind", "secret");
    fs.mkdirSync("/tmp/locked");
    fs.writeFileSync("/tmp/locked/inside", "secret");
    fs.chmodSync("/tmp/locked", 0o500);
    globalThis.held = fs.openSync("/tmp/held-open", "w");
    fs.writeSync(globalThis.held, "secret");
    const child = cp.spawn(process.execPath, ["-e", "setInterval(() => {}, 1000)"], { detached: true, stdio: "ignore" });
    child.unref();
    setInterval(() => fs.writeSync(1, "late output\\n"), 2);
    new Promise((resolve) => setTimeout(resolve, 20)).then(() => {
      globalThis.late = "a late global";
      fs.writeFileSync("/tmp/late", "late");
    });
    return { pid: process.pid, child: child.pid > 0 };
  }
  return {
    pid: process.pid,
    global: globalThis.leftBehind ?? globalThis.late ?? null,
    includes: [1].includes(2),
    parse: JSON.parse("1"),
    join: require("node:path").join("a", "b"),
    buffer: JSON.stringify(Buffer.from("a")),
    env: process.env.LEFT_BEHIND ?? null,
    exitListeners: process.listenerCount("exit"),
    cwd: process.cwd(),
    modules: Object.keys(require.cache).length,
    heldFiles: fs.readdirSync("/proc/self/fd")
      .map((fd) => { try { return fs.readlinkSync("/proc/self/fd/" + fd); } catch { return ""; } })
      .filter((target) => target.startsWith("/tmp/")),
    tmp: fs.readdirSync("/tmp").filter((name) => !name.startsWith("labrun-job-")),
    processes: live(),
  };
};`;

const CLEAN = {
  global: null,
  includes: false,
  parse: 1,
  join: "a/b",
  buffer: '{"type":"Buffer","data":[97]}',
  env: null,
  exitListeners: 0,
  cwd: "/tmp",
  modules: 1,
  heldFiles: [],
  tmp: [],
  // The framer (PID 1) only: nothing an earlier item started.
  processes: ["1"],
};

/**
 * A hostile item ("forge") that looks for a nonce everywhere a process of
 * the container could: the framer's memory and its stdin (PID 1), its own
 * memory, a V8 heap snapshot of its own process, and its own stdin for the
 * next item's request; it frames a TIMEOUT with every nonce-like string it
 * finds. Any other input is answered honestly.
 */
const FORGER = `
const fs = require("node:fs");
const v8 = require("node:v8");
const NONCE = /(?<![0-9a-f])[0-9a-f]{48}(?![0-9a-f])/g;
const tryOpen = (file) => { try { fs.closeSync(fs.openSync(file, "r")); return "opened"; } catch (e) { return e.code; } };
exports.main = async (input) => {
  if (input !== "forge") return { genuine: input, pid: process.pid };
  const found = new Set();
  for await (const chunk of v8.getHeapSnapshot()) for (const m of String(chunk).matchAll(NONCE)) found.add(m[0]);
  for (const n of found) {
    fs.writeSync(2, n);
    fs.writeSync(1, "\\n" + n + 'K{"ok":false,"error":{"code":"TIMEOUT","message":"forged"}}' + n);
  }
  let stdin = "";
  fs.writeFileSync("/tmp/probe", "");
  try {
    const buffer = Buffer.alloc(1 << 16);
    const n = fs.readSync(0, buffer, 0, buffer.length, null);
    stdin = buffer.toString("utf8", 0, n);
  } catch (e) { stdin = e.code; }
  return {
    framerMemory: tryOpen("/proc/1/mem"),
    framerStdin: tryOpen("/proc/1/fd/0"),
    framerFds: (() => { try { return fs.readdirSync("/proc/1/fd").length; } catch (e) { return e.code; } })(),
    ownMemory: tryOpen("/proc/self/mem"),
    nonces: found.size,
    stdinHasNonce: /nonce/.test(stdin),
  };
};`;

describe("containers reused within a batch", () => {
  let cluster: TestCluster;
  beforeAll(async () => {
    // One slot: the items of a batch run one after another, in one container.
    cluster = await startTestCluster({ agents: [1] });
  });
  afterAll(async () => {
    await cluster?.close();
  });

  it("runs a batch's items in one container, none seeing what an earlier item left", async () => {
    const results = await runBatch(cluster, {
      source: LEFTOVERS,
      inputs: ["observe", "observe", "pollute", "observe", "pollute", "observe"],
    });
    expect(results.map(codeOf), JSON.stringify(results)).toEqual([
      "ok",
      "ok",
      "ok",
      "ok",
      "ok",
      "ok",
    ]);
    expect(results[2]?.result).toMatchObject({ child: true });
    // The same container, one item after another.
    const containers = new Set(results.map((item) => item.stats.container));
    expect(containers.size).toBe(1);
    expect([...containers][0]).toMatch(/^[0-9a-f]{12}$/);
    expect(results.map((item) => item.stats.containerItem)).toEqual([1, 2, 3, 4, 5, 6]);
    for (const at of [0, 1, 3, 5]) expect(results[at]?.result).toMatchObject(CLEAN);
    const pids = results.map((item) => (item.result as { pid: number }).pid);
    // Items that leave nothing share one item host; after one that does, a new host.
    expect(pids[1]).toBe(pids[0]);
    expect(pids[2]).toBe(pids[1]);
    expect(pids[3]).not.toBe(pids[2]);
    expect(pids[5]).not.toBe(pids[4]);
    expect(JSON.stringify(results)).not.toContain("late output");
    expect(await cluster.leftoverContainers()).toEqual([]);
  });

  it("keeps the item host for items that change nothing shared, each in a fresh realm", async () => {
    const results = await runBatch(cluster, {
      source: `
        const seen = globalThis.counter ?? 0;
        globalThis.counter = seen + 1;
        exports.main = async (what) => {
          Object.prototype.polluted = what;
          await new Promise((resolve) => setTimeout(resolve, 1));
          setTimeout(() => { throw new Error("a timer left behind"); }, 50);
          Promise.resolve().then(() => { globalThis.later = true; });
          return { pid: process.pid, seen, polluted: {}.polluted ?? null };
        };`,
      inputs: ["a", "b", "c"],
    });
    expect(results.map(codeOf), JSON.stringify(results)).toEqual(["ok", "ok", "ok"]);
    const values = results.map(
      (item) => item.result as { pid: number; seen: number; polluted: string },
    );
    // Each item saw only its own realm: no counter, only its own Object.prototype patch.
    expect(values.map((value) => value.seen)).toEqual([0, 0, 0]);
    expect(values.map((value) => value.polluted)).toEqual(["a", "b", "c"]);
    // Its leftover timer was cut off (it threw in no later item), and the host stayed.
    expect(new Set(values.map((value) => value.pid)).size, JSON.stringify(results)).toBe(1);
  });

  it("runs a large program's items in one host, each compiled afresh in its realm with its own stack", async () => {
    // ~0.6 MB of code: its request comes to the host in many chunks, and
    // items after the first compile it from the host's code cache.
    const helpers = Array.from(
      { length: 6_000 },
      (_, i) => `function helper${i}(x) { return [x, ${i}, "padding for the bundle ${i}"]; }`,
    ).join("\n");
    const source = `${helpers}
const state = { items: 0 };
exports.main = (what) => {
  state.items += 1;
  if (what === "throw") throw new Error("thrown from the last line");
  return { pid: process.pid, items: state.items, helper: helper5999(what)[1] };
};`;
    const throwLine = source.split("\n").findIndex((line) => line.includes("thrown from")) + 1;
    const results = await runBatch(cluster, { source, inputs: ["a", "b", "c", "throw"] });
    expect(results.map(codeOf), JSON.stringify(results)).toEqual([
      "ok",
      "ok",
      "ok",
      "RUNTIME_ERROR",
    ]);
    const values = results
      .slice(0, 3)
      .map((item) => item.result as { pid: number; items: number; helper: number });
    // One host for all, and a fresh module for each item: none sees another's state.
    expect(new Set(values.map((value) => value.pid)).size, JSON.stringify(results)).toBe(1);
    expect(values.map((value) => [value.items, value.helper])).toEqual([
      [1, 5999],
      [1, 5999],
      [1, 5999],
    ]);
    // The last item's stack names its own program's line, not a folder of an item before it.
    const detail = (results[3]?.error as { detail?: string } | undefined)?.detail ?? "";
    expect(detail, detail).toContain(`main.js:${throwLine}:`);
    expect(detail, detail).not.toContain("labrun-job-");
    expect(new Set(results.map((item) => item.stats.container)).size).toBe(1);
  });
  it("gives a timeout, out-of-memory or oversized item its own code and runs its neighbours", async () => {
    const results = await runBatch(cluster, {
      source: `exports.main = (what) => {
        if (what === "spin") for (;;) {}
        if (what === "oom") { const keep = []; for (;;) keep.push(Buffer.alloc(1 << 20, 1)); }
        if (what === "huge") return "x".repeat(200_000);
        return what;
      };`,
      inputs: ["a", "spin", "b", "oom", "c", "huge", "d"],
      limits: { timeoutMs: 5_000 * SLOWDOWN, memoryMb: 128, resultBytes: 100_000 },
    });
    expect(results.map(codeOf), JSON.stringify(results)).toEqual([
      "ok",
      "TIMEOUT",
      "ok",
      "OUT_OF_MEMORY",
      "ok",
      "OUTPUT_TOO_LARGE",
      "ok",
    ]);
    expect(results.filter((item) => item.ok).map((item) => item.result)).toEqual([
      "a",
      "b",
      "c",
      "d",
    ]);
    // The container of a timed-out, out-of-memory or oversized item is thrown away.
    for (const spent of [1, 3, 5]) {
      const container = results[spent]?.stats.container;
      expect(container).toMatch(/^[0-9a-f]{12}$/);
      for (const later of results.slice(spent + 1))
        expect(later.stats.container).not.toBe(container);
    }
    expect(results[0]?.stats.container).toBe(results[1]?.stats.container);
    expect(await cluster.leftoverContainers()).toEqual([]);
  });

  it("runs an ES module item in a host of its own, replaced after it", async () => {
    const results = await runBatch(cluster, {
      source:
        "export function main(n) { globalThis.seen = (globalThis.seen ?? 0) + n; return { pid: process.pid, seen: globalThis.seen }; }",
      inputs: [1, 2],
    });
    expect(results.map(codeOf), JSON.stringify(results)).toEqual(["ok", "ok"]);
    const values = results.map((item) => item.result as { pid: number; seen: number });
    expect(values.map((value) => value.seen)).toEqual([1, 2]);
    expect(values[1]?.pid).not.toBe(values[0]?.pid);
  });

  it("does not see state a built-in keeps inside itself: what does NOT hold", async () => {
    // The host's check compares the built-ins' properties, not their inner
    // state: a value set through a built-in's own setter stays for the next
    // item in the same host. Items share a program and a user; this is what
    // the README says they may share.
    const results = await runBatch(cluster, {
      source: `exports.main = (what) => {
        const events = require("node:events");
        if (what === "set") events.defaultMaxListeners = 77;
        return { pid: process.pid, max: events.defaultMaxListeners };
      };`,
      inputs: ["read", "set", "read"],
    });
    expect(results.map(codeOf)).toEqual(["ok", "ok", "ok"]);
    const values = results.map((item) => item.result as { pid: number; max: number });
    expect(values.map((value) => value.max)).toEqual([10, 77, 77]);
    expect(new Set(values.map((value) => value.pid)).size, JSON.stringify(results)).toBe(1);
  });

  it("gives an item no way to a nonce: not the framer's memory or stdin, not its own process", async () => {
    const results = await runBatch(cluster, {
      source: FORGER,
      inputs: ["before", "forge", "next", "after"],
    });
    expect(results.map(codeOf), JSON.stringify(results)).toEqual(["ok", "ok", "ok", "ok"]);
    expect(results[1]?.result).toEqual({
      framerMemory: "EACCES",
      framerStdin: "EACCES",
      framerFds: "EACCES",
      ownMemory: "EACCES",
      nonces: 0,
      stdinHasNonce: false,
    });
    expect(results[0]?.result).toMatchObject({ genuine: "before" });
    expect(results[2]?.result).toMatchObject({ genuine: "next" });
    expect(results[3]?.result).toMatchObject({ genuine: "after" });
    expect(new Set(results.map((item) => item.stats.container)).size).toBe(1);
  });

  it("gives every item of an isolated batch a fresh container", async () => {
    const results = await runBatch(cluster, {
      source: LEFTOVERS,
      inputs: ["pollute", "observe"],
      isolate: true,
    });
    expect(results.map(codeOf)).toEqual(["ok", "ok"]);
    // The one-job-per-container path: no reuse figures at all.
    expect(results.map((item) => item.stats.containerItem)).toEqual([undefined, undefined]);
    expect(results[1]?.result).toMatchObject({ global: null, tmp: [], includes: false });
  });
});
