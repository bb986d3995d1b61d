import pino from "pino";
import { afterEach, describe, expect, it } from "vitest";
import { LeaseResponse, MAX_PROGRAM_FILES, NDJSON } from "../protocol/index.js";
import { createApp } from "./app.js";
import { Notifier } from "./notifier.js";
import { openTempCoordinator } from "./test-support/temp-coordinator.js";
import { hashToken, newToken } from "./tokens.js";

// Programs of several files (`files` + `entry`) through the real routes and
// store: what is refused (400 naming the path, 413 with the size) and what
// an agent is leased.

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const cleanup of cleanups.splice(0).reverse()) cleanup();
});

// biome-ignore lint/suspicious/noExplicitAny: tests read arbitrary JSON answers field by field
type Json = Record<string, any>;

async function setup(settings: Parameters<typeof openTempCoordinator>[1] = {}) {
  const parts = openTempCoordinator("programs", settings);
  cleanups.push(parts.close);
  const app = createApp({ ...parts, notifier: new Notifier(), logger: pino({ level: "silent" }) });
  const post = async (path: string, body: unknown, type = "application/json") => {
    const response = await app.request(path, {
      method: "POST",
      headers: { authorization: `Bearer ${parts.tokens.client}`, "content-type": type },
      body: new TextEncoder().encode(typeof body === "string" ? body : JSON.stringify(body)),
    });
    return { status: response.status, body: (await response.json()) as Json };
  };
  const agentToken = newToken("lrn");
  const agent = await parts.store.registerAgent(
    { name: "sim", hostname: "h", slots: 8, version: "t", labels: {} },
    hashToken(agentToken),
    Date.now(),
  );
  // As an agent is leased: over the route, whose answer splices the stored files in.
  const lease = async () => {
    const response = await app.request(`/v1/agents/${agent.id}/lease`, {
      method: "POST",
      headers: { authorization: `Bearer ${agentToken}`, "content-type": "application/json" },
      body: JSON.stringify({ free: 8, waitMs: 0 }),
    });
    expect(response.status).toBe(200);
    return LeaseResponse.parse(await response.json()).jobs;
  };
  return { ...parts, post, lease };
}

const MAIN = { path: "main.js", content: 'exports.main = () => require("./lib/two.js").two;' };
const TWO = { path: "lib/two.js", content: "exports.two = 2;" };

describe("POST /v1/jobs with files + entry", () => {
  it("queues the files and leases them with the entry as the file name", async () => {
    const c = await setup();
    const submitted = await c.post("/v1/jobs", { files: [MAIN, TWO], entry: "main.js", input: 1 });
    expect(submitted.status).toBe(201);
    expect((await c.store.getJob(submitted.body.id)).filename).toBe("main.js");
    const [leased] = await c.lease();
    expect(leased?.spec).toMatchObject({ source: "", filename: "main.js", files: [MAIN, TWO] });
  });

  it("keeps a one-file job's lease as it was: source, and no files", async () => {
    const c = await setup();
    expect((await c.post("/v1/jobs", { source: "exports.main = () => 1" })).status).toBe(201);
    const [leased] = await c.lease();
    expect(leased?.spec.source).toBe("exports.main = () => 1");
    expect(leased?.spec).not.toHaveProperty("files");
  });

  const refusals: [string, unknown, string][] = [
    ["a .. segment", [MAIN, { path: "lib/../../etc/x.js", content: "" }], '"lib/../../etc/x.js"'],
    ["an absolute path", [MAIN, { path: "/etc/passwd", content: "" }], '"/etc/passwd" is absolute'],
    [
      "a duplicate",
      [MAIN, TWO, { ...TWO, content: "exports.two = 3;" }],
      '"lib/two.js" is there twice',
    ],
    [
      "a path under a file",
      [MAIN, TWO, { path: "main.js/x.js", content: "" }],
      '"main.js/x.js" is inside "main.js"',
    ],
    [
      "an empty segment",
      [MAIN, { path: "lib//two.js", content: "" }],
      '"lib//two.js" has an empty',
    ],
    ["a backslash", [MAIN, { path: "lib\\two.js", content: "" }], "backslash"],
  ];
  it.each(refusals)("answers 400 naming the path for %s", async (_, files, named) => {
    const c = await setup();
    const refused = await c.post("/v1/jobs", { files, entry: "main.js" });
    expect(refused.status).toBe(400);
    expect(refused.body.error.code).toBe("VALIDATION_ERROR");
    expect(refused.body.error.message).toContain(named);
    expect(await c.lease()).toEqual([]);
  });

  it("answers 400 for more files than a program may have", async () => {
    const c = await setup();
    const files = Array.from({ length: MAX_PROGRAM_FILES + 1 }, (_, i) => ({
      path: `f${i}.js`,
      content: "",
    }));
    const refused = await c.post("/v1/jobs", { files, entry: "f0.js" });
    expect(refused.status).toBe(400);
    expect(refused.body.error.message).toContain(`at most ${MAX_PROGRAM_FILES} files`);
  });

  it("answers 400 for an entry that is not among the files, or that no runtime runs", async () => {
    const c = await setup();
    const missing = await c.post("/v1/jobs", { files: [MAIN], entry: "lib/two.js" });
    expect(missing.status).toBe(400);
    expect(missing.body.error.message).toContain('entry: "lib/two.js" is not one of the files');
    const typescript = { path: "main.ts", content: "export const main = (): number => 1;" };
    const notRun = await c.post("/v1/jobs", { files: [typescript], entry: "main.ts" });
    expect(notRun.status).toBe(400);
    expect(notRun.body.error.message).toContain("must end in .js, .cjs or .mjs");
  });

  it("answers 400 to both forms at once, and to files without an entry", async () => {
    const c = await setup();
    const both = await c.post("/v1/jobs", { source: "x", files: [MAIN], entry: "main.js" });
    expect(both.status).toBe(400);
    expect(both.body.error.message).toContain("send source or files + entry, not both");
    const noEntry = await c.post("/v1/jobs", { files: [MAIN] });
    expect(noEntry.status).toBe(400);
    expect(noEntry.body.error.message).toContain("entry");
    const neither = await c.post("/v1/jobs", { input: 1 });
    expect(neither.status).toBe(400);
  });

  it("answers 413 with the program's size past --max-program, before looking at the paths", async () => {
    const c = await setup({ maxProgramBytes: 2048 });
    const big = { path: "../big.js", content: "x".repeat(3000) };
    const refused = await c.post("/v1/jobs", { files: [MAIN, big], entry: "main.js" });
    expect(refused.status).toBe(413);
    const bytes = MAIN.content.length + 3000;
    expect(refused.body.error.message).toContain(
      `the program is ${bytes} bytes, more than the 2048`,
    );
  });
});

describe("POST /v1/batches with files + entry", () => {
  it("queues a JSON batch of files and leases each item with them", async () => {
    const c = await setup();
    const submitted = await c.post("/v1/batches", {
      files: [MAIN, TWO],
      entry: "main.js",
      inputs: [1, 2],
    });
    expect(submitted.status).toBe(201);
    const leased = await c.lease();
    expect(leased).toHaveLength(2);
    for (const job of leased)
      expect(job.spec).toMatchObject({ filename: "main.js", files: [MAIN, TWO] });
  });

  it("refuses an NDJSON batch whose spec has a bad path, naming it", async () => {
    const c = await setup();
    const body = `${JSON.stringify({ files: [MAIN, { path: "/abs.js", content: "" }], entry: "main.js" })}\n1\n`;
    const refused = await c.post("/v1/batches", body, NDJSON);
    expect(refused.status).toBe(400);
    expect(refused.body.error.message).toContain('"/abs.js" is absolute');
    expect(await c.lease()).toEqual([]);
  });

  it("answers 413 to a batch whose files are over --max-program", async () => {
    const c = await setup({ maxProgramBytes: 1024 });
    const big = { path: "big.js", content: "y".repeat(2000) };
    const refused = await c.post("/v1/batches", {
      files: [MAIN, big],
      entry: "main.js",
      inputs: [1],
    });
    expect(refused.status).toBe(413);
    expect(refused.body.error.details).toEqual({
      bytes: MAIN.content.length + 2000,
      maxBytes: 1024,
    });
  });
});
