import { describe, expect, it } from "vitest";
import { parseLdd, RUNNER_IMAGE_REPO, runnerImageTag } from "./image.js";

describe("parseLdd", () => {
  it("lists every library path, including the interpreter, and skips the vdso", () => {
    const text = `	linux-vdso.so.1 (0x00007ffd)
	libdl.so.2 => /lib/x86_64-linux-gnu/libdl.so.2 (0x00007f)
	libstdc++.so.6 => /lib/x86_64-linux-gnu/libstdc++.so.6 (0x00007f)
	libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f)
	/lib64/ld-linux-x86-64.so.2 (0x00007f)`;
    expect(parseLdd(text)).toEqual([
      "/lib/x86_64-linux-gnu/libdl.so.2",
      "/lib/x86_64-linux-gnu/libstdc++.so.6",
      "/lib/x86_64-linux-gnu/libc.so.6",
      "/lib64/ld-linux-x86-64.so.2",
    ]);
  });

  it("finds nothing in a static binary's answer", () => {
    expect(parseLdd("\tnot a dynamic executable")).toEqual([]);
  });
});

describe("runnerImageTag", () => {
  it("is a stable content hash tag", () => {
    const tag = runnerImageTag();
    expect(tag).toMatch(new RegExp(`^${RUNNER_IMAGE_REPO}:[0-9a-f]{16}$`));
    expect(runnerImageTag()).toBe(tag);
  });
});
