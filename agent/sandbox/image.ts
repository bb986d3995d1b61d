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

/**
 * The runner image: FROM scratch with this machine's own node binary, the
 * shared libraries `ldd` lists for it, and runner-image/runner.js. Nothing is
 * pulled from a registry, so an agent works on a machine with no registry access.
 */
export const RUNNER_IMAGE_REPO = "labrun-runner";

/** The files of runner-image/ that make the image; the tag hashes them. */
const RUNNER_FILES = [
  "runner.js",
  "contract.js",
  "framer.js",
  "item-host.js",
  "source-maps.js",
  "package.json",
  "Dockerfile",
] as const;

/**
 * The labrun package root: walks up from this module to the package.json
 * named "labrun" (works from source agent/sandbox/ and from dist/agent/sandbox/).
 */
export function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const manifest = join(dir, "package.json");
    if (existsSync(manifest)) {
      const name = (JSON.parse(readFileSync(manifest, "utf8")) as { name?: unknown }).name;
      if (name === "labrun") return dir;
    }
    const parent = dirname(dir);
    if (parent === dir) throw new Error("cannot find the labrun package root above this module");
    dir = parent;
  }
}

/**
 * `labrun-runner:<hash>`: a content hash over the runner's files and the node
 * version and arch, so a changed runner (or node) builds a new image instead
 * of reusing a stale one.
 *
 * @example runnerImageTag() // "labrun-runner:3f9c0a1b2c4d5e6f"
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

/**
 * The absolute paths of the shared libraries in `ldd` output, the dynamic
 * loader included; the vdso (no path) and a static binary give none.
 *
 * @example
 * parseLdd("\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x7f)\n\t/lib64/ld-linux-x86-64.so.2 (0x7f)")
 * // ["/lib/x86_64-linux-gnu/libc.so.6", "/lib64/ld-linux-x86-64.so.2"]
 */
export function parseLdd(text: string): string[] {
  const paths = new Set<string>();
  for (const line of text.split("\n")) {
    // "libc.so.6 => /lib/.../libc.so.6 (0x…)", or the loader: "/lib64/ld-linux-x86-64.so.2 (0x…)".
    const match = /=>\s*(\/\S+)/.exec(line) ?? /^\s*(\/\S+)\s+\(0x[0-9a-f]+\)/i.exec(line);
    if (match?.[1]) paths.add(match[1]);
  }
  return [...paths];
}

/** Builds in progress, by tag: concurrent callers in this process share one. */
const builds = new Map<string, Promise<string>>();

/** Builds the runner image unless an image with its tag exists; returns the tag. */
export async function ensureRunnerImage(docker: Dockerode, logger: Logger): Promise<string> {
  const tag = runnerImageTag();
  if (await imageExists(docker, tag)) return tag;
  let build = builds.get(tag);
  if (!build) {
    build = buildRunnerImage(docker, logger).finally(() => builds.delete(tag));
    builds.set(tag, build);
  }
  return build;
}

async function imageExists(docker: Dockerode, tag: string): Promise<boolean> {
  try {
    await docker.getImage(tag).inspect();
    return true;
  } catch (error) {
    if ((error as { statusCode?: number }).statusCode === 404) return false;
    throw new Error(`could not look up the runner image ${tag}: ${describe(error)}`, {
      cause: error,
    });
  }
}

/** Builds the runner image FROM scratch with this machine's node binary; returns its tag. */
export async function buildRunnerImage(docker: Dockerode, logger: Logger): Promise<string> {
  const tag = runnerImageTag();
  const started = performance.now();
  const context = mkdtempSync(join(tmpdir(), "labrun-image-"));
  try {
    const libraries = assembleBuildContext(context);
    logger.info({ tag, libraries: libraries.length }, "building the runner image");
    // umask 0 keeps the modes set above (tar-fs would mask /tmp's 1777 with
    // the process umask); every file belongs to root in the image.
    const packOptions: PackOptions & { umask: number } = {
      umask: 0,
      map: (header) => ({ ...header, uid: 0, gid: 0 }),
    };
    const stream = await docker.buildImage(pack(context, packOptions), {
      t: tag,
      labels: { "labrun.runner": "1" },
      rm: true,
      forcerm: true,
    });
    await followBuild(docker, stream, logger);
  } catch (error) {
    throw new Error(`could not build the runner image ${tag}: ${describe(error)}`, {
      cause: error,
    });
  } finally {
    rmSync(context, { recursive: true, force: true });
  }
  logger.info({ tag, ms: Math.round(performance.now() - started) }, "built the runner image");
  return tag;
}

interface BuildEvent {
  stream?: string;
  error?: string;
  errorDetail?: { message?: string };
}

/** Waits for the build stream to end; an error message in it becomes a thrown Error. */
export function followBuild(
  docker: Dockerode,
  stream: NodeJS.ReadableStream,
  logger: Logger,
): Promise<void> {
  return new Promise((resolve, reject) => {
    docker.modem.followProgress(
      stream,
      (error: Error | null, events: BuildEvent[]) => {
        const failed = events?.find((event) => event.error || event.errorDetail);
        if (error) reject(error);
        else if (failed) reject(new Error(failed.errorDetail?.message ?? failed.error));
        else resolve();
      },
      (event: BuildEvent) => {
        const line = event.stream?.trim();
        if (line) logger.debug({ line }, "runner image build");
      },
    );
  });
}

/**
 * Lays out a build context in `context`: the Dockerfile and rootfs/ with node,
 * each shared library at its own absolute path (symlinks resolved to regular
 * files), the runner and an empty world-writable /tmp. Returns the libraries.
 */
export function assembleBuildContext(context: string): string[] {
  const source = join(packageRoot(), "runner-image");
  const rootfs = join(context, "rootfs");
  const place = (from: string, to: string, mode: number) => {
    const target = join(rootfs, to);
    mkdirSync(dirname(target), { recursive: true });
    copyFileSync(realpathSync(from), target);
    chmodSync(target, mode);
  };
  copyFileSync(join(source, "Dockerfile"), join(context, "Dockerfile"));
  const node = realpathSync(process.execPath);
  // Executable, not readable, by the job's user: the kernel then makes every
  // node process of a job non-dumpable, so no process in a container can read
  // another's memory or open its files through /proc (a batch's item host
  // cannot reach the framer that holds the nonces, PID 1).
  place(node, "/usr/local/bin/node", 0o711);
  const libraries = sharedLibraries(node);
  for (const library of libraries) place(library, library, 0o755);
  for (const file of RUNNER_FILES.filter((name) => name.endsWith(".js"))) {
    place(join(source, file), `/runner/${file}`, 0o644);
  }
  place(join(source, "package.json"), "/runner/package.json", 0o644);
  mkdirSync(join(rootfs, "tmp"));
  chmodSync(join(rootfs, "tmp"), 0o1777);
  return libraries;
}

/** The shared libraries `binary` needs; none for a static binary. */
export function sharedLibraries(binary: string): string[] {
  let output: string;
  try {
    output = execFileSync("ldd", [binary], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
  } catch (error) {
    const failed = error as NodeJS.ErrnoException & { stdout?: string; stderr?: string };
    // A static node makes ldd exit non-zero with this answer: there is nothing to copy.
    if (/not a dynamic executable|statically linked/.test(`${failed.stdout}${failed.stderr}`)) {
      return [];
    }
    if (failed.code === "ENOENT") {
      throw new Error("ldd is not installed; it lists the shared libraries the runner image needs");
    }
    throw new Error(`ldd ${binary} failed: ${describe(error)}`, { cause: error });
  }
  return parseLdd(output);
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * Removes runner images other than this labrun's own (each changed runner or
 * node version builds a new ~100 MB tag). An image a container still uses is
 * kept: Docker refuses to remove it, and that refusal is not an error here.
 * Returns the tags removed.
 */
export function pruneRunnerImages(docker: Dockerode): Promise<string[]> {
  return pruneImages(docker, RUNNER_IMAGE_REPO, runnerImageTag());
}

/**
 * Removes the tags of `repo` other than `keep`; one a container still uses
 * stays (Docker refuses with 409, which is not an error here). Returns the
 * tags removed.
 */
export async function pruneImages(
  docker: Dockerode,
  repo: string,
  keep: string | undefined,
): Promise<string[]> {
  const images = await docker.listImages({ filters: { reference: [`${repo}:*`] } });
  const removed: string[] = [];
  for (const image of images) {
    for (const tag of image.RepoTags ?? []) {
      if (tag === keep || !tag.startsWith(`${repo}:`)) continue;
      try {
        await docker.getImage(tag).remove();
        removed.push(tag);
      } catch (error) {
        const status = (error as { statusCode?: number }).statusCode;
        if (status !== 409 && status !== 404) throw error;
      }
    }
  }
  return removed;
}
