import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import type Dockerode from "dockerode";
import type { Logger } from "pino";
import { type PackOptions, pack } from "tar-fs";
import { followBuild, packageRoot, pruneImages } from "./image.js";
import {
  assemblePythonContext,
  describePython,
  type PythonInterpreter,
  PythonUnavailableError,
} from "./python-layout.js";

/**
 * The Python runner image: FROM scratch with this machine's own python3, its
 * standard library and the shared libraries `ldd` lists, and
 * runner-image/runner.py. No registry, no pip.
 */
export const PYTHON_IMAGE_REPO = "labrun-runner-python";

/** The python an agent uses unless told otherwise: `python3` on PATH. */
export const DEFAULT_PYTHON = "python3";

/** Bumped when the image's layout changes, so a new layout gets a new tag. */
const LAYOUT_VERSION = "1";
const RUNNER_FILES = ["runner.py", "python.Dockerfile"] as const;

/**
 * `labrun-runner-python:<hash>`: a content hash over runner.py, the
 * Dockerfile, the layout and the interpreter (its version string with build
 * date, paths, and the binary's size and time), so a changed runner or an
 * upgraded python builds a new image instead of reusing a stale one.
 *
 * @example pythonImageTag(describePython("python3")) // "labrun-runner-python:9d1c…"
 */
export function pythonImageTag(info: PythonInterpreter): string {
  const hash = createHash("sha256").update(LAYOUT_VERSION);
  const source = join(packageRoot(), "runner-image");
  for (const file of RUNNER_FILES) hash.update(file).update(readFileSync(join(source, file)));
  const binary = statSync(info.executable);
  hash.update(JSON.stringify(info)).update(`${binary.size}:${binary.mtimeMs}`);
  return `${PYTHON_IMAGE_REPO}:${hash.digest("hex").slice(0, 16)}`;
}

const builds = new Map<string, Promise<string>>();

/**
 * The Python runner image for `python` (a path or a name on PATH), built
 * unless it exists; returns its tag. Throws PythonUnavailableError when this
 * python cannot be packed, with the reason.
 */
export async function ensurePythonImage(
  docker: Dockerode,
  logger: Logger,
  python: string = DEFAULT_PYTHON,
): Promise<string> {
  const info = describePython(python);
  const tag = pythonImageTag(info);
  if (await imageExists(docker, tag)) return tag;
  let build = builds.get(tag);
  if (!build) {
    build = buildPythonImage(docker, logger, python).finally(() => builds.delete(tag));
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
    throw error;
  }
}

/** Builds the image, then checks it really imports encodings and json; returns its tag. */
export async function buildPythonImage(
  docker: Dockerode,
  logger: Logger,
  python: string = DEFAULT_PYTHON,
): Promise<string> {
  const info = describePython(python);
  const tag = pythonImageTag(info);
  const started = performance.now();
  const context = mkdtempSync(join(tmpdir(), "labrun-python-image-"));
  try {
    const assembled = assemblePythonContext(context, info);
    logger.info(
      {
        tag,
        python: info.executable,
        libraries: assembled.libraries.length,
        mb: Math.round(assembled.bytes / 2 ** 20),
      },
      "building the python runner image",
    );
    const packOptions: PackOptions & { umask: number } = {
      umask: 0,
      map: (header) => ({ ...header, uid: 0, gid: 0 }),
    };
    const stream = await docker.buildImage(pack(context, packOptions), {
      t: tag,
      labels: { "labrun.runner": "python" },
      rm: true,
      forcerm: true,
    });
    await followBuild(docker, stream, logger);
  } catch (error) {
    throw new PythonUnavailableError(
      `could not build the python runner image ${tag} from ${info.executable}: ${describe(error)}`,
    );
  } finally {
    rmSync(context, { recursive: true, force: true });
  }
  try {
    await checkImage(docker, tag, info);
  } catch (error) {
    await docker
      .getImage(tag)
      .remove()
      .catch(() => {});
    throw error;
  }
  logger.info(
    { tag, ms: Math.round(performance.now() - started) },
    "built the python runner image",
  );
  return tag;
}

/**
 * Runs the image's interpreter once, as a job would (no network, read-only,
 * unprivileged), and imports encodings and json: an interpreter that could
 * not be packed (a library ldd did not list, a stdlib elsewhere) fails here,
 * at build time, instead of failing every job.
 */
async function checkImage(docker: Dockerode, tag: string, info: PythonInterpreter): Promise<void> {
  const container = await docker.createContainer({
    Image: tag,
    Entrypoint: [info.executable, "-I", "-B", "-c", "import encodings, json; print('ok')"],
    User: "65534:65534",
    NetworkDisabled: true,
    AttachStdout: true,
    AttachStderr: true,
    Labels: { "labrun.check": tag },
    HostConfig: { NetworkMode: "none", ReadonlyRootfs: true, CapDrop: ["ALL"] },
  });
  try {
    const stream = await container.attach({ stream: true, stdout: true, stderr: true });
    const output: Buffer[] = [];
    const collect = new PassThrough();
    collect.on("data", (chunk: Buffer) => output.push(chunk));
    docker.modem.demuxStream(stream, collect, collect);
    await container.start();
    const { StatusCode } = (await container.wait()) as { StatusCode?: number };
    await new Promise((resolve) => setTimeout(resolve, 50));
    const text = Buffer.concat(output).toString("utf8").trim();
    if (StatusCode !== 0 || !text.endsWith("ok")) {
      throw new PythonUnavailableError(
        `${info.executable} cannot be packed into a runner image: \`import encodings, json\` failed in it (exit ${StatusCode}): ${text.slice(-500) || "no output"}`,
      );
    }
  } finally {
    await container.remove({ force: true }).catch(() => {});
  }
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * Removes Python runner images other than `keep` (the one for this machine's
 * python, if it has one). An image a container still uses is kept.
 */
export function prunePythonImages(docker: Dockerode, keep: string | undefined): Promise<string[]> {
  return pruneImages(docker, PYTHON_IMAGE_REPO, keep);
}

/** describePython for `python`, or for the default python3 when it is unset. */
export function describePythonFor(python: string | undefined): PythonInterpreter {
  return describePython(python ?? DEFAULT_PYTHON);
}
