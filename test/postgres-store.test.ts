import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import {
  closeSync,
  existsSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
import { type RunningAgent, startAgent } from "../agent/main.js";
import { freePort } from "../bench/e2e/processes.js";
import { LabrunClient } from "../client/api.js";
import { usePostgresDatabase } from "../coordinator/test-support/postgres.js";
import { bounded, killGroup, tail, waitFor } from "./faults/helpers/processes.js";
import { SLOWDOWN, testLogger } from "./helpers/cluster.js";
import { runPrefix } from "./helpers/run-id.js";

/**
 * `labrun coordinator` on PostgreSQL as a user runs it: real coordinator
 * processes (`--store postgres://…`, or LABRUN_STORE), a real agent on the
 * real Docker engine, real HTTP on loopback. Each test has a database of its
 * own, so the coordinators' tables start empty.
 */
const CLI = fileURLToPath(new URL("../dist/client/cli.js", import.meta.url));
const single = usePostgresDatabase();
const shared = usePostgresDatabase();
const withUsers = usePostgresDatabase();
const withTokens = usePostgresDatabase();

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

interface CoordinatorProcess {
  url: string;
  child: ChildProcess;
  logFile: string;
  tokens: { client: string; admin: string; agent: string };
  stop(): Promise<void>;
}

/**
 * `labrun coordinator` on a free loopback port over `dataDir`, with its store
 * given by `--store URL` or by LABRUN_STORE; resolves once /readyz answers.
 */
async function startCoordinator(
  dataDir: string,
  store: { flag: string } | { env: string },
): Promise<CoordinatorProcess> {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run \`npm run build\` first`);
  const port = await freePort();
  const logFile = join(dataDir, `coordinator-${port}.log`);
  const fd = openSync(logFile, "a");
  const args = ["coordinator", "--host", "127.0.0.1", "--port", String(port)];
  args.push("--data-dir", dataDir, ...("flag" in store ? ["--store", store.flag] : []));
  const child = spawn(process.execPath, [CLI, ...args], {
    stdio: ["ignore", fd, fd],
    detached: true,
    env: {
      ...process.env,
      LABRUN_LOG_LEVEL: "info",
      LABRUN_STORE: "env" in store ? store.env : "",
    },
  });
  closeSync(fd);
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const running = () => child.exitCode === null && child.signalCode === null;
  const stop = async () => {
    if (!running()) return;
    killGroup(child, "SIGTERM");
    await bounded(exited, 15_000, "the coordinator to stop").catch(() => {
      killGroup(child, "SIGKILL");
    });
  };
  cleanups.push(stop);
  const url = `http://127.0.0.1:${port}`;
  await waitFor(
    `the coordinator on ${url} to answer /readyz`,
    async () => {
      if (!running()) throw new Error(`exited during start-up:\n${tail(logFile, 20)}`);
      return (await fetch(`${url}/readyz`).catch(() => undefined))?.ok === true;
    },
    { timeoutMs: 30_000 * SLOWDOWN, intervalMs: 50 },
  );
  const tokens = JSON.parse(readFileSync(join(dataDir, "tokens.json"), "utf8"));
  return { url, child, logFile, tokens, stop };
}

/** A fresh data dir (tokens.json only: the rows are in PostgreSQL), removed after the test. */
function dataDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "labrun-pg-"));
  cleanups.push(async () => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** A real agent in this process (as test/helpers/cluster.ts starts them), closed after the test. */
async function agentOn(server: string, token: string): Promise<RunningAgent> {
  const name = `${runPrefix()}pg${randomBytes(3).toString("hex")}`;
  const agent = await startAgent({ server, token, name, slots: 1, warmPool: 0 }, testLogger);
  cleanups.push(() => agent.close());
  return agent;
}

const clientOf = (coordinator: CoordinatorProcess, token = coordinator.tokens.client) =>
  new LabrunClient({ server: coordinator.url, token });

describe("labrun coordinator on PostgreSQL", () => {
  it("runs a job end to end with --store postgres://…, its rows in the database", async () => {
    const dir = dataDir();
    const coordinator = await startCoordinator(dir, { flag: single.url() });
    const agent = await agentOn(coordinator.url, coordinator.tokens.agent);
    const client = clientOf(coordinator);
    const { id } = await client.submit({ source: "exports.main = (n) => n * 2", input: 21 });
    const job = await client.wait(id, { timeoutMs: 60_000 * SLOWDOWN });
    expect(job).toMatchObject({ state: "succeeded", node: agent.name });
    expect(job.outcome).toMatchObject({ ok: true, result: 42 });
    // The job is PostgreSQL's row, not a SQLite file's: nothing but tokens.json in the data dir.
    const sql = single.connect("public");
    const [row] = await sql.unsafe("SELECT state, agent_id FROM jobs WHERE id = $1", [id]);
    expect(row).toEqual({ state: "succeeded", agent_id: agent.agentId });
    expect(existsSync(join(dir, "labrun.db"))).toBe(false);
    expect(readFileSync(coordinator.logFile, "utf8")).toMatch(
      /"store":"postgres:\/\/postgres@127\.0\.0\.1:\d+\/labrun_test_/,
    );
  });

  it("two coordinators on one database: a job submitted on one is seen on the other, an agent registered through one works through the other", async () => {
    // One data dir, so both read the same tokens.json; data dirs of their
    // own get the database's tokens too (the test further down).
    const dir = dataDir();
    const first = await startCoordinator(dir, { flag: shared.url() });
    const second = await startCoordinator(dir, { env: shared.url() });
    expect(second.tokens).toEqual(first.tokens);

    // Submitted on the first, with no agent yet: the second has it, queued.
    const queued = await clientOf(first).submit({ source: "exports.main = () => 'one'" });
    expect((await clientOf(second).get(queued.id)).state).toBe("queued");
    expect((await clientOf(second).list()).jobs.map((job) => job.id)).toEqual([queued.id]);

    // The agent prefers the first coordinator: it registers and runs the job through it.
    const agent = await agentOn(`${first.url},${second.url}`, first.tokens.agent);
    const one = await clientOf(first).wait(queued.id, { timeoutMs: 60_000 * SLOWDOWN });
    expect(one).toMatchObject({ state: "succeeded", node: agent.name });
    expect((await clientOf(second).get(queued.id)).outcome).toMatchObject({ result: "one" });
    const nodes = await clientOf(second, second.tokens.admin).nodes();
    expect(nodes.map((node) => node.id)).toEqual([agent.agentId]);

    // The first goes away; the agent's own token (its hash is a row) is
    // good on the second, which leases it the next job and takes its result.
    await first.stop();
    const next = await clientOf(second).submit({ source: "exports.main = () => 'two'" });
    const two = await clientOf(second).wait(next.id, { timeoutMs: 60_000 * SLOWDOWN });
    expect(two).toMatchObject({ state: "succeeded", node: agent.name });
    expect(two.outcome).toMatchObject({ result: "two" });
    const after = await clientOf(second, second.tokens.admin).nodes();
    // The same agent, never registered again: one node that ran both jobs.
    expect(after.map((node) => [node.id, node.jobsDone])).toEqual([[agent.agentId, 2]]);
  });

  it("two coordinators on one database share users: added through one, their token works on the other; removed through it, it stops on the first", async () => {
    const dir = dataDir();
    const first = await startCoordinator(dir, { flag: withUsers.url() });
    const second = await startCoordinator(dir, { flag: withUsers.url() });
    const alice = await clientOf(first, first.tokens.admin).addUser({
      name: "alice",
      maxQueued: 1,
    });

    // Submitted with alice's token on the second: hers, as the first reads it.
    const { id } = await clientOf(second, alice.token).submit({ source: "exports.main = () => 1" });
    expect(
      (await clientOf(first)
        .get(id)
        .catch((error: unknown) => error)) as object,
    ).toMatchObject({
      status: 404,
    });
    expect((await clientOf(first, alice.token).get(id)).owner).toBe("alice");
    // Her max-queued quota holds across coordinators: the row counts her queued job.
    expect(
      (await clientOf(first, alice.token)
        .submit({ source: "exports.main = () => 2" })
        .catch((error: unknown) => error)) as object,
    ).toMatchObject({ status: 429 });
    const listed = await clientOf(second, second.tokens.admin).users();
    expect(listed.find((user) => user.name === "alice")).toMatchObject({ queued: 1 });

    // Removed through the second: her token stops on the first, her queued job is cancelled.
    await clientOf(second, second.tokens.admin).removeUser("alice");
    expect(
      (await clientOf(first, alice.token)
        .list()
        .catch((error: unknown) => error)) as object,
    ).toMatchObject({ status: 401 });
    expect((await clientOf(first, first.tokens.admin).get(id)).state).toBe("cancelled");
    const audit = await clientOf(first, first.tokens.admin).audit();
    expect(audit.entries.map((entry) => entry.action)).toEqual(["user.rm", "user.add"]);
  });

  it("two coordinators with data dirs of their own on one database accept the same tokens, which a restart keeps", async () => {
    const firstDir = dataDir();
    const secondDir = dataDir();
    // The second's data dir holds a tokens.json of its own from an earlier life: the database's win.
    const first = await startCoordinator(firstDir, { flag: withTokens.url() });
    const stale = {
      client: "lrc_stale-client-0123456789",
      admin: "lra_stale-admin-0123456789",
      agent: "lrj_stale-agent-0123456789",
    };
    writeFileSync(join(secondDir, "tokens.json"), JSON.stringify(stale), { mode: 0o600 });
    const second = await startCoordinator(secondDir, { flag: withTokens.url() });
    expect(second.tokens).toEqual(first.tokens);
    expect(statSync(join(secondDir, "tokens.json")).mode & 0o777).toBe(0o600);
    expect(readFileSync(second.logFile, "utf8")).toMatch(/tokens\.json held other tokens/);

    // Each accepts the other's admin and client tokens, and the stale ones nowhere.
    const { id } = await clientOf(first).submit({ source: "exports.main = () => 1" });
    expect((await clientOf(second, first.tokens.client).get(id)).state).toBe("queued");
    expect(await clientOf(first, second.tokens.admin).nodes()).toEqual([]);
    expect(await clientOf(second, first.tokens.admin).nodes()).toEqual([]);
    const refused = await clientOf(second, stale.client)
      .list()
      .catch((error: unknown) => error);
    expect(refused as object).toMatchObject({ status: 401 });

    // Restarted on its data dir, the first keeps the tokens it had.
    await first.stop();
    const again = await startCoordinator(firstDir, { flag: withTokens.url() });
    expect(again.tokens).toEqual(first.tokens);
    expect((await clientOf(again, second.tokens.client).get(id)).state).toBe("queued");
  });
});
