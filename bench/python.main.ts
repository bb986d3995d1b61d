/**
 * `node dist/bench/python.main.js`: the Python rows of `npm run bench` alone
 * (BENCH_SAMPLES jobs per row, default 30), printed as markdown.
 */
import { connectDocker } from "../agent/docker.js";
import { benchPython, renderPython } from "./e2e/python.js";

const samples = Number(process.env.BENCH_SAMPLES ?? 30);
const bench = await benchPython(await connectDocker(), samples, (text) =>
  process.stderr.write(`bench: ${text}\n`),
);
process.stdout.write(renderPython(bench));
process.stdout.write(`\n${JSON.stringify(bench, null, 2)}\n`);
