import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  realpathSync,
  rmSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type Dockerode from "dockerode";
import type { Logger } from "pino";
import { type PackOptions, pack } from "tar-fs";

export const RUNNER_IMAGE_REPO = "labrun-runner";

/** The files that make the image, relative to runner-image/. */
const RUNNER_FILES = ["runner.js", "package.json", "Dockerfile"] as const;

/**
 * The labrun package root: walks up from this module to the package.json
 * named "labrun" (works from source agent/sandbox/ and from dist/agent/sandbox/).
 */
export function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const manifest = join(dir, "package.json");
    if (existsSync(manifest)) {
      const name = (JSON.parse(readFileSync(manifest, "utf8")) as { name?: string }).name;
      if (name === "labrun") return dir;
    }
    const parent = dirname(dir);
    if (parent === dir) throw new Error("cannot find the labrun package root");
    dir = parent;
  }
}

/**
 * `labrun-runner:<hash>`: a content hash over the runner's files and the node
 * binary's version and arch, so an agent with a changed runner (or node)
 * builds a new image instead of using a stale one.
 */
export function runnerImageTag(): string {
  const hash = createHash("sha256");
  const source = join(packageRoot(), "runner-image");
  for (const file of RUNNER_FILES) {
    hash.update(file).update(readFileSync(join(source, file)));
  }
  hash.update(process.version).update(process.arch);
  return `${RUNNER_IMAGE_REPO}:${hash.digest("hex").slice(0, 16)}`;
}

/** The absolute paths of the shared libraries `ldd` lists (the vdso has none). */
export function parseLdd(text: string): string[] {
  const paths = new Set<string>();
  for (const line of text.split("\n")) {
    // "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x…)" or "/lib64/ld-linux-x86-64.so.2 (0x…)"
    const match = /=>\s*(\/\S+)/.exec(line) ?? /^\s*(\/\S+)\s+\(/.exec(line);
    if (match?.[1]) paths.add(match[1]);
  }
  return [...paths];
}

const builds = new Map<string, Promise<string>>();

/** Builds the runner image unless it exists; concurrent callers share one build. */
export async function ensureRunnerImage(docker: Dockerode, logger: Logger): Promise<string> {
  const tag = runnerImageTag();
  try {
    await docker.getImage(tag).inspect();
    return tag;
  } catch {
    // Not there yet: build it below.
  }
  let build = builds.get(tag);
  if (!build) {
    build = buildRunnerImage(docker, logger).finally(() => builds.delete(tag));
    builds.set(tag, build);
  }
  return build;
}

/** Builds the runner image FROM scratch with this machine's node binary; returns its tag. */
export async function buildRunnerImage(docker: Dockerode, logger: Logger): Promise<string> {
  const tag = runnerImageTag();
  const started = performance.now();
  const context = mkdtempSync(join(tmpdir(), "labrun-image-"));
  try {
    assembleContext(context);
    // umask 0 (tar-fs supports it; its types lack it): keep modes as assembled (/tmp must stay 1777 for the tmpfs mounted on it).
    const stream = await docker.buildImage(pack(context, { umask: 0 } as PackOptions), {
      t: tag,
      labels: { "labrun.runner": "1" },
      rm: true,
      forcerm: true,
    });
    await new Promise<void>((resolve, reject) => {
      docker.modem.followProgress(
        stream,
        (error: Error | null, events: { error?: string; errorDetail?: { message?: string } }[]) => {
          const failed = events?.find((event) => event.error || event.errorDetail);
          if (error) reject(error);
          else if (failed) reject(new Error(failed.errorDetail?.message ?? failed.error));
          else resolve();
        },
      );
    });
  } finally {
    rmSync(context, { recursive: true, force: true });
  }
  logger.info({ tag, ms: Math.round(performance.now() - started) }, "built the runner image");
  return tag;
}

/** Dockerfile + rootfs/ with node, its libraries, the runner and an empty /tmp. */
function assembleContext(context: string): void {
  const source = join(packageRoot(), "runner-image");
  const rootfs = join(context, "rootfs");
  const place = (from: string, to: string) => {
    mkdirSync(dirname(join(rootfs, to)), { recursive: true });
    copyFileSync(realpathSync(from), join(rootfs, to));
  };
  copyFileSync(join(source, "Dockerfile"), join(context, "Dockerfile"));
  const node = realpathSync(process.execPath);
  place(node, "/usr/local/bin/node");
  for (const library of sharedLibraries(node)) place(library, library);
  place(join(source, "runner.js"), "/runner/runner.js");
  place(join(source, "package.json"), "/runner/package.json");
  mkdirSync(join(rootfs, "tmp"));
  chmodSync(join(rootfs, "tmp"), 0o1777);
}

function sharedLibraries(binary: string): string[] {
  try {
    return parseLdd(execFileSync("ldd", [binary], { encoding: "utf8" }));
  } catch {
    // "not a dynamic executable" (a static node) exits non-zero: nothing to add.
    return [];
  }
}
