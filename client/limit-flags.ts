import type { z } from "zod";
import { JobLimitsInput, type LimitName } from "../protocol/limits.js";
import { parsedFlag } from "./args.js";
import { UsageError } from "./errors.js";
import { parseBytes, parseDuration, parseMemoryMb } from "./units.js";

const number = (text: string) => {
  const value = Number(text);
  return text.trim() !== "" && Number.isFinite(value) ? value : undefined;
};

/**
 * Each job limit as a flag: its name, the limit it sets, how its value is
 * read and an example for the error. One table serves `labrun submit`
 * (`--pids 128`), the agent's maxima (`--max-pids 1024`) and the
 * coordinator's defaults (`--default-pids 128`).
 */
const LIMIT_FLAGS = {
  timeout: { limit: "timeoutMs", read: parseDuration, example: "10s, 500ms, 2m" },
  memory: { limit: "memoryMb", read: parseMemoryMb, example: "256m, 1g" },
  cpus: { limit: "cpus", read: number, example: "0.5, 2" },
  pids: { limit: "pids", read: number, example: "64, 256" },
  tmpfs: { limit: "tmpfsMb", read: parseMemoryMb, example: "64m, 1g" },
  "log-bytes": { limit: "logBytes", read: parseBytes, example: "64k, 1m" },
  "result-bytes": { limit: "resultBytes", read: parseBytes, example: "1m, 8m" },
} as const satisfies Record<
  string,
  { limit: LimitName; read: (text: string) => number | undefined; example: string }
>;
type LimitFlag = keyof typeof LIMIT_FLAGS;
const FLAG_NAMES = Object.keys(LIMIT_FLAGS) as LimitFlag[];

type Prefixed<P extends string> = {
  [F in LimitFlag as `${P}${F}`]: z.ZodOptional<ReturnType<typeof parsedFlag<number>>>;
};

/**
 * The limit flags under a prefix: parseArgs options, the zod shape of their
 * values, and the limits a parse gives (range-checked against the protocol,
 * so a bad value is a usage error naming the flag, before any request).
 *
 * @example
 * const flags = limitFlags("max-");
 * const args = parseCommand("agent", argv, { ...flags.options }, z.object({ ...flags.shape }));
 * flags.limits(args); // { pids: 1024 } for --max-pids 1024
 */
export function limitFlags<P extends "" | "max-" | "default-">(prefix: P) {
  const options = Object.fromEntries(
    FLAG_NAMES.map((flag) => [`${prefix}${flag}`, { type: "string" as const }]),
  ) as Record<`${P}${LimitFlag}`, { type: "string" }>;
  const shape = Object.fromEntries(
    FLAG_NAMES.map((flag) => [
      `${prefix}${flag}`,
      parsedFlag(
        LIMIT_FLAGS[flag].read,
        `--${prefix}${flag}: use e.g. ${LIMIT_FLAGS[flag].example}`,
      ).optional(),
    ]),
  ) as unknown as Prefixed<P>;
  const limits = (
    args: Partial<Record<`${P}${LimitFlag}`, number | undefined>>,
  ): JobLimitsInput => {
    const chosen: Partial<Record<LimitName, number>> = {};
    for (const flag of FLAG_NAMES) {
      const value = args[`${prefix}${flag}`];
      if (value !== undefined) chosen[LIMIT_FLAGS[flag].limit] = value;
    }
    const checked = JobLimitsInput.safeParse(chosen);
    if (!checked.success) {
      const issue = checked.error.issues[0];
      const limit = issue?.path[0];
      const flag = FLAG_NAMES.find((name) => LIMIT_FLAGS[name].limit === limit);
      throw new UsageError(
        `--${prefix}${flag ?? String(limit)}: ${issue?.message ?? "out of range"}`,
      );
    }
    return checked.data;
  };
  return { options, shape, limits };
}
