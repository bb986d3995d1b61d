import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { labrun } from "./helpers/cli.js";
import { startTestCluster, type TestCluster } from "./helpers/cluster.js";

let cluster: TestCluster;
let env: Record<string, string>;
let dir: string;
const program = (name: string, source: string) => {
  const file = join(dir, name);
  writeFileSync(file, source);
  return file;
};

beforeAll(async () => {
  cluster = await startTestCluster({ agents: [2] });
  dir = mkdtempSync(join(tmpdir(), "labrun-cli-"));
  env = {
    LABRUN_SERVER: cluster.url,
    LABRUN_TOKEN: cluster.tokens.client,
    LABRUN_ADMIN_TOKEN: cluster.tokens.admin,
    // Isolate from any real config or data dir on this machine.
    LABRUN_CONFIG: join(dir, "no-config.json"),
    LABRUN_DATA_DIR: join(dir, "no-data"),
  };
});
afterAll(async () => {
  await cluster?.close();
});

const noStack = (text: string) => expect(text).not.toMatch(/\n\s+at .+:\d+:\d+/);

describe.concurrent("labrun CLI exit codes", () => {
  it("exits 0 and prints main()'s JSON on stdout for a successful job", async () => {
    const file = program(
      "sum.js",
      `exports.main = (i) => { console.log("log line"); return { sum: i.a + i.b }; };`,
    );
    const out = await labrun(["submit", file, "--input", '{"a":2,"b":3}'], env);
    expect(out.code).toBe(0);
    expect(JSON.parse(out.stdout)).toEqual({ sum: 5 });
    expect(out.stderr).toContain("log line");
  });

  it("reads the input from --input-file", async () => {
    const file = program("echo.js", `exports.main = (i) => i;`);
    const inputFile = join(dir, "input.json");
    writeFileSync(inputFile, '{"from":"file"}');
    const out = await labrun(["submit", file, "--input-file", inputFile], env);
    expect(out.code).toBe(0);
    expect(JSON.parse(out.stdout)).toEqual({ from: "file" });
  });

  it("exits 1 with the error code on stderr when the job fails", async () => {
    const file = program("bad.js", `exports.nope = 1;`);
    const out = await labrun(["submit", file], env);
    expect(out.code).toBe(1);
    expect(out.stderr).toContain("BAD_PROGRAM_FORMAT: Bad program format");
    noStack(out.stderr);
  });

  it("runs a job with the limits given as flags", async () => {
    const file = program(
      "limits.js",
      `exports.main = () => { process.stdout.write("z".repeat(3000)); const fs = require("fs"); const v1 = "/sys/fs/cgroup/pids/pids.max"; return fs.readFileSync(fs.existsSync(v1) ? v1 : "/sys/fs/cgroup/pids.max", "utf8").trim(); };`,
    );
    const out = await labrun(
      ["submit", file, "--pids", "48", "--log-bytes", "1k", "--tmpfs", "4m", "--json"],
      env,
    );
    expect(out.code).toBe(0);
    const job = JSON.parse(out.stdout);
    expect(job.limits).toMatchObject({ pids: 48, logBytes: 1024, tmpfsMb: 4 });
    expect(job.outcome).toMatchObject({ ok: true, result: "48", logs: "z".repeat(1024) });
  });

  it("exits 1 with TIMEOUT for a program over --timeout", async () => {
    const file = program("spin.js", `exports.main = () => { for (;;) {} };`);
    const out = await labrun(["submit", file, "--timeout", "1s"], env);
    expect(out.code).toBe(1);
    expect(out.stderr).toContain("TIMEOUT");
  });

  it("submits with --detach, then status, wait and logs by id", async () => {
    const file = program(
      "detach.js",
      `exports.main = () => { console.log("hi there"); return 9; };`,
    );
    const submitted = await labrun(["submit", file, "--detach"], env);
    expect(submitted.code).toBe(0);
    const id = submitted.stdout.trim();
    expect(id).toMatch(/^[A-Za-z0-9_-]+$/);
    const waited = await labrun(["wait", id], env);
    expect(waited.code).toBe(0);
    expect(JSON.parse(waited.stdout)).toBe(9);
    const status = await labrun(["status", id, "--json"], env);
    expect(status.code).toBe(0);
    expect(JSON.parse(status.stdout).state).toBe("succeeded");
    const logs = await labrun(["logs", id], env);
    expect(logs.code).toBe(0);
    expect(logs.stdout).toContain("hi there");
  });

  it("prints the whole job with --json", async () => {
    const file = program("json.js", `exports.main = () => "x";`);
    const out = await labrun(["submit", file, "--json"], env);
    expect(out.code).toBe(0);
    const job = JSON.parse(out.stdout);
    expect(job.state).toBe("succeeded");
    expect(job.outcome.result).toBe("x");
  });

  it("cancels a job by id", async () => {
    const file = program(
      "forever.js",
      `exports.main = () => new Promise(() => setInterval(() => {}, 1000));`,
    );
    const submitted = await labrun(["submit", file, "--detach", "--timeout", "60s"], env);
    const id = submitted.stdout.trim();
    const out = await labrun(["cancel", id], env);
    expect(out.code).toBe(0);
    expect(out.stdout).toContain("cancelled");
    const waited = await labrun(["wait", id], env);
    expect(waited.code).toBe(1);
    expect(waited.stderr).toContain("CANCELLED");
  });

  it("lists jobs and nodes", async () => {
    const jobs = await labrun(["jobs", "--limit", "5"], env);
    expect(jobs.code).toBe(0);
    expect(jobs.stdout).toContain("STATE");
    const nodes = await labrun(["nodes"], env);
    expect(nodes.code).toBe(0);
    expect(nodes.stdout).toContain(cluster.agents[0]?.name ?? "?");
    const nodesJson = await labrun(["nodes", "--json"], env);
    expect(JSON.parse(nodesJson.stdout).nodes[0].slots).toBe(2);
  });

  it.each([
    ["an unknown command", ["frobnicate"]],
    ["submit without a file", ["submit"]],
    ["a missing program file", ["submit", "/nonexistent/prog.js"]],
    ["an unknown flag", ["submit", "x.js", "--bogus"]],
    ["input that is not JSON", ["submit", "PROGRAM", "--input", "{nope"]],
    ["a bad --timeout", ["submit", "PROGRAM", "--timeout", "soon"]],
    ["a bad --memory", ["submit", "PROGRAM", "--memory", "lots"]],
    ["a --pids under the protocol's range", ["submit", "PROGRAM", "--pids", "3"]],
    ["a bad --log-bytes", ["submit", "PROGRAM", "--log-bytes", "much"]],
    [
      "an agent --max-tmpfs past the range",
      ["agent", "--server", "http://127.0.0.1:9", "--token", "t", "--max-tmpfs", "9g"],
    ],
    [
      "an agent seccomp profile that does not exist",
      [
        "agent",
        "--server",
        "http://127.0.0.1:9",
        "--token",
        "t",
        "--seccomp-profile",
        "/nonexistent/seccomp.json",
      ],
    ],
    [
      "a coordinator --default-cpus that is not a number",
      ["coordinator", "--default-cpus", "many"],
    ],
    ["both --input and --input-file", ["submit", "PROGRAM", "--input", "1", "--input-file", "f"]],
    ["a malformed job id", ["status", "../../etc"]],
    ["an unknown job id", ["status", "j_doesnotexist"]],
  ])("exits 2 with one line for %s", async (_what, args) => {
    const file = program("ok.js", "exports.main = () => 1;");
    const out = await labrun(
      args.map((arg) => (arg === "PROGRAM" ? file : arg)),
      env,
    );
    expect(out.code).toBe(2);
    expect(out.stderr.trim().split("\n")).toHaveLength(1);
    expect(out.stderr).toMatch(/^labrun: /);
  });

  it("exits 3 when the server is unreachable", async () => {
    const file = program("ok2.js", "exports.main = () => 1;");
    const out = await labrun(["submit", file], { ...env, LABRUN_SERVER: "http://127.0.0.1:9" });
    expect(out.code).toBe(3);
    expect(out.stderr).toContain("cannot reach the labrun coordinator");
    noStack(out.stderr);
  });

  it("exits 3 when the token is wrong", async () => {
    const file = program("ok3.js", "exports.main = () => 1;");
    const out = await labrun(["submit", file], { ...env, LABRUN_TOKEN: "wrong" });
    expect(out.code).toBe(3);
    expect(out.stderr).toContain("UNAUTHORIZED");
  });

  it("exits 3 when a client token asks for the admin node list", async () => {
    const out = await labrun(["nodes"], { ...env, LABRUN_ADMIN_TOKEN: cluster.tokens.client });
    expect(out.code).toBe(3);
    expect(out.stderr).toContain("FORBIDDEN");
  });
});

// Not concurrent with the jobs above: draining the only node would hold them.
describe("labrun nodes drain|resume and doctor", () => {
  it("drains a node by name, resumes it, and says so", async () => {
    const name = cluster.agents[0]?.name ?? "?";
    const drained = await labrun(["nodes", "drain", name], env);
    expect(drained.code).toBe(0);
    expect(drained.stdout).toContain(`${name} (`);
    expect(drained.stdout).toContain("is draining");
    expect((await cluster.admin.nodes())[0]?.state).toBe("draining");
    const resumed = await labrun(["nodes", "resume", name, "--json"], env);
    expect(resumed.code).toBe(0);
    expect(JSON.parse(resumed.stdout).state).toBe("ready");
    const unknown = await labrun(["nodes", "drain", "no-such-node"], env);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('no node named or with id "no-such-node"');
  });

  it("doctor passes every check against a working cluster, and fails one with a wrong token", async () => {
    const healthy = await labrun(["doctor", "--json"], env);
    expect(healthy.code).toBe(0);
    const checks = JSON.parse(healthy.stdout).checks as Array<{ name: string; status: string }>;
    expect(checks.map((check) => check.name)).toEqual([
      "docker",
      "runner image",
      "python image",
      "coordinator",
      "clock",
      "client token",
      "admin token",
      "nodes",
    ]);
    expect(checks.filter((check) => check.status === "fail")).toEqual([]);
    // The global setup built it from this machine's python3.
    expect(checks.find((check) => check.name === "python image")?.status).toBe("ok");
    const wrong = await labrun(["doctor"], { ...env, LABRUN_TOKEN: "not-the-token" });
    expect(wrong.code).toBe(3);
    expect(wrong.stdout).toMatch(/FAIL\s+client token\s+refused \(UNAUTHORIZED\)/);
  });
});
