import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LabrunClient } from "../client/api.js";
import { type Job, UserList, UserToken } from "../protocol/index.js";
import { labrun } from "./helpers/cli.js";
import { SLOWDOWN, startTestCluster, type TestCluster, testLogger } from "./helpers/cluster.js";

let cluster: TestCluster;
let dir: string;
beforeAll(async () => {
  // One node of 2 slots, as the fair-share scenario of issue 17 has it.
  cluster = await startTestCluster({ agents: [2] });
  dir = mkdtempSync(join(tmpdir(), "labrun-users-"));
});
afterAll(async () => {
  await cluster?.close();
});

const ONE_SECOND = `exports.main = () => new Promise((r) => setTimeout(() => r("done"), 1000));`;

const userClient = (token: string) => new LabrunClient({ server: cluster.url, token });
const ms = (iso: string | undefined) => Date.parse(iso ?? "");

describe("fair share on real Docker", () => {
  it("lets B's 4 jobs through within about 3 job-times while A's 30 are queued", async () => {
    const a = userClient((await cluster.admin.addUser({ name: "flooder" })).token);
    const b = userClient((await cluster.admin.addUser({ name: "latecomer" })).token);
    const flood = await Promise.all(
      Array.from({ length: 30 }, () => a.submit({ source: ONE_SECOND })),
    );
    // A's queue is running: their first jobs finish before B arrives.
    await a.wait(flood[0]?.id ?? "", { timeoutMs: 60_000 * SLOWDOWN });
    const submittedAt = Date.now();
    const late = await Promise.all(
      Array.from({ length: 4 }, () => b.submit({ source: ONE_SECOND })),
    );
    const done = await Promise.all(
      late.map(({ id }) => b.wait(id, { timeoutMs: 60_000 * SLOWDOWN })),
    );
    const lastDone = Math.max(...done.map((job) => ms(job.finishedAt)));
    const aQueuedThen = (await Promise.all(flood.map(({ id }) => a.get(id)))).filter(
      (job) => job.state === "queued",
    ).length;
    const aJobs = await Promise.all(
      flood.map(({ id }) => a.wait(id, { timeoutMs: 120_000 * SLOWDOWN })),
    );

    // A job-time, as this machine ran them (container start included): all
    // 34 jobs ran two at a time from A's submit to A's last end.
    const aSpan = Math.max(...aJobs.map((job) => ms(job.finishedAt))) - ms(aJobs[0]?.createdAt);
    const jobTime = aSpan / 17;
    const waits = done.map((job) => ms(job.finishedAt) - submittedAt);
    testLogger.info({ jobTime, waits, aQueuedThen }, "fair share: B's waits (ms)");
    for (const job of [...done, ...aJobs]) expect(job.state).toBe("succeeded");
    expect(
      lastDone - submittedAt,
      `B's waits ${waits.join(", ")} ms; a job-time ${jobTime.toFixed(0)} ms`,
    ).toBeLessThanOrEqual(3.5 * jobTime);
    // Long before A's queue drained: without fair share B would wait ~14 job-times.
    expect(aQueuedThen).toBeGreaterThanOrEqual(15);
  });
});

describe("users on the command line", () => {
  const env = () => ({
    LABRUN_SERVER: cluster.url,
    LABRUN_TOKEN: cluster.tokens.client,
    LABRUN_ADMIN_TOKEN: cluster.tokens.admin,
    LABRUN_CONFIG: join(dir, "no-config.json"),
    LABRUN_DATA_DIR: join(dir, "no-data"),
  });

  it("adds a user, who sees only their own jobs; admin lists theirs; rotate and rm stop tokens", async () => {
    const added = await labrun(
      ["users", "add", "alice", "--max-running", "1", "--max-queued", "5", "--json"],
      env(),
    );
    expect(added.code, added.stderr).toBe(0);
    const { token } = UserToken.parse(JSON.parse(added.stdout));
    const program = join(dir, "slow.js");
    writeFileSync(program, ONE_SECOND);
    const asAlice = { ...env(), LABRUN_TOKEN: token };

    // Two jobs at max-running 1: while the first runs (it would for a minute;
    // it is cancelled below), the second waits for alice's quota, and says so.
    const long = join(dir, "long.js");
    writeFileSync(long, "exports.main = () => new Promise((r) => setTimeout(r, 60_000));");
    const first = await labrun(["submit", long, "--detach"], asAlice);
    const firstId = first.stdout.trim();
    const second = await labrun(["submit", program, "--detach"], asAlice);
    expect(second.code, second.stderr).toBe(0);
    const secondId = second.stdout.trim();
    const alice = userClient(token);
    for (let tries = 0; (await alice.get(firstId)).state !== "running"; tries++) {
      expect(tries, "the first job never started").toBeLessThan(300);
      await sleep(100);
    }
    const status = await labrun(["status", secondId, "--json"], asAlice);
    expect((JSON.parse(status.stdout) as Job).waiting?.reason).toBe("user_max_running");
    const human = await labrun(["status", secondId], asAlice);
    expect(human.stdout).toMatch(/waiting \(#1, user_max_running\)/);
    expect((await labrun(["cancel", firstId], asAlice)).code).toBe(0);

    // Alice sees her two jobs; the shared client token (`default`) none of them.
    const mine = JSON.parse((await labrun(["jobs", "--json"], asAlice)).stdout);
    expect(mine.jobs.map((job: Job) => job.id).sort()).toEqual(
      [first.stdout.trim(), secondId].sort(),
    );
    const theirs = await labrun(["status", secondId], env());
    expect(theirs.code).toBe(2);
    expect(theirs.stderr).toMatch(/does not exist \(NOT_FOUND\)/);
    const byAdmin = JSON.parse((await labrun(["jobs", "--user", "alice", "--json"], env())).stdout);
    expect(byAdmin.jobs).toHaveLength(2);
    const all = JSON.parse((await labrun(["jobs", "--all", "--json"], env())).stdout);
    expect(all.jobs.length).toBeGreaterThanOrEqual(2);

    const listed = UserList.parse(
      JSON.parse((await labrun(["users", "list", "--json"], env())).stdout),
    );
    expect(listed.users.find((user) => user.name === "alice")).toMatchObject({
      maxRunning: 1,
      maxQueued: 5,
    });
    expect((await labrun(["users", "list"], env())).stdout).toMatch(/^NAME\s+CREATED\s+RUNNING/);

    const rotated = await labrun(["users", "token", "alice", "--rotate", "--json"], env());
    const fresh = UserToken.parse(JSON.parse(rotated.stdout)).token;
    expect((await labrun(["jobs"], asAlice)).code).toBe(3);
    const asNew = { ...env(), LABRUN_TOKEN: fresh };
    expect((await labrun(["wait", secondId], asNew)).code).toBe(0);
    expect((await labrun(["users", "token", "alice"], env())).stderr).toMatch(/--rotate/);

    const removed = await labrun(["users", "rm", "alice"], env());
    expect(removed.stdout).toMatch(/alice removed: their token is refused/);
    expect((await labrun(["jobs"], asNew)).code).toBe(3);

    const audit = JSON.parse((await labrun(["audit", "--json"], env())).stdout);
    const actions = audit.entries.map(
      (entry: { action: string; target: string }) => `${entry.action} ${entry.target}`,
    );
    expect(actions.slice(0, 3)).toEqual(["user.rm alice", "user.rotate alice", "user.add alice"]);
    expect((await labrun(["audit"], env())).stdout).toMatch(/^AT\s+WHO\s+ACTION/);
    // Bad arguments are usage errors, not stacks.
    const bad = await labrun(["users", "add", "9lives"], env());
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/^labrun: users add: positionals\.0: a letter/);
  });
});
