import { describe, expect, it } from "vitest";
import { z } from "zod";
import { parseCommand } from "./args.js";
import { UsageError } from "./errors.js";
import { limitFlags } from "./limit-flags.js";

const parse = (prefix: "" | "max-", argv: string[]) => {
  const flags = limitFlags(prefix);
  const args = parseCommand(
    "test",
    argv,
    { ...flags.options },
    z.object({ ...flags.shape, positionals: z.tuple([]) }),
  );
  return flags.limits(args);
};

describe("limitFlags", () => {
  it("reads every job limit from its flag, in its unit", () => {
    expect(
      parse("", [
        "--timeout=2m",
        "--memory=1g",
        "--cpus=0.5",
        "--pids=128",
        "--tmpfs=16m",
        "--log-bytes=4k",
        "--result-bytes=1m",
      ]),
    ).toEqual({
      timeoutMs: 120_000,
      memoryMb: 1024,
      cpus: 0.5,
      pids: 128,
      tmpfsMb: 16,
      logBytes: 4096,
      resultBytes: 1 << 20,
    });
  });

  it("gives only the limits named, under the flags' prefix", () => {
    expect(parse("max-", ["--max-pids", "512"])).toEqual({ pids: 512 });
    expect(parse("", [])).toEqual({});
  });

  it("refuses a value out of the protocol's range as a usage error naming the flag", () => {
    expect(() => parse("", ["--pids", "5"])).toThrow(UsageError);
    expect(() => parse("", ["--pids", "5"])).toThrow(/--pids: /);
    expect(() => parse("max-", ["--max-log-bytes", "1g"])).toThrow(/--max-log-bytes: /);
  });

  it("refuses a value it cannot read, with an example", () => {
    expect(() => parse("", ["--log-bytes", "lots"])).toThrow(/--log-bytes: use e.g. 64k/);
    expect(() => parse("", ["--cpus", "two"])).toThrow(/--cpus: use e.g./);
  });
});
