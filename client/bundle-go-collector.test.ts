import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { bundleProgram, goCollectorSettings } from "./bundle.js";

// The esbuild service runs with Go's collector off (and a memory limit),
// unless the user chose their own settings; no other child of the CLI
// inherits them.

describe("goCollectorSettings", () => {
  it("turns the collector off with a soft limit when the user set neither", () => {
    expect(goCollectorSettings({})).toEqual({ GOGC: "off", GOMEMLIMIT: "512MiB" });
  });

  it("leaves the user's own GOGC or GOMEMLIMIT alone", () => {
    expect(goCollectorSettings({ GOGC: "200" })).toEqual({});
    expect(goCollectorSettings({ GOMEMLIMIT: "2GiB" })).toEqual({});
  });
});

/** The environment of this process's esbuild service, read from /proc. */
function esbuildChildEnvironment(): Record<string, string> {
  for (const pid of readdirSync("/proc").filter((name) => /^\d+$/.test(name))) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8").trim();
      // `pid (comm) state ppid …`: the name may hold spaces, so split after its `)`.
      const [, comm = "", rest = ""] = /^\d+ \((.*)\) (.*)$/.exec(stat) ?? [];
      if (comm !== "esbuild" || Number(rest.split(" ")[1]) !== process.pid) continue;
      const pairs = readFileSync(`/proc/${pid}/environ`, "utf8").split("\0").filter(Boolean);
      return Object.fromEntries(
        pairs.map((pair) => [pair.split("=")[0], pair.slice(pair.indexOf("=") + 1)]),
      );
    } catch {
      // A process that ended meanwhile.
    }
  }
  throw new Error("no esbuild child of this process");
}

describe.runIf(process.platform === "linux")("the esbuild service a bundle starts", () => {
  const names = ["LABRUN_BUNDLE_CACHE", "GOGC", "GOMEMLIMIT"] as const;
  const saved = names.map((name) => process.env[name]);
  beforeAll(() => {
    process.env.LABRUN_BUNDLE_CACHE = "0";
    delete process.env.GOGC;
    delete process.env.GOMEMLIMIT;
  });
  afterAll(() => {
    names.forEach((name, at) => {
      const value = saved[at];
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    });
  });

  it("runs with Go's collector off, and this process's environment is as it was", async () => {
    const dir = mkdtempSync(join(tmpdir(), "labrun-go-collector-"));
    writeFileSync(join(dir, "package.json"), '{"name":"go-collector","private":true}');
    writeFileSync(join(dir, "main.ts"), 'import { v } from "./util"; export const main = () => v;');
    writeFileSync(join(dir, "util.ts"), "export const v: number = 1;");
    const fields = await bundleProgram(join(dir, "main.ts"));
    expect(fields.entry).toBe("main.mjs");
    const env = esbuildChildEnvironment();
    expect(env.GOGC).toBe("off");
    expect(env.GOMEMLIMIT).toBe("512MiB");
    expect(process.env.GOGC).toBeUndefined();
    expect(process.env.GOMEMLIMIT).toBeUndefined();
  });
});
