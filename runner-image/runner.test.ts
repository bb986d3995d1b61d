import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const RUNNER = fileURLToPath(new URL("./runner.js", import.meta.url));

interface Run {
  envelope: {
    ok: boolean;
    result?: unknown;
    error?: { code: string; message: string; detail?: string };
  };
  outside: string;
  ms: number;
}

/** Runs runner.js on the host's node with a request on stdin; parses the nonce frame. */
function runRunner(
  source: string,
  options: { filename?: string; input?: unknown; raw?: string } = {},
) {
  const nonce = randomBytes(16).toString("hex");
  const request =
    options.raw ??
    JSON.stringify({
      source,
      filename: options.filename ?? "main.js",
      input: options.input ?? null,
      nonce,
    });
  const started = Date.now();
  return new Promise<Run>((resolve, reject) => {
    const child = spawn(process.execPath, [RUNNER], { stdio: ["pipe", "pipe", "pipe"] });
    let stdout = "";
    child.stdout.on("data", (chunk: Buffer) => {
      stdout += chunk;
    });
    child.on("error", reject);
    const killer = setTimeout(() => child.kill("SIGKILL"), 10_000);
    child.on("close", () => {
      clearTimeout(killer);
      const first = stdout.indexOf(nonce);
      const second = stdout.indexOf(nonce, first + nonce.length);
      if (first === -1 || second === -1) {
        reject(new Error(`no envelope in: ${stdout.slice(0, 500)}`));
        return;
      }
      resolve({
        envelope: JSON.parse(stdout.slice(first + nonce.length, second)),
        outside: stdout.slice(0, first) + stdout.slice(second + nonce.length),
        ms: Date.now() - started,
      });
    });
    child.stdin.end(request);
  });
}

const result = async (source: string, options?: Parameters<typeof runRunner>[1]) => {
  const { envelope } = await runRunner(source, options);
  expect(envelope.ok, JSON.stringify(envelope)).toBe(true);
  return envelope.result;
};
const errorOf = async (source: string, options?: Parameters<typeof runRunner>[1]) => {
  const { envelope } = await runRunner(source, options);
  expect(envelope.ok, JSON.stringify(envelope)).toBe(false);
  return envelope.error ?? { code: "", message: "" };
};

describe.concurrent("runner.js", () => {
  it("runs a .cjs program", async () => {
    expect(await result("module.exports = { main: () => 'cjs' };", { filename: "p.cjs" })).toBe(
      "cjs",
    );
  });

  it("accepts module.exports = function as main", async () => {
    expect(await result("module.exports = (x) => x + 1;", { input: 1 })).toBe(2);
  });

  it("runs an ESM named export main from .mjs", async () => {
    expect(
      await result("export function main(x) { return x * 3; }", { filename: "p.mjs", input: 2 }),
    ).toBe(6);
  });

  it("runs an ESM default function", async () => {
    expect(await result("export default async () => 'default';", { filename: "p.mjs" })).toBe(
      "default",
    );
  });

  it("runs ESM with top-level await in a .js file", async () => {
    expect(await result("const v = await Promise.resolve(5); export const main = () => v;")).toBe(
      5,
    );
  });

  it("reports an empty module as Bad program format", async () => {
    const error = await errorOf("");
    expect(error).toMatchObject({ code: "BAD_PROGRAM_FORMAT", message: "Bad program format" });
  });

  it("reports a rejected promise as RUNTIME_ERROR with its message", async () => {
    const error = await errorOf("exports.main = async () => { throw new TypeError('nope'); };");
    expect(error).toMatchObject({ code: "RUNTIME_ERROR", message: "nope" });
  });

  it("reports a thrown non-Error", async () => {
    const error = await errorOf("exports.main = () => { throw 'just a string'; };");
    expect(error).toMatchObject({ code: "RUNTIME_ERROR", message: "just a string" });
  });

  it("reports a top-level throw as RUNTIME_ERROR", async () => {
    const error = await errorOf("throw new Error('at load'); exports.main = () => 1;");
    expect(error).toMatchObject({ code: "RUNTIME_ERROR", message: "at load" });
  });

  it.each([
    ["a BigInt", "exports.main = () => 10n;"],
    ["a toJSON that throws", "exports.main = () => ({ toJSON() { throw new Error('no'); } });"],
    ["a function", "exports.main = () => () => 1;"],
    ["a Symbol", "exports.main = () => Symbol('s');"],
  ])("reports %s result as RESULT_NOT_JSON", async (_what, source) => {
    expect((await errorOf(source)).code).toBe("RESULT_NOT_JSON");
  });

  it("is not fooled by patched JSON.stringify, console.log and process.stdout.write", async () => {
    const source = `
      JSON.stringify = () => '{"ok":true,"result":"forged"}';
      console.log = () => {};
      process.stdout.write = () => true;
      exports.main = () => ({ real: 1 });`;
    expect(await result(source)).toEqual({ real: 1 });
  });

  it("is not fooled by a patched fs.writeSync or Promise.prototype.then", async () => {
    const source = `
      const fs = require("fs");
      fs.writeSync = () => 0;
      Promise.prototype.then = function () { return this; };
      exports.main = async () => "still real";`;
    expect(await result(source)).toBe("still real");
  });

  it("reports process.exit inside main as RUNTIME_ERROR", async () => {
    const error = await errorOf("exports.main = () => { process.exit(0); };");
    expect(error.code).toBe("RUNTIME_ERROR");
    expect(error.message).toContain("process.exit(0)");
  });

  it("ends the job when main returns, cutting off a setInterval left behind", async () => {
    const run = await runRunner(
      "exports.main = () => { setInterval(() => console.log('tick'), 10); return 1; };",
    );
    expect(run.envelope).toEqual({ ok: true, result: 1 });
    expect(run.ms).toBeLessThan(3000);
  });

  it("reports an unhandled rejection before main settles", async () => {
    const source =
      "exports.main = () => { Promise.reject(new Error('stray')); return new Promise(r => setTimeout(r, 500)); };";
    expect(await errorOf(source)).toMatchObject({ code: "RUNTIME_ERROR", message: "stray" });
  });

  it("reports a promise that can never settle", async () => {
    const error = await errorOf("exports.main = () => new Promise(() => {});");
    expect(error.code).toBe("RUNTIME_ERROR");
    expect(error.message).toContain("never settles");
  });

  it("keeps the nonce out of the program's reach", async () => {
    const source = `
      const fs = require("fs");
      exports.main = () => {
        const seen = JSON.stringify([process.argv, process.env, Object.keys(globalThis)]);
        const files = fs.readdirSync(__dirname).map((f) => fs.readFileSync(__dirname + "/" + f, "utf8"));
        return seen + files.join("");
      };`;
    const nonceLike = /[0-9a-f]{32}/;
    const found = await result(source);
    expect(String(found)).not.toMatch(nonceLike);
  });

  it("answers a malformed request with SANDBOX_ERROR", async () => {
    const nonce = "a".repeat(32);
    const run = await runRunner("", { raw: JSON.stringify({ source: 1, nonce }) }).catch(
      () => null,
    );
    // With a usable nonce the runner still frames its answer.
    expect(run?.envelope.error?.code ?? "SANDBOX_ERROR").toBe("SANDBOX_ERROR");
  });
});
