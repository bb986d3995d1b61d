import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { createInterface, type Interface } from "node:readline";
import { fileURLToPath } from "node:url";
import { processCpuSeconds } from "./cpu.js";

/** Memory of a process as the kernel counts it, in MiB. */
export interface ProcessMemory {
  rssMb: number;
  /** Peak RSS since the process started (VmHWM). */
  peakRssMb: number;
}

/** A bench server (coordinator or bare HTTP) running in a child process on loopback. */
export interface ChildServer<Started extends { url: string; pid: number }> {
  started: Started;
  /** Current RSS and peak RSS from /proc/<pid>/status. */
  memory(): ProcessMemory;
  /** CPU seconds (user + system) the child has used so far. */
  cpuSeconds(): number;
  /** Sends one command line; resolves with the child's one-line JSON answer. */
  command(message: object): Promise<Record<string, unknown>>;
  /** SIGTERM, wait for the exit (bounded, then SIGKILL), remove its temp dir. */
  stop(): Promise<void>;
}

/** What the coordinator's serve.js prints first. */
export interface CoordinatorStarted {
  url: string;
  pid: number;
  tokens: { client: string; admin: string; agent: string };
}

const START_TIMEOUT_MS = 15_000;
const STOP_TIMEOUT_MS = 10_000;
const COMMAND_TIMEOUT_MS = 30_000;

/** Where and on what the bench's coordinator runs; each left out keeps the default. */
export interface CoordinatorLaunch {
  /**
   * The store (`postgres://…`); left out, the SQLite file in the data dir.
   * Needs a build whose serve.js takes it (this one; an older one only for SQLite).
   */
  store?: string;
  /**
   * A data dir the caller owns and removes (a second coordinator on the same
   * database shares the first one's, for its tokens.json); left out, a fresh
   * temp dir removed on stop.
   */
  dataDir?: string;
  /**
   * Another build's dist/ (BENCH_COMPARE_DIST): its bench/coordinator/serve.js
   * is started instead of this build's, for a side-by-side row.
   */
  dist?: string;
}

/**
 * Starts the coordinator (`serve.js`, the sibling of this module in dist/,
 * or the one in `options.dist`) with a fresh temp data dir.
 *
 * @example
 * const coordinator = await launchCoordinator();
 * coordinator.memory().rssMb;
 * await coordinator.stop();
 */
export function launchCoordinator(
  options: CoordinatorLaunch = {},
): Promise<ChildServer<CoordinatorStarted>> {
  const owned = options.dataDir === undefined;
  const dataDir = options.dataDir ?? mkdtempSync(join(tmpdir(), "labrun-bench-"));
  const script = options.dist
    ? join(options.dist, "bench", "coordinator", "serve.js")
    : fileURLToPath(new URL("./serve.js", import.meta.url));
  const args = options.store === undefined ? [dataDir] : [dataDir, options.store];
  // --expose-gc lets the memory command tell live heap from garbage; nothing else calls gc().
  return launch<CoordinatorStarted>(script, args, owned ? dataDir : undefined, ["--expose-gc"]);
}

/** Starts the bare node:http server that gives this machine's HTTP ceiling. */
export function launchNullServer(): Promise<ChildServer<{ url: string; pid: number }>> {
  return launch(fileURLToPath(new URL("./null-serve.js", import.meta.url)), []);
}

/** Starts `node <path> <args>` and reads its first stdout line as what it started. */
async function launch<Started extends { url: string; pid: number }>(
  path: string,
  args: string[],
  tempDir?: string,
  nodeOptions: string[] = [],
): Promise<ChildServer<Started>> {
  const script = basename(path);
  const child = spawn(process.execPath, [...nodeOptions, path, ...args], {
    stdio: ["pipe", "pipe", "pipe"],
  });
  const removeTemp = () => {
    if (tempDir) rmSync(tempDir, { recursive: true, force: true });
  };
  // Its logs are kept (the tail only) to explain a failed start, not printed.
  let stderrTail = "";
  child.stderr?.on("data", (chunk: Buffer) => {
    stderrTail = (stderrTail + chunk.toString()).slice(-4000);
  });
  if (!child.stdout) throw new Error("no stdout pipe");
  const lines = createInterface({ input: child.stdout });

  let started: Started;
  try {
    started = JSON.parse(await nextLine(child, lines, START_TIMEOUT_MS)) as Started;
  } catch (error) {
    child.kill("SIGKILL");
    removeTemp();
    throw new Error(`${script} did not start: ${(error as Error).message}\n${stderrTail}`);
  }
  if (!started.url.startsWith("http://127.0.0.1:")) {
    child.kill("SIGKILL");
    removeTemp();
    throw new Error(`${script} listens on ${started.url}, not on 127.0.0.1`);
  }

  // One command at a time: answers come back in order on stdout.
  let commands: Promise<unknown> = Promise.resolve();
  let stopped: Promise<void> | undefined;
  return {
    started,
    memory: () => readMemory(started.pid),
    cpuSeconds: () => processCpuSeconds(started.pid),
    command(message) {
      const answer = commands.then(async () => {
        child.stdin?.write(`${JSON.stringify(message)}\n`);
        const reply = JSON.parse(await nextLine(child, lines, COMMAND_TIMEOUT_MS)) as {
          ok: boolean;
          error?: string;
        } & Record<string, unknown>;
        if (!reply.ok) throw new Error(`${script}: ${reply.error}`);
        return reply;
      });
      commands = answer.catch(() => undefined);
      return answer;
    },
    stop() {
      stopped ??= (async () => {
        if (child.exitCode === null && child.signalCode === null) {
          const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
          child.kill("SIGTERM");
          const timer = setTimeout(() => child.kill("SIGKILL"), STOP_TIMEOUT_MS);
          await exited;
          clearTimeout(timer);
        }
        lines.close();
        removeTemp();
      })();
      return stopped;
    },
  };
}

/** The child's next stdout line; rejects if it exits or stays silent for `timeoutMs`. */
function nextLine(child: ChildProcess, lines: Interface, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const done = () => {
      clearTimeout(timer);
      lines.off("line", onLine);
      child.off("exit", onExit);
    };
    const onLine = (line: string) => {
      done();
      resolve(line);
    };
    const onExit = (code: number | null) => {
      done();
      reject(new Error(`it exited with code ${code}`));
    };
    const timer = setTimeout(() => {
      done();
      reject(new Error(`no answer within ${timeoutMs} ms`));
    }, timeoutMs);
    lines.on("line", onLine);
    child.once("exit", onExit);
  });
}

/** RSS and peak RSS of a process, from /proc/<pid>/status (throws when it is gone). */
export function readMemory(pid: number): ProcessMemory {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kib = (field: string) =>
    Number(new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(status)?.[1]);
  return { rssMb: mib(kib("VmRSS")), peakRssMb: mib(kib("VmHWM")) };
}

const mib = (kib: number) => Math.round((kib / 1024) * 10) / 10;
