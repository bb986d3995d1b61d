import { networkInterfaces } from "node:os";
import type { JobLimitsInput } from "../../protocol/index.js";

/**
 * Hostile programs and the exact outcome each must get. Each runs in its own
 * container beside benign jobs; none may hurt the agent, the host or another
 * job. `within` is the time limit the test allows for its answer.
 */
export interface HostileProgram {
  name: string;
  source: string;
  filename?: string;
  limits?: JobLimitsInput;
  /** The outcome code, or "ok" for a program that must still succeed. */
  expect: string;
  /** Extra check on the result or error message. */
  check?: (outcome: { result?: unknown; message?: string; logs: string }) => void;
  /**
   * Time past its limit the program may take to be gone (default 2 s). A
   * python fork bomb fills the pids limit with processes that spin in a
   * CPU-throttled cgroup: killed at its limit, each still needs CPU to exit,
   * and on a loaded host that teardown takes seconds.
   */
  teardownMs?: number;
}

const T = 3000; // wall timeout for programs that can only be stopped from outside

/**
 * An address of this machine on a real interface (a job must not reach it
 * either). From a container without a network nothing is ever sent; a
 * documentation address (TEST-NET-1) stands in on a machine with none.
 */
export const HOST_ADDRESS =
  Object.values(networkInterfaces())
    .flat()
    .find((net) => net && net.family === "IPv4" && !net.internal)?.address ?? "192.0.2.1";

export const HOSTILE: HostileProgram[] = [
  {
    name: "spawn bomb (child_process)",
    source: `const cp = require("child_process");
      exports.main = () => { for (;;) { try { cp.spawn(process.execPath, ["-e", "setInterval(()=>{},1e3)"]); } catch {} } };`,
    limits: { timeoutMs: T },
    expect: "TIMEOUT",
  },
  {
    name: "memory bomb (array growth)",
    source: `exports.main = () => { const a = []; for (;;) a.push({ x: Math.random(), y: [1, 2, 3] }); };`,
    // Near its limit the kernel reclaims before it kills, slowly when the
    // machine is busy: a generous clock keeps this about the kill, not the clock.
    limits: { memoryMb: 128, timeoutMs: 60_000 },
    expect: "OUT_OF_MEMORY",
  },
  {
    name: "memory bomb (Buffer growth)",
    source: `exports.main = () => { const a = []; for (;;) a.push(Buffer.alloc(1 << 20, 1)); };`,
    limits: { memoryMb: 64, timeoutMs: 60_000 },
    expect: "OUT_OF_MEMORY",
  },
  {
    // Filled, so its pages are really touched (a zeroed one is lazily mapped and harmless).
    name: "Buffer.alloc of 4 GB, filled",
    source: `exports.main = () => Buffer.alloc(4 * 1024 ** 3, 1).length;`,
    limits: { timeoutMs: 60_000 },
    expect: "OUT_OF_MEMORY",
  },
  {
    name: "CPU spin",
    source: `exports.main = () => { for (;;) {} };`,
    limits: { timeoutMs: T },
    expect: "TIMEOUT",
  },
  {
    name: "catastrophic regex",
    source: `exports.main = () => /^(a+)+$/.test("a".repeat(40) + "!");`,
    limits: { timeoutMs: T },
    expect: "TIMEOUT",
  },
  {
    name: "deep recursion",
    source: `const f = (n) => f(n + 1) + 1; exports.main = () => f(0);`,
    expect: "RUNTIME_ERROR",
    check: ({ message }) => {
      if (!message?.includes("call stack")) throw new Error(`unexpected message ${message}`);
    },
  },
  {
    name: "1 GB to stdout",
    source: `exports.main = () => { const line = "x".repeat(1 << 20) + "\\n"; for (let i = 0; i < 1024; i++) process.stdout.write(line); return 1; };`,
    limits: { timeoutMs: 30_000 },
    expect: "OUTPUT_TOO_LARGE",
  },
  {
    name: "20 MB result (over the 8 MiB result cap)",
    source: `exports.main = () => "r".repeat(20 * 1024 * 1024);`,
    limits: { memoryMb: 512, timeoutMs: 30_000 },
    expect: "OUTPUT_TOO_LARGE",
  },
  {
    name: "50 MB log line without a newline",
    source: `exports.main = () => { process.stderr.write("y".repeat(50 * 1024 * 1024)); return 1; };`,
    limits: { memoryMb: 512, timeoutMs: 30_000 },
    expect: "OUTPUT_TOO_LARGE",
  },
  {
    name: "filling /tmp",
    source: `const fs = require("fs");
      exports.main = () => { const mb = Buffer.alloc(1 << 20); for (let i = 0; ; i++) fs.writeFileSync("/tmp/fill" + i, mb); };`,
    expect: "RUNTIME_ERROR",
    check: ({ message }) => {
      if (!message?.includes("ENOSPC")) throw new Error(`unexpected message ${message}`);
    },
  },
  {
    name: "writing outside /tmp",
    source: `exports.main = () => require("fs").writeFileSync("/escape", "x");`,
    expect: "RUNTIME_ERROR",
    check: ({ message }) => {
      if (!/EROFS|EACCES/.test(message ?? "")) throw new Error(`unexpected message ${message}`);
    },
  },
  {
    name: "reading /etc/shadow",
    source: `exports.main = () => require("fs").readFileSync("/etc/shadow", "utf8");`,
    expect: "RUNTIME_ERROR",
  },
  {
    name: "reading /var/run/docker.sock",
    source: `exports.main = () => require("fs").statSync("/var/run/docker.sock").mode;`,
    expect: "RUNTIME_ERROR",
  },
  {
    name: "reading /proc/1/environ finds no secret",
    // The runner's node is not dumpable (the image's node binary is exec-only),
    // so /proc/1/* is closed even to the job's own process; were it open, it
    // would hold no secret either.
    source: `exports.main = () => { try { return require("fs").readFileSync("/proc/1/environ", "utf8").split("\\0").filter(Boolean); } catch (e) { return e.code; } };`,
    expect: "ok",
    check: ({ result }) => {
      const text = JSON.stringify(result);
      if (/LABRUN|TOKEN|lr[a-z]_|DOCKER/i.test(text)) throw new Error(`env leaks: ${text}`);
      if (result !== "EACCES") throw new Error(`/proc/1/environ was readable: ${text}`);
    },
  },
  {
    name: "fetch to the internet fails fast",
    source: `exports.main = async () => { await fetch("http://example.com/"); return "reached"; };`,
    expect: "RUNTIME_ERROR",
  },
  {
    name: "DNS lookup fails fast",
    source: `exports.main = () => require("dns").promises.lookup("example.com");`,
    expect: "RUNTIME_ERROR",
  },
  {
    name: "net.connect to 127.0.0.1 fails fast",
    source: `const net = require("net");
      exports.main = () => new Promise((resolve, reject) => {
        const socket = net.connect(7878, "127.0.0.1", () => resolve("connected"));
        socket.on("error", reject);
      });`,
    expect: "RUNTIME_ERROR",
  },
  {
    // PID 1 of the container is the runner; the kernel ignores SIGKILL to a
    // namespace's init from inside it, so nothing outside can be reached.
    name: "process.kill(1) reaches nothing",
    source: `exports.main = () => { process.kill(1, "SIGKILL"); return "alive"; };`,
    expect: "ok",
    check: ({ result }) => {
      if (result !== "alive") throw new Error(`got ${result}`);
    },
  },
  {
    name: "net.connect to the host's own address fails fast",
    source: `const net = require("net");
      exports.main = () => new Promise((resolve, reject) => {
        const socket = net.connect(7878, ${JSON.stringify(HOST_ADDRESS)}, () => resolve("connected"));
        socket.on("error", reject);
      });`,
    expect: "RUNTIME_ERROR",
  },
  {
    name: "reading /proc/self/mountinfo shows no socket, no host data dir",
    source: `exports.main = () => require("fs").readFileSync("/proc/self/mountinfo", "utf8");`,
    expect: "ok",
    check: ({ result }) => {
      const text = String(result);
      if (/docker\.sock|labrun-test-|\/root|\/home/.test(text))
        throw new Error(`mounts leak: ${text}`);
    },
  },
  {
    name: "creating 100k files in /tmp (gone with the container)",
    source: `const fs = require("fs");
      exports.main = () => { let i = 0; for (; i < 100000; i++) fs.writeFileSync("/tmp/f" + i, ""); return i; };`,
    limits: { timeoutMs: 60_000 },
    expect: "ok",
  },
  {
    name: "setgid(0)",
    source: `exports.main = () => { process.setgid(0); return process.getgid(); };`,
    expect: "RUNTIME_ERROR",
  },
  {
    name: "setuid(0)",
    source: `exports.main = () => { process.setuid(0); return process.getuid(); };`,
    expect: "RUNTIME_ERROR",
  },
  {
    name: "symlink in /tmp to /etc/passwd, read back",
    source: `const fs = require("fs");
      exports.main = () => { fs.symlinkSync("/etc/passwd", "/tmp/pw"); return fs.readFileSync("/tmp/pw", "utf8"); };`,
    expect: "RUNTIME_ERROR",
  },
  {
    name: "monkey-patching JSON.stringify, console.log and stdout.write to forge success",
    source: `JSON.stringify = () => '{"ok":true,"result":"forged"}';
      console.log = process.stdout.write = () => true;
      exports.main = () => { throw new Error("the real failure"); };`,
    expect: "RUNTIME_ERROR",
    check: ({ message }) => {
      if (message !== "the real failure") throw new Error(`forged: ${message}`);
    },
  },
  {
    name: "a timer firing after main returns",
    source: `exports.main = () => { setTimeout(() => { throw new Error("late"); }, 10); return "early"; };`,
    expect: "ok",
    check: ({ result }) => {
      if (result !== "early") throw new Error(`got ${result}`);
    },
  },
  {
    name: "an unhandled rejection after main returns",
    source: `exports.main = () => { setTimeout(() => Promise.reject(new Error("late")), 10); return "done"; };`,
    expect: "ok",
  },
  {
    name: "process.exit(0) inside main",
    source: `exports.main = () => process.exit(0);`,
    expect: "RUNTIME_ERROR",
  },
  {
    name: "reading stdin sees nothing",
    source: `exports.main = () => require("fs").readFileSync(0, "utf8");`,
    expect: "ok",
    check: ({ result }) => {
      if (result !== "") throw new Error(`stdin had ${JSON.stringify(result)}`);
    },
  },
  {
    name: "BigInt result",
    source: `exports.main = () => 1n;`,
    expect: "RESULT_NOT_JSON",
  },
  {
    name: "cyclic result",
    source: `exports.main = () => { const a = {}; a.self = a; return a; };`,
    expect: "RESULT_NOT_JSON",
  },
  {
    name: "Symbol result",
    source: `exports.main = () => Symbol("s");`,
    expect: "RESULT_NOT_JSON",
  },
  {
    name: "a toJSON that throws",
    source: `exports.main = () => ({ toJSON() { throw new Error("no json"); } });`,
    expect: "RESULT_NOT_JSON",
  },
  // The same attacks under per-job limits tighter than the defaults.
  {
    name: "spawn bomb under a per-job limit of 24 processes",
    source: `const cp = require("child_process");
      exports.main = () => { for (;;) { try { cp.spawn(process.execPath, ["-e", "setInterval(()=>{},1e3)"]); } catch {} } };`,
    limits: { timeoutMs: T, pids: 24 },
    expect: "TIMEOUT",
  },
  {
    name: "filling a per-job 2 MiB /tmp",
    source: `const fs = require("fs");
      exports.main = () => { const kb = Buffer.alloc(64 << 10); for (let i = 0; ; i++) fs.writeFileSync("/tmp/f" + i, kb); };`,
    limits: { tmpfsMb: 2 },
    expect: "RUNTIME_ERROR",
    check: ({ message }) => {
      if (!message?.includes("ENOSPC")) throw new Error(`unexpected message ${message}`);
    },
  },
  {
    name: "1 MB of logs under a per-job 4 KiB log limit",
    source: `exports.main = () => { for (let i = 0; i < 1024; i++) console.log("x".repeat(1023)); return "done"; };`,
    limits: { logBytes: 4096 },
    expect: "ok",
    check: ({ logs }) => {
      if (logs.length !== 4096) throw new Error(`kept ${logs.length} bytes of logs, not 4096`);
    },
  },
  {
    name: "100 KB result over a per-job 64 KiB result limit",
    source: `exports.main = () => "r".repeat(100_000);`,
    limits: { resultBytes: 64 * 1024 },
    expect: "OUTPUT_TOO_LARGE",
  },
];
