import { existsSync, lstatSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type Dockerode from "dockerode";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  assembleBuildContext,
  packageRoot,
  parseLdd,
  pruneRunnerImages,
  RUNNER_IMAGE_REPO,
  runnerImageTag,
} from "./image.js";

describe("parseLdd", () => {
  it("lists every library path, including the loader, and skips the vdso", () => {
    const text = `	linux-vdso.so.1 (0x00007ffd61b9e000)
	libdl.so.2 => /lib/x86_64-linux-gnu/libdl.so.2 (0x00007f2a1c9a5000)
	libstdc++.so.6 => /lib/x86_64-linux-gnu/libstdc++.so.6 (0x00007f2a1c600000)
	libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f2a1c40e000)
	/lib64/ld-linux-x86-64.so.2 (0x00007f2a1c9c1000)
`;
    expect(parseLdd(text)).toEqual([
      "/lib/x86_64-linux-gnu/libdl.so.2",
      "/lib/x86_64-linux-gnu/libstdc++.so.6",
      "/lib/x86_64-linux-gnu/libc.so.6",
      "/lib64/ld-linux-x86-64.so.2",
    ]);
  });

  it("reads the loader line of another architecture", () => {
    const text = `	linux-vdso.so.1 (0x0000ffff8d6d4000)
	libc.so.6 => /lib/aarch64-linux-gnu/libc.so.6 (0x0000ffff8d4f0000)
	/lib/ld-linux-aarch64.so.1 (0x0000ffff8d697000)`;
    expect(parseLdd(text)).toEqual([
      "/lib/aarch64-linux-gnu/libc.so.6",
      "/lib/ld-linux-aarch64.so.1",
    ]);
  });

  it("lists a library once even when ldd repeats it", () => {
    const line = "\tlibm.so.6 => /lib/x86_64-linux-gnu/libm.so.6 (0x00007f)\n";
    expect(parseLdd(line + line)).toEqual(["/lib/x86_64-linux-gnu/libm.so.6"]);
  });

  it("finds nothing in a static binary's answer", () => {
    expect(parseLdd("\tnot a dynamic executable\n")).toEqual([]);
    expect(parseLdd("\tstatically linked\n")).toEqual([]);
  });
});

describe("runnerImageTag", () => {
  it("is the repo and 16 hex digits, the same on every call", () => {
    const tag = runnerImageTag();
    expect(tag).toMatch(new RegExp(`^${RUNNER_IMAGE_REPO}:[0-9a-f]{16}$`));
    expect(runnerImageTag()).toBe(tag);
  });
});

describe("packageRoot", () => {
  it("finds the directory of labrun's package.json", () => {
    const manifest = JSON.parse(readFileSync(join(packageRoot(), "package.json"), "utf8"));
    expect(manifest.name).toBe("labrun");
  });
});

describe("assembleBuildContext", () => {
  let context: string;
  let libraries: string[];
  beforeAll(() => {
    context = mkdtempSync(join(tmpdir(), "labrun-image-test-"));
    libraries = assembleBuildContext(context);
  });
  afterAll(() => rmSync(context, { recursive: true, force: true }));

  it("puts node, the runner and the Dockerfile where the Dockerfile expects them", () => {
    const node = statSync(join(context, "rootfs/usr/local/bin/node"));
    // Executable, not readable, by the job's user: its processes are non-dumpable.
    expect(node.mode & 0o777).toBe(0o711);
    expect(readFileSync(join(context, "rootfs/runner/runner.js"), "utf8")).toContain("nonce");
    expect(JSON.parse(readFileSync(join(context, "rootfs/runner/package.json"), "utf8"))).toEqual({
      type: "commonjs",
    });
    expect(readFileSync(join(context, "Dockerfile"), "utf8")).toContain("FROM scratch");
  });

  it("copies every shared library as a regular file at its own absolute path", () => {
    for (const library of libraries) {
      const copy = join(context, "rootfs", library);
      expect(existsSync(copy), library).toBe(true);
      expect(lstatSync(copy).isFile(), library).toBe(true);
    }
  });

  it("leaves an empty world-writable sticky /tmp", () => {
    expect(statSync(join(context, "rootfs/tmp")).mode & 0o7777).toBe(0o1777);
  });
});

describe("pruneRunnerImages", () => {
  it("removes other runner tags, keeps this labrun's own and any a container still uses", async () => {
    const current = runnerImageTag();
    const removed: string[] = [];
    const docker = {
      listImages: async () => [
        { RepoTags: [current] },
        { RepoTags: ["labrun-runner:old1", "labrun-runner:old2"] },
        { RepoTags: ["labrun-runner:inuse"] },
      ],
      getImage: (tag: string) => ({
        remove: async () => {
          if (tag === "labrun-runner:inuse") {
            throw Object.assign(new Error("conflict: image is being used"), { statusCode: 409 });
          }
          removed.push(tag);
        },
      }),
    } as unknown as Dockerode;
    expect(await pruneRunnerImages(docker)).toEqual(["labrun-runner:old1", "labrun-runner:old2"]);
    expect(removed).not.toContain(current);
  });
});
