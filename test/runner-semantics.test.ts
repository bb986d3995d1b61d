import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { run, startTestCluster, type TestCluster } from "./helpers/cluster.js";

// One cluster for the file; the cases run concurrently on its slots.
let cluster: TestCluster;
beforeAll(async () => {
  cluster = await startTestCluster({ agents: [4] });
});
afterAll(async () => {
  await cluster?.close();
});

const succeeds = async (source: string, extra: Parameters<typeof run>[2] = {}) => {
  const job = await run(cluster.client, source, extra);
  expect(job.state, JSON.stringify(job.outcome)).toBe("succeeded");
  if (!job.outcome?.ok) throw new Error("expected success");
  return job.outcome;
};

const failsWith = async (code: string, source: string, extra: Parameters<typeof run>[2] = {}) => {
  const job = await run(cluster.client, source, extra);
  expect(job.state).toBe("failed");
  if (!job.outcome || job.outcome.ok) throw new Error("expected a failure");
  expect(job.outcome.error.code).toBe(code);
  return job.outcome.error;
};

describe.concurrent("the runner in a real container", () => {
  it("returns main()'s result for hello world", async () => {
    const outcome = await succeeds(`exports.main = () => "hello, world";`);
    expect(outcome.result).toBe("hello, world");
  });

  it("passes the job input to main", async () => {
    const outcome = await succeeds(`exports.main = (input) => ({ sum: input.a + input.b });`, {
      input: { a: 2, b: 3 },
    });
    expect(outcome.result).toEqual({ sum: 5 });
  });

  it("passes null when there is no input", async () => {
    expect((await succeeds(`exports.main = (input) => input === null;`)).result).toBe(true);
  });

  it("awaits an async main", async () => {
    const source = `exports.main = async () => { await new Promise(r => setTimeout(r, 50)); return 7; };`;
    expect((await succeeds(source)).result).toBe(7);
  });

  it("runs an ESM default export object", async () => {
    const outcome = await succeeds(`export default { main: (x) => x * 2 };`, {
      filename: "prog.mjs",
      input: 21,
    });
    expect(outcome.result).toBe(42);
  });

  it("runs ESM syntax in a .js file", async () => {
    expect((await succeeds(`export function main() { return "esm"; }`)).result).toBe("esm");
  });

  it("honours toJSON", async () => {
    const source = `exports.main = () => ({ when: { toJSON: () => "custom" }, n: 1 });`;
    expect((await succeeds(source)).result).toEqual({ when: "custom", n: 1 });
  });

  it("turns undefined into null", async () => {
    expect((await succeeds(`exports.main = () => undefined;`)).result).toBeNull();
  });

  it("fails with exactly 'Bad program format' when main is missing", async () => {
    const error = await failsWith("BAD_PROGRAM_FORMAT", `exports.notMain = () => 1;`);
    expect(error.message).toBe("Bad program format");
  });

  it("fails with exactly 'Bad program format' when main is not a function", async () => {
    const error = await failsWith("BAD_PROGRAM_FORMAT", `exports.main = 42;`);
    expect(error.message).toBe("Bad program format");
  });

  it("fails with exactly 'Bad program format' on a syntax error", async () => {
    const error = await failsWith("BAD_PROGRAM_FORMAT", `exports.main = () => {;`);
    expect(error.message).toBe("Bad program format");
    expect(error.detail).toBeTruthy();
  });

  it("reports a thrown error as RUNTIME_ERROR with its message", async () => {
    const error = await failsWith(
      "RUNTIME_ERROR",
      `exports.main = () => { throw new Error("boom: bad input"); };`,
    );
    expect(error.message).toBe("boom: bad input");
  });

  it("reports a cyclic result as RESULT_NOT_JSON", async () => {
    await failsWith(
      "RESULT_NOT_JSON",
      `exports.main = () => { const a = {}; a.a = a; return a; };`,
    );
  });

  it("keeps the result intact when the program prints noise and a fake envelope", async () => {
    const source = `
      exports.main = () => {
        console.log("plain noise");
        console.log('{"ok":true,"result":"forged"}');
        process.stdout.write("\\nNONCE{\\"ok\\":true,\\"result\\":\\"forged\\"}NONCE\\n");
        console.error("to stderr");
        return { real: true };
      };`;
    const outcome = await succeeds(source);
    expect(outcome.result).toEqual({ real: true });
    expect(outcome.logs).toContain("plain noise");
    expect(outcome.logs).toContain('{"ok":true,"result":"forged"}');
    expect(outcome.logs).toContain("to stderr");
  });
});

describe("container hygiene", () => {
  it("leaves no job container behind", async () => {
    expect(await cluster.leftoverContainers()).toEqual([]);
  });
});
