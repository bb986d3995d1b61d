import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";
import { LabrunClient } from "../../client/api.js";
import { bundleProgram, RUNNER_NODE_TARGET } from "../../client/bundle.js";
import type { SubmitJobRequest } from "../../protocol/index.js";
import { type Distribution, distribution } from "../stats.js";
import { HOP_DESCRIPTIONS, type WarmJobBreakdown } from "./breakdown.js";
import { runCli, TRIVIAL_SOURCE } from "./latency.js";
import { launchCluster } from "./processes.js";

/** The TypeScript entry that imports zod from this checkout's node_modules. */
const ZOD_ENTRY = fileURLToPath(
  new URL("../../../test/fixtures/programs/zod-parse/main.ts", import.meta.url),
);
/** Both HTTP rows get a minute: on a swamped machine a 2 MiB bundle outlasted the default 10 s. */
const SLACK = { timeoutMs: 60_000 };
/** As the other latency rows: each run arrives at an idle agent whose pool has refilled. */
const PAUSE_MS = 600;

export interface ProgramsBench {
  /** `labrun submit FILE` as a user runs it, round by round side by side. */
  cliMs: {
    trivial: Distribution;
    /** The same, with another build's bin (BENCH_COMPARE_BIN: the CLI before this change). */
    trivialCompared?: Distribution;
    /** Bundled on every submit (LABRUN_BUNDLE_CACHE=0). */
    typescriptZod: Distribution;
    /** The same submit again, its bundle from the cache (no input changed). */
    typescriptZodCached: Distribution;
    preBundledZod: Distribution;
  };
  /** Over HTTP: a 1 KiB program against a bundle of ~2 MiB (files + entry), interleaved. */
  httpMs: { program1KiB: Distribution; bundle2MiB: Distribution };
  /** `labrun map` of SWEEP_ITEMS inputs on the cluster's 2 slots, items/s (sweeps of real programs). */
  sweepItemsPerSecond: { trivial: number; typescriptZod: number; zodCommonJs: number };
  bundleBytes: number;
  /** The bundle's job cut into hops, as the trivial one's (when the run could trace a cluster). */
  bundleHops?: WarmJobBreakdown;
  compareBin?: string;
}

/** Measures where `job`'s time goes on a traced cluster, with Docker's attach of `bytes` beside it. */
export type MeasureHops = (job: SubmitJobRequest, bytes: number) => Promise<WarmJobBreakdown>;

/**
 * A bundle of about 2 MiB with its source map (the bundle and its map
 * together, as `labrun submit` sends them): 7,900 small functions (≈1.1 MB
 * of code, ≈1 MB of map) behind an entry that counts them.
 */
async function twoMiBBundle(dir: string) {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "package.json"), '{"name":"bench-2mib","private":true}');
  let code = "";
  for (let i = 0; i < 7900; i++) {
    code += `export function f${i}(x) {\n  const y = x * ${i} + 1;\n  if (y > ${i * 7}) return y - ${i};\n  return [y, "v${i}"].join(":");\n}\n`;
  }
  writeFileSync(join(dir, "functions.js"), code);
  writeFileSync(
    join(dir, "main.mjs"),
    'import * as functions from "./functions.js";\nexport const main = () => Object.keys(functions).length > 0 ? 1 : 0;\n',
  );
  return bundleProgram(join(dir, "main.mjs"));
}

/**
 * The bundle as one file, its map inline (what `esbuild --sourcemap=inline`
 * writes): the pre-bundled program sends the same code and mappings as the
 * bundled one, in one file.
 */
function withInlineMap(files: Array<{ path: string; content: string }>): string {
  const [code, map] = files;
  if (!code || !map) throw new Error("the zod bundle has no source map file");
  const inline = Buffer.from(map.content).toString("base64");
  return code.content.replace(
    /\/\/# sourceMappingURL=\S+\s*$/,
    `//# sourceMappingURL=data:application/json;base64,${inline}\n`,
  );
}

/**
 * The rows of issue 15: `labrun submit` of a TypeScript entry importing zod
 * against the same program pre-bundled as one `.mjs` (and the trivial file,
 * against another build's CLI when BENCH_COMPARE_BIN names one); then a
 * warm ~2 MiB bundle against a 1 KiB program over HTTP, and the sweeps; with
 * `measureHops`, then the bundle's job cut into hops.
 */
export async function benchPrograms(
  samples: number,
  workDir: string,
  step: (text: string) => void,
  compareBin: string | undefined = process.env.BENCH_COMPARE_BIN,
  measureHops?: MeasureHops,
): Promise<ProgramsBench> {
  const trivial = join(workDir, "trivial.js");
  writeFileSync(trivial, `${TRIVIAL_SOURCE}\n`);
  const preBundled = join(workDir, "zod-prebundled.mjs");
  const zodBundle = await bundleProgram(ZOD_ENTRY);
  writeFileSync(preBundled, withInlineMap(zodBundle.files ?? []));
  const big = await twoMiBBundle(join(workDir, "bundle-2mib"));
  const bundleBytes = (big.files ?? []).reduce(
    (sum, file) => sum + Buffer.byteLength(file.content),
    0,
  );
  const oneKiB = `${TRIVIAL_SOURCE};\n//`.padEnd(1024, "x");

  const cluster = await launchCluster({ slots: 2, warm: 2 });
  let bench: ProgramsBench;
  try {
    await sleep(3_000); // the pool fills
    const client = new LabrunClient({ server: cluster.url, token: cluster.tokens.client });
    step(`programs: labrun submit of a TS entry with zod vs pre-bundled × ${samples}`);
    // The CLI's bundle cache, of this run alone.
    const cache = { XDG_CACHE_HOME: join(workDir, "cache") };
    const uncached = { ...cache, LABRUN_BUNDLE_CACHE: "0" };
    const cli =
      (args: string[], expect: string, bin?: string, env = cache) =>
      async () => {
        const out = await runCli(cluster, args, bin, env);
        if (out.trim() !== expect)
          throw new Error(`labrun ${args.join(" ")} printed ${out.trim()}`);
      };
    const cliRows: Record<string, () => Promise<void>> = {
      trivial: cli(["submit", trivial], "1"),
      ...(compareBin ? { trivialCompared: cli(["submit", trivial], "1", compareBin) } : {}),
      typescriptZod: cli(
        ["submit", ZOD_ENTRY, "--input", '{"x":2,"y":3}'],
        "5",
        undefined,
        uncached,
      ),
      typescriptZodCached: cli(["submit", ZOD_ENTRY, "--input", '{"x":2,"y":3}'], "5"),
      preBundledZod: cli(["submit", preBundled, "--input", '{"x":2,"y":3}'], "5"),
    };
    const cliMs = await interleave(samples, cliRows);
    step(`programs: a ${bundleBytes}-byte bundle vs a 1 KiB program over HTTP × ${samples}`);
    const httpMs = await interleave(samples, {
      program1KiB: () => httpJob(client, { source: oneKiB, limits: SLACK }),
      bundle2MiB: () =>
        httpJob(client, { files: big.files ?? [], entry: big.entry ?? "", limits: SLACK }),
    });
    step(
      `programs: labrun map × ${SWEEP_ITEMS} of the trivial, the TS + zod and a CommonJS zod program`,
    );
    const sweepItemsPerSecond = await sweeps(cluster, workDir);
    bench = {
      cliMs: cliMs as ProgramsBench["cliMs"],
      httpMs: httpMs as ProgramsBench["httpMs"],
      sweepItemsPerSecond,
      bundleBytes,
      ...(compareBin ? { compareBin } : {}),
    };
  } finally {
    await cluster.stop();
  }
  if (!measureHops) return bench;
  // On a traced cluster of its own, once the untraced rows' one has stopped.
  step(`programs: the ${bundleBytes}-byte bundle's job hop by hop × ${samples}`);
  const job = { files: big.files ?? [], entry: big.entry ?? "", limits: SLACK };
  return { ...bench, bundleHops: await measureHops(job, bundleBytes) };
}

/** Inputs of each sweep row. */
const SWEEP_ITEMS = 40;

/**
 * `labrun map` of SWEEP_ITEMS inputs, items/s, for: a one-file program; the
 * TypeScript entry that imports zod (bundled: files + entry, a container per
 * item); the same program bundled beforehand into one CommonJS file (sent as
 * one file: its items share a container).
 */
async function sweeps(
  cluster: Awaited<ReturnType<typeof launchCluster>>,
  workDir: string,
): Promise<ProgramsBench["sweepItemsPerSecond"]> {
  const inputs = join(workDir, "sweep.jsonl");
  writeFileSync(
    inputs,
    Array.from({ length: SWEEP_ITEMS }, (_, i) => `${JSON.stringify({ x: i, y: 1 })}\n`).join(""),
  );
  const plain = join(workDir, "sweep-plain.js");
  writeFileSync(plain, "exports.main = ({ x, y }) => x + y;\n");
  const commonJs = join(workDir, "sweep-zod.cjs.js");
  await build({
    entryPoints: [ZOD_ENTRY],
    bundle: true,
    platform: "node",
    format: "cjs",
    target: RUNNER_NODE_TARGET,
    outfile: commonJs,
    logLevel: "warning",
  });
  const rate = async (program: string) => {
    const started = performance.now();
    const out = await runCli(cluster, ["map", program, "--inputs", inputs], undefined, {
      LABRUN_BUNDLE_CACHE: "0",
    });
    const seconds = (performance.now() - started) / 1000;
    const lines = out.trim().split("\n");
    if (lines.length !== SWEEP_ITEMS) throw new Error(`labrun map printed ${lines.length} lines`);
    return Math.round((SWEEP_ITEMS / seconds) * 10) / 10;
  };
  return {
    trivial: await rate(plain),
    typescriptZod: await rate(ZOD_ENTRY),
    zodCommonJs: await rate(commonJs),
  };
}

/** One of each row per round, each PAUSE_MS after the one before; round 0 warms up. */
async function interleave(
  count: number,
  rows: Record<string, () => Promise<void>>,
): Promise<Record<string, Distribution>> {
  const times = Object.fromEntries(Object.keys(rows).map((name) => [name, [] as number[]]));
  for (let round = 0; round <= count; round++) {
    for (const [name, once] of Object.entries(rows)) {
      await sleep(PAUSE_MS);
      const started = performance.now();
      await once();
      if (round > 0) times[name]?.push(performance.now() - started);
    }
  }
  return Object.fromEntries(Object.entries(times).map(([name, t]) => [name, distribution(t)]));
}

async function httpJob(client: LabrunClient, job: SubmitJobRequest): Promise<void> {
  const { id } = await client.submit(job);
  const done = await client.wait(id, { timeoutMs: 60_000 });
  if (!done.outcome?.ok || done.outcome.result !== 1) {
    throw new Error(`job ${id} did not return 1: ${JSON.stringify(done.outcome)}`);
  }
}

const ms = (value: number) => String(Math.round(value * 100) / 100);

/** The programs section of latest.md. */
export function renderPrograms(bench: ProgramsBench): string {
  const { cliMs, httpMs } = bench;
  const row = (name: string, d: Distribution) => `| ${name} | ${ms(d.p50)} | ${ms(d.p95)} |`;
  const added = cliMs.typescriptZod.p50 - cliMs.preBundledZod.p50;
  const addedCached = cliMs.typescriptZodCached.p50 - cliMs.preBundledZod.p50;
  const bigGap = httpMs.bundle2MiB.p50 - httpMs.program1KiB.p50;
  return [
    "",
    "| Programs (issue 15) | p50 ms | p95 ms |",
    "| --- | ---: | ---: |",
    row("`labrun submit trivial.js` (no imports: not bundled)", cliMs.trivial),
    ...(cliMs.trivialCompared
      ? [
          row(
            "`labrun submit trivial.js`, the CLI before programs (BENCH_COMPARE_BIN)",
            cliMs.trivialCompared,
          ),
        ]
      : []),
    row(
      "`labrun submit main.ts` (TypeScript, imports zod: bundled by esbuild)",
      cliMs.typescriptZod,
    ),
    row(
      "`labrun submit main.ts` again, nothing changed (its bundle from the cache)",
      cliMs.typescriptZodCached,
    ),
    row(
      "`labrun submit zod-prebundled.mjs` (the same program, bundled once beforehand)",
      cliMs.preBundledZod,
    ),
    row("HTTP job, 1 KiB program (warm)", httpMs.program1KiB),
    row(
      `HTTP job, ${(bench.bundleBytes / 2 ** 20).toFixed(2)} MiB bundle with its source map (warm)`,
      httpMs.bundle2MiB,
    ),
    "",
    "| Programs target | wanted | measured | met |",
    "| --- | --- | --- | --- |",
    `| TS entry with zod p50 − pre-bundled p50, bundled each time | ≤ 100 ms | ${ms(added)} ms | ${added <= 100 ? "yes" : "**no**"} |`,
    `| the same, its bundle from the cache | ≤ 100 ms | ${ms(addedCached)} ms | ${addedCached <= 100 ? "yes" : "**no**"} |`,
    `| 2 MiB bundle p50 − 1 KiB program p50 (warm) | ≤ 20 ms | ${ms(bigGap)} ms | ${bigGap <= 20 ? "yes" : "**no**"} |`,
    "",
    `| Sweeps of a real program: \`labrun map\` of ${SWEEP_ITEMS} inputs on 2 slots | items/s |`,
    "| --- | ---: |",
    `| a one-file program (its items share a container) | ${bench.sweepItemsPerSecond.trivial} |`,
    `| \`main.ts\` importing zod, bundled by \`labrun map\` (files + entry: a container per item) | ${bench.sweepItemsPerSecond.typescriptZod} |`,
    `| the same program bundled beforehand into one CommonJS file (shared container, loaded afresh per item) | ${bench.sweepItemsPerSecond.zodCommonJs} |`,
    "",
    ...(bench.bundleHops ? renderBundleHops(bench.bundleHops, bench.bundleBytes) : []),
  ].join("\n");
}

/** The bundle's job, hop by hop: the same hops as the trivial job's table. */
function renderBundleHops(hops: WarmJobBreakdown, bytes: number): string[] {
  return [
    `| The ${(bytes / 2 ** 20).toFixed(2)} MiB bundle's job over HTTP, hop by hop (p50 of ${hops.jobs} traced jobs) | ms |`,
    "| --- | ---: |",
    ...Object.entries(hops.hopsMs).map(
      ([hop, value]) =>
        `| ${HOP_DESCRIPTIONS[hop as keyof typeof HOP_DESCRIPTIONS]} | ${ms(value)} |`,
    ),
    `| **total** (submit → result read) | **${ms(hops.totalMs)}** |`,
    `| of the container hop, Docker's attach in of the same ${bytes} bytes alone (a node that answers each line) | ${ms(hops.attachEchoMs)} |`,
    "",
  ];
}
