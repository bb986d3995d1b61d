import {
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { labrun } from "./helpers/cli.js";

// The built CLI keeps V8's code of its command bundles in the user's cache
// folder (client/code-cache.ts). A command must behave the same whether the
// cache is missing, present, damaged or turned off; each command keeps the
// cache of its own runs. No coordinator: a
// `status` against a closed port loads the job commands' bundle and exits 3.
const folders: string[] = [];
afterAll(() => {
  for (const folder of folders) rmSync(folder, { recursive: true, force: true });
});

function cacheHome(): string {
  const folder = mkdtempSync(join(tmpdir(), "labrun-code-cache-"));
  folders.push(folder);
  return folder;
}

const unreachable = (
  home: string,
  extra: Record<string, string> = {},
  args = ["status", "j_abc"],
) =>
  labrun(args, {
    XDG_CACHE_HOME: home,
    LABRUN_SERVER: "http://127.0.0.1:9",
    LABRUN_TOKEN: "t",
    ...extra,
  });

const cacheFiles = (home: string) => {
  try {
    return readdirSync(join(home, "labrun", "code-cache")).map((name) =>
      join(home, "labrun", "code-cache", name),
    );
  } catch {
    return [];
  }
};

describe("the CLI's code cache", () => {
  it("is written by the first run, used by the next, and replaced when damaged", async () => {
    const home = cacheHome();
    const first = await unreachable(home);
    expect(first.code).toBe(3);
    expect(first.stderr).toContain("cannot reach the labrun coordinator");
    const files = cacheFiles(home);
    expect(files).toHaveLength(1);
    const [file] = files as [string];
    expect(file).toMatch(/jobs\.cjs-\d+-\d+-v\d+\.\d+\.\d+-status\.v8cache$/);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const written = readFileSync(file);
    const writtenAt = statSync(file).mtimeMs;

    // Accepted by V8: the same answer, and the file is left as it is.
    const second = await unreachable(home);
    expect(second).toEqual(first);
    expect(readFileSync(file).equals(written)).toBe(true);
    expect(statSync(file).mtimeMs).toBe(writtenAt);

    // Damaged: V8 rejects it, the command runs as without one and writes a good one.
    writeFileSync(file, "not V8's code cache");
    const third = await unreachable(home);
    expect(third).toEqual(first);
    expect(readFileSync(file).toString()).not.toBe("not V8's code cache");
    expect(cacheFiles(home)).toHaveLength(1);
  });

  it("is kept per command, and an earlier build's files go when this build writes one", async () => {
    const home = cacheHome();
    const folder = join(home, "labrun", "code-cache");
    mkdirSync(folder, { recursive: true });
    // An earlier build's caches, one per command and one of before commands had their own.
    const stale = ["jobs.cjs-1-1-v20.0.0-status.v8cache", "jobs.cjs-1-1-v20.0.0.v8cache"];
    for (const name of stale) writeFileSync(join(folder, name), "old");
    writeFileSync(join(folder, "nodes.cjs-1-1-v20.0.0-nodes.v8cache"), "another bundle's");

    const status = await unreachable(home);
    expect(status.code).toBe(3);
    const names = () => cacheFiles(home).map((file) => basename(file));
    expect(names().filter((name) => stale.includes(name))).toEqual([]);
    expect(names()).toContain("nodes.cjs-1-1-v20.0.0-nodes.v8cache");
    const statusFile = cacheFiles(home).find((file) => file.endsWith("-status.v8cache"));
    expect(statusFile).toBeDefined();
    const statusCache = readFileSync(statusFile as string);

    // Another command of the same bundle: a cache of its own; status's stays as it was.
    const jobs = await unreachable(home, {}, ["jobs"]);
    expect(jobs.code).toBe(3);
    expect(jobs.stderr).toContain("cannot reach the labrun coordinator");
    expect(
      names()
        .filter((name) => name.startsWith("jobs.cjs-"))
        .sort(),
    ).toEqual(
      [
        basename(statusFile as string).replace("-status.", "-jobs."),
        basename(statusFile as string),
      ].sort(),
    );
    expect(readFileSync(statusFile as string).equals(statusCache)).toBe(true);
  });

  it("is neither read nor written with NODE_DISABLE_COMPILE_CACHE", async () => {
    const home = cacheHome();
    const out = await unreachable(home, { NODE_DISABLE_COMPILE_CACHE: "1" });
    expect(out.code).toBe(3);
    expect(out.stderr).toContain("cannot reach the labrun coordinator");
    expect(cacheFiles(home)).toEqual([]);
  });

  it("is skipped when the cache folder cannot be made", async () => {
    const home = cacheHome();
    // A file where the folder would go: mkdir fails, the command does not.
    writeFileSync(join(home, "labrun"), "");
    const out = await unreachable(home);
    expect(out.code).toBe(3);
    expect(out.stderr).toContain("cannot reach the labrun coordinator");
    expect(out.stderr.trim().split("\n")).toHaveLength(1);
  });
});
