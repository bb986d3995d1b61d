/**
 * The coordinator under test, alone in its own process so that its CPU time
 * and RSS are its own: `node serve.js <dataDir>` starts it on 127.0.0.1 with
 * an OS-picked port and prints one JSON line on stdout,
 * `{"url","pid","tokens"}`. `node serve.js <dataDir> postgres://…` runs it
 * on that PostgreSQL store instead of the data dir's SQLite file
 * (coordinators given one database and one data dir share its rows and its
 * tokens.json).
 *
 * Then it reads commands, one JSON line each, on stdin and answers each with
 * one line on stdout: `{"profile":"start"}` and `{"profile":"stop","path"}`
 * run V8's CPU profiler (the one behind `node --cpu-prof`) around one bench
 * phase and write the `.cpuprofile` there, so each phase gets its own profile;
 * `{"memory":true}` answers with `process.memoryUsage()` right after a full GC
 * (launched with --expose-gc): the live heap, not garbage awaiting collection.
 * SIGTERM, or the parent closing stdin, stops it with a normal exit.
 */
import { writeFileSync } from "node:fs";
import { Session } from "node:inspector/promises";
import { createInterface } from "node:readline";
import pino from "pino";
import { startCoordinator } from "../../coordinator/main.js";

const dataDir = process.argv[2];
const store = process.argv[3];
if (!dataDir) {
  process.stderr.write("usage: serve.js <dataDir> [postgres://…]\n");
  process.exit(2);
}

// Logs go to stderr at the production default level (info): the same logging
// cost as `labrun coordinator`, and stdout stays free for the bench's lines.
const logger = pino(
  { level: process.env.LABRUN_LOG_LEVEL ?? "info" },
  pino.destination({ dest: 2, sync: true }),
);

const running = await startCoordinator(
  { host: "127.0.0.1", port: 0, dataDir, ...(store ? { store } : {}) },
  logger,
);
process.stdout.write(
  `${JSON.stringify({ url: running.url, pid: process.pid, tokens: running.tokens })}\n`,
);

let stopping = false;
const stop = () => {
  if (stopping) return;
  stopping = true;
  running.close().then(
    () => process.exit(0),
    (error: unknown) => {
      process.stderr.write(`close failed: ${String(error)}\n`);
      process.exit(1);
    },
  );
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);

const session = new Session();
session.connect();

async function command(line: string): Promise<object> {
  const { profile, path, memory } = JSON.parse(line) as {
    profile?: "start" | "stop";
    path?: string;
    memory?: boolean;
  };
  if (memory) {
    (globalThis as { gc?: () => void }).gc?.();
    return { memory: process.memoryUsage() };
  }
  if (profile === "start") {
    await session.post("Profiler.enable");
    await session.post("Profiler.start");
  } else if (profile === "stop" && path) {
    const { profile: taken } = await session.post("Profiler.stop");
    writeFileSync(path, JSON.stringify(taken));
  } else {
    throw new Error(`unknown command: ${line}`);
  }
  return {};
}

// A parent that dies without signalling us still closes this pipe: never outlive the bench.
const commands = createInterface({ input: process.stdin });
commands.on("line", (line) => {
  command(line).then(
    (answer) => process.stdout.write(`${JSON.stringify({ ok: true, ...answer })}\n`),
    (error: unknown) =>
      process.stdout.write(`${JSON.stringify({ ok: false, error: String(error) })}\n`),
  );
});
commands.on("close", stop);
