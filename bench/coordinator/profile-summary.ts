import { readFileSync } from "node:fs";
import { round } from "../stats.js";

/** The parts of a V8 `.cpuprofile` (what `node --cpu-prof` writes) that the summary reads. */
interface CpuProfile {
  nodes: {
    id: number;
    callFrame: { functionName: string; url: string; lineNumber: number };
    children?: number[];
  }[];
  samples: number[];
  timeDeltas: number[];
}

export interface ProfileSummary {
  /** Sampled wall time, and the part the main thread was not idle. */
  totalMs: number;
  busyMs: number;
  /** Busy time by area; each sample counts once, for the innermost frame that names an area. */
  areas: { area: string; ms: number; percentOfBusy: number }[];
  /** Functions by self time. */
  topSelf: { fn: string; ms: number; percentOfBusy: number }[];
  /** Functions of the coordinator's own code by inclusive time (route handlers, store verbs). */
  topCoordinatorInclusive: { fn: string; ms: number; percentOfBusy: number }[];
}

/**
 * Areas the coordinator's time can go to, tried in this order on each frame
 * from the leaf up: a native call (JSON.parse, a SQLite step, a hash) has no
 * URL of its own and is charged to the area of the JS that called it.
 */
const AREAS: readonly [string, (url: string, name: string) => boolean][] = [
  ["garbage collection", (_url, name) => name === "(garbage collector)"],
  ["idle", (_url, name) => name === "(idle)"],
  ["(program: V8/native outside JS)", (_url, name) => name === "(program)"],
  [
    "sqlite (store verbs + better-sqlite3)",
    (url) => /\/coordinator\/store\/|better-sqlite3/.test(url),
  ],
  ["zod validation", (url) => url.includes("node_modules/zod/")],
  ["auth (token hashing and compare)", (url) => /\/coordinator\/(auth|tokens)\.js/.test(url)],
  ["pino logging", (url) => /node_modules\/(pino|sonic-boom)/.test(url)],
  ["coordinator routes/validate/notifier", (url) => url.includes("/coordinator/")],
  [
    "@hono/node-server (node req/res ⇄ fetch Request/Response)",
    (url) => url.includes("@hono/node-server"),
  ],
  ["hono (router, context, middleware)", (url) => url.includes("node_modules/hono/")],
  [
    "node http/net/streams",
    (url) => /^node:(_http|net|internal\/(http|streams|stream_base|net|timers))/.test(url),
  ],
  [
    "node undici (Request/Headers/Response classes)",
    (url) => url.includes("undici") || url.includes("internal/deps/undici"),
  ],
  ["other node internals", (url) => url.startsWith("node:")],
];

const label = (frame: CpuProfile["nodes"][number]["callFrame"]) => {
  const file = frame.url.replace(/^file:\/\/.*?\/(dist|node_modules)\//, "$1/");
  return `${frame.functionName || "(anonymous)"} ${file || "(native)"}${file ? `:${frame.lineNumber + 1}` : ""}`;
};

/** Reads a `.cpuprofile` and says where the time went. */
export function summarizeCpuProfile(path: string, top = 20): ProfileSummary {
  const profile = JSON.parse(readFileSync(path, "utf8")) as CpuProfile;
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const parent = new Map<number, number>();
  for (const node of profile.nodes)
    for (const child of node.children ?? []) parent.set(child, node.id);

  const selfUs = new Map<number, number>();
  profile.samples.forEach((id, index) => {
    selfUs.set(id, (selfUs.get(id) ?? 0) + (profile.timeDeltas[index] ?? 0));
  });

  const areaUs = new Map<string, number>();
  const selfByFn = new Map<string, number>();
  const inclusiveByFn = new Map<string, number>();
  let totalUs = 0;
  let idleUs = 0;
  for (const [leafId, us] of selfUs) {
    totalUs += us;
    const leaf = byId.get(leafId);
    if (!leaf) continue;
    if (leaf.callFrame.functionName === "(idle)") idleUs += us;
    const leafLabel = label(leaf.callFrame);
    selfByFn.set(leafLabel, (selfByFn.get(leafLabel) ?? 0) + us);
    let area: string | undefined;
    // A recursive function is counted once per sample in the inclusive totals.
    const seen = new Set<string>();
    for (let id: number | undefined = leafId; id !== undefined; id = parent.get(id)) {
      const frame = byId.get(id)?.callFrame;
      if (!frame) break;
      area ??= AREAS.find(([, matches]) => matches(frame.url, frame.functionName))?.[0];
      if (frame.url.includes("/dist/coordinator/")) {
        const fn = label(frame);
        if (!seen.has(fn)) inclusiveByFn.set(fn, (inclusiveByFn.get(fn) ?? 0) + us);
        seen.add(fn);
      }
    }
    const name = area ?? "other (native roots, node:internal)";
    areaUs.set(name, (areaUs.get(name) ?? 0) + us);
  }

  const busyUs = Math.max(1, totalUs - idleUs);
  const rows = (entries: Map<string, number>, key: "area" | "fn", limit: number) =>
    [...entries]
      .sort((a, b) => b[1] - a[1])
      .slice(0, limit)
      .map(([name, us]) => ({
        [key]: name,
        ms: Math.round(us / 1000),
        percentOfBusy: round((100 * us) / busyUs, 1),
      }));
  return {
    totalMs: Math.round(totalUs / 1000),
    busyMs: Math.round(busyUs / 1000),
    areas: rows(areaUs, "area", AREAS.length + 1) as ProfileSummary["areas"],
    topSelf: rows(selfByFn, "fn", top) as ProfileSummary["topSelf"],
    topCoordinatorInclusive: rows(
      inclusiveByFn,
      "fn",
      top,
    ) as ProfileSummary["topCoordinatorInclusive"],
  };
}

/** The summary as a few readable tables. */
export function formatProfileSummary(summary: ProfileSummary): string {
  const lines = [`sampled ${summary.totalMs} ms, busy ${summary.busyMs} ms`, "", "by area:"];
  for (const { area, ms, percentOfBusy } of summary.areas) {
    lines.push(`  ${String(percentOfBusy).padStart(5)}%  ${String(ms).padStart(7)} ms  ${area}`);
  }
  lines.push("", "top functions by self time:");
  for (const { fn, ms, percentOfBusy } of summary.topSelf) {
    lines.push(`  ${String(percentOfBusy).padStart(5)}%  ${String(ms).padStart(7)} ms  ${fn}`);
  }
  lines.push("", "coordinator functions by inclusive time:");
  for (const { fn, ms, percentOfBusy } of summary.topCoordinatorInclusive) {
    lines.push(`  ${String(percentOfBusy).padStart(5)}%  ${String(ms).padStart(7)} ms  ${fn}`);
  }
  return `${lines.join("\n")}\n`;
}
