import { createHash } from "node:crypto";
import { mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import { dirname, join, resolve, sep } from "node:path";
import type { ProgramFields } from "./program.js";

/**
 * Bundles already made, kept in the user's cache folder
 * (`$XDG_CACHE_HOME/labrun/bundles`): a submit of a program none of whose
 * inputs changed skips esbuild. A bundle is reused only while every input
 * file has its size and mtime, every folder holding an input (and each one
 * above it, up to the project) has its mtime (a file added there could
 * change what an import resolves to), and each `package.json` and
 * `tsconfig.json` in those folders is as it was (or still absent).
 * `LABRUN_BUNDLE_CACHE=0` turns it off.
 */

/** Bump when the bundle's settings change: older entries are then never matched. */
const FORMAT = "labrun-bundle-2";
/** Files whose change alters resolution or compilation without being an input. */
const SETTINGS_FILES = ["package.json", "tsconfig.json"];

interface Stamp {
  path: string;
  /** `size:mtimeMs`, or "absent". */
  stamp: string;
}

/**
 * A cache file is this header as one line of JSON, then the files' contents
 * as they are, one after another (`bytes` each): a hit reads them straight
 * into strings instead of parsing a megabyte-long JSON string.
 */
interface CacheHeader {
  format: string;
  stamps: Stamp[];
  files: Array<{ path: string; bytes: number }>;
  entry: string;
  warnings: string[];
}

const stampOf = (path: string): string => {
  try {
    const stat = statSync(path);
    return `${stat.isDirectory() ? "dir" : stat.size}:${stat.mtimeMs}`;
  } catch {
    return "absent";
  }
};

function cacheFile(entry: string, maxBytes: number): string | undefined {
  if (process.env.LABRUN_BUNDLE_CACHE === "0") return undefined;
  const home = process.env.XDG_CACHE_HOME || join(homedir(), ".cache");
  const key = createHash("sha256")
    .update(`${FORMAT}\0${resolve(entry)}\0${maxBytes}`)
    .digest("hex");
  return join(home, "labrun", "bundles", `${key.slice(0, 32)}.json`);
}

/** The bundle made before for `entry`, with its warnings, if nothing it was made from changed. */
export function cachedBundle(
  entry: string,
  maxBytes: number,
): { fields: ProgramFields; warnings: string[] } | undefined {
  const file = cacheFile(entry, maxBytes);
  if (!file) return undefined;
  let data: Buffer;
  let cached: CacheHeader;
  let at: number;
  try {
    data = readFileSync(file);
    at = data.indexOf(0x0a);
    cached = JSON.parse(data.toString("utf8", 0, at)) as CacheHeader;
  } catch {
    return undefined;
  }
  if (cached.format !== FORMAT) return undefined;
  for (const { path, stamp } of cached.stamps) if (stampOf(path) !== stamp) return undefined;
  const files = [];
  let offset = at + 1;
  for (const { path, bytes } of cached.files) {
    files.push({ path, content: data.toString("utf8", offset, offset + bytes) });
    offset += bytes;
  }
  // A file cut short (a full disk) is a miss, not a wrong program.
  if (offset !== data.length) return undefined;
  return { fields: { files, entry: cached.entry }, warnings: cached.warnings };
}

/**
 * Keeps a fresh bundle for next time; `inputs` are the absolute paths esbuild
 * read, `root` the project folder. Best effort: a cache that cannot be
 * written only means the next submit bundles again.
 */
export function keepBundle(
  entry: string,
  maxBytes: number,
  root: string,
  inputs: string[],
  fields: ProgramFields,
  warnings: string[],
): void {
  const file = cacheFile(entry, maxBytes);
  if (!file) return;
  const watched = new Set<string>(inputs);
  for (const input of inputs) {
    // Each folder from the input's own up to the project, or, for a package
    // outside it (a node_modules further up), up to that node_modules' folder.
    const packages = input.lastIndexOf(`${sep}node_modules${sep}`);
    const top = input.startsWith(root + sep) || packages === -1 ? root : input.slice(0, packages);
    for (let dir = dirname(input); ; dir = dirname(dir)) {
      watched.add(dir);
      for (const name of SETTINGS_FILES) watched.add(join(dir, name));
      if (dir === top || dirname(dir) === dir || !dir.startsWith(top)) break;
    }
  }
  const contents = (fields.files ?? []).map((item) => Buffer.from(item.content, "utf8"));
  const header: CacheHeader = {
    format: FORMAT,
    stamps: [...watched].map((path) => ({ path, stamp: stampOf(path) })),
    files: (fields.files ?? []).map((item, i) => ({
      path: item.path,
      bytes: contents[i]?.length ?? 0,
    })),
    entry: fields.entry ?? "",
    warnings,
  };
  try {
    mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
    const temporary = `${file}.${process.pid}.tmp`;
    writeFileSync(
      temporary,
      Buffer.concat([Buffer.from(`${JSON.stringify(header)}\n`), ...contents]),
      {
        mode: 0o600,
      },
    );
    renameSync(temporary, file);
  } catch {
    // No cache folder to be had (read-only home): bundle each time.
  }
}
