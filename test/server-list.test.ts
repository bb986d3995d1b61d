import { mkdtempSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { labrun } from "./helpers/cli.js";
import { startTestCluster, type TestCluster } from "./helpers/cluster.js";

/**
 * Clients and agents given a server list (`--server DEAD,LIVE`) go on on the
 * live one: the CLI's submit, wait and map, and an agent's registration,
 * leases and results. (Several live coordinators need a shared store: the
 * PostgreSQL store's tests run them.)
 */
let cluster: TestCluster;
let dir: string;
let servers: string;

/** A loopback port that refuses connections. */
async function deadUrl(): Promise<string> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return `http://127.0.0.1:${port}`;
}

beforeAll(async () => {
  cluster = await startTestCluster({ agents: [] });
  servers = `${await deadUrl()},${cluster.url}`;
  await cluster.addAgent(2, { server: servers });
  dir = mkdtempSync(join(tmpdir(), "labrun-servers-"));
});
afterAll(async () => {
  await cluster?.close();
});

const env = () => ({
  LABRUN_TOKEN: cluster.tokens.client,
  LABRUN_CONFIG: join(dir, "no-config.json"),
  LABRUN_DATA_DIR: join(dir, "no-data"),
});

describe("a server list whose first server is down", () => {
  it("submits, waits and gets the result through the live server", async () => {
    const program = join(dir, "add.js");
    writeFileSync(program, "exports.main = ({ a, b }) => a + b;");
    const out = await labrun(
      ["submit", program, "--input", '{"a":2,"b":3}', "--server", servers],
      env(),
    );
    expect(out.stderr).toBe("");
    expect(out.code).toBe(0);
    expect(JSON.parse(out.stdout)).toBe(5);
  });

  it("maps a batch through the live server (LABRUN_SERVER)", async () => {
    const program = join(dir, "square.js");
    writeFileSync(program, "exports.main = (n) => n * n;");
    const inputs = join(dir, "inputs.jsonl");
    writeFileSync(inputs, "1\n2\n3\n");
    const out = await labrun(["map", program, "--inputs", inputs], {
      ...env(),
      LABRUN_SERVER: servers,
    });
    expect(out.code).toBe(0);
    const results = out.stdout
      .trim()
      .split("\n")
      .map((line) => JSON.parse(line).result);
    expect(results).toEqual([1, 4, 9]);
  });

  it("names every server when none answers", async () => {
    const out = await labrun(
      ["status", "some-id", "--server", `${await deadUrl()},${await deadUrl()}`],
      env(),
    );
    expect(out.code).toBe(3);
    expect(out.stderr).toMatch(
      /cannot reach the labrun coordinator at http:\/\/127\.0\.0\.1:\d+,http:\/\/127\.0\.0\.1:\d+ \(ECONNREFUSED\)/,
    );
  });

  it("refuses a list with a bad entry as a usage error", async () => {
    const out = await labrun(["status", "some-id", "--server", `${cluster.url},nope`], env());
    expect(out.code).toBe(2);
    expect(out.stderr).toMatch(/several separated by commas/);
  });
});
