import * as z from "zod";
import { DEFAULT_HOST, DEFAULT_PORT } from "../../protocol/index.js";
import { AGENT_TUNING, agentTuning, Grace, Warm } from "../agent-flags.js";
import { AGENT_JOIN, durationFlag, parseCommand, parsedFlag } from "../args.js";
import { EXIT } from "../errors.js";
import { limitFlags } from "../limit-flags.js";
import { createLogger } from "../logger.js";
import { configPath, defaultDataDir, writeClientConfig } from "../settings.js";
import { parseBytes } from "../units.js";

const Port = z.coerce.number().int().min(0).max(65535);
const Slots = z.coerce.number().int().min(1).max(256);
const NoPositionals = z.tuple([], { message: "takes no positional arguments" });
const labDefaults = limitFlags("default-");

const ServerArgs = {
  "lease-ttl": durationFlag("lease-ttl", "10s").optional(),
  retention: durationFlag("retention", "7d").optional(),
  sweep: durationFlag("sweep", "500ms, 2s").optional(),
  "max-input": parsedFlag(parseBytes, "--max-input: use e.g. 1m, 4m").optional(),
  "fair-share-half-life": durationFlag("fair-share-half-life", "1h, 30m").optional(),
  "default-max-running": z.coerce.number().int().min(0).max(10_000_000).optional(),
  "default-max-queued": z.coerce.number().int().min(0).max(10_000_000).optional(),
  "max-program": parsedFlag(parseBytes, "--max-program: use e.g. 8m, 32m").optional(),
  ...labDefaults.shape,
  port: Port.default(() => Number(process.env.LABRUN_PORT ?? DEFAULT_PORT)),
  host: z.string().min(1).default(DEFAULT_HOST),
  "data-dir": z
    .string()
    .min(1)
    .default(() => defaultDataDir()),
};
const SERVER_OPTIONS = {
  port: { type: "string" },
  host: { type: "string" },
  "data-dir": { type: "string" },
  "lease-ttl": { type: "string" },
  retention: { type: "string" },
  sweep: { type: "string" },
  "max-input": { type: "string" },
  "fair-share-half-life": { type: "string" },
  "default-max-running": { type: "string" },
  "default-max-queued": { type: "string" },
  "max-program": { type: "string" },
  ...labDefaults.options,
} as const;

/** Coordinator settings from the flags; the coordinator's own schema checks the ranges. */
const coordinatorSettings = (
  args: {
    "lease-ttl"?: number;
    retention?: number;
    sweep?: number;
    "max-input"?: number;
    "fair-share-half-life"?: number;
    "default-max-running"?: number;
    "default-max-queued"?: number;
    "max-program"?: number;
  } & Parameters<typeof labDefaults.limits>[0],
) => ({
  ...(args["fair-share-half-life"] !== undefined
    ? { fairShareHalfLifeMs: args["fair-share-half-life"] }
    : {}),
  ...(args["default-max-running"] !== undefined
    ? { defaultMaxRunning: args["default-max-running"] }
    : {}),
  ...(args["default-max-queued"] !== undefined
    ? { defaultMaxQueued: args["default-max-queued"] }
    : {}),
  defaultLimits: labDefaults.limits(args),
  ...(args["max-input"] !== undefined ? { maxInputBytes: args["max-input"] } : {}),
  ...(args["max-program"] !== undefined ? { maxProgramBytes: args["max-program"] } : {}),
  ...(args["lease-ttl"] !== undefined
    ? {
        leaseTtlMs: args["lease-ttl"],
        heartbeatMs: Math.min(1_000, Math.floor(args["lease-ttl"] / 3)),
      }
    : {}),
  ...(args.retention !== undefined ? { retentionMs: args.retention } : {}),
  ...(args.sweep !== undefined ? { sweepMs: args.sweep } : {}),
});

/**
 * SIGINT/SIGTERM handling, installed before anything starts: a signal that
 * arrives while the service is still starting (systemctl stop right after
 * start) stops it as soon as it is up, instead of killing it half-started.
 * The first signal stops gracefully; a second one exits at once
 * (graphile-worker's registerSignalHandlers).
 *
 * @example
 * const signals = catchSignals();
 * const running = await startAgent(config, logger);
 * return signals.untilStopped(() => running.close());
 */
function catchSignals(): { untilStopped(stop: () => Promise<void>): Promise<number> } {
  let signalled: NodeJS.Signals | null = null;
  let onStop: ((signal: NodeJS.Signals) => void) | null = null;
  const onSignal = (signal: NodeJS.Signals) => {
    if (signalled) process.exit(130);
    signalled = signal;
    process.stderr.write(`labrun: ${signal}: stopping (send it again to stop at once)\n`);
    onStop?.(signal);
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  return {
    untilStopped: (stop) =>
      new Promise((resolve) => {
        onStop = () => {
          stop().then(
            () => resolve(EXIT.ok),
            (error: unknown) => {
              process.stderr.write(`labrun: error while stopping: ${(error as Error).message}\n`);
              resolve(EXIT.jobFailed);
            },
          );
        };
        if (signalled) onStop(signalled);
      }),
  };
}

/** `--store`, else LABRUN_STORE, else nothing (the SQLite store in the data dir). */
const storeSetting = (flag: string | undefined) => {
  const store = flag ?? (process.env.LABRUN_STORE || undefined);
  return store === undefined ? {} : { store };
};

/** `labrun coordinator`: the HTTP API, queue and store. */
export async function coordinator(argv: string[]): Promise<number> {
  const args = parseCommand(
    "coordinator",
    argv,
    { ...SERVER_OPTIONS, store: { type: "string" } },
    z.object({
      ...ServerArgs,
      // The coordinator's own schema checks it is a PostgreSQL URL.
      store: z.string().min(1).optional(),
      positionals: NoPositionals,
    }),
  );
  const logger = createLogger();
  const signals = catchSignals();
  const { startCoordinator } = await import("../../coordinator/main.js");
  const running = await startCoordinator(
    {
      host: args.host,
      port: args.port,
      dataDir: args["data-dir"],
      ...storeSetting(args.store),
      ...coordinatorSettings(args),
    },
    logger,
  );
  logger.info(
    { url: running.url, tokens: `${running.dataDir}/tokens.json` },
    "coordinator listening; tokens are in tokens.json",
  );
  return signals.untilStopped(() => running.close());
}

const AgentArgs = z.object({
  ...AGENT_JOIN,
  slots: Slots.optional(),
  name: z.string().optional(),
  ...AGENT_TUNING.shape,
  positionals: NoPositionals,
});

/** `labrun agent --server URL --token T`: one lab machine's worker. */
export async function agent(argv: string[]): Promise<number> {
  const args = parseCommand(
    "agent",
    argv,
    {
      server: { type: "string", default: process.env.LABRUN_SERVER },
      token: { type: "string", default: process.env.LABRUN_AGENT_TOKEN },
      slots: { type: "string" },
      name: { type: "string" },
      ...AGENT_TUNING.options,
    },
    AgentArgs,
  );
  const logger = createLogger();
  const signals = catchSignals();
  // Only what this role needs is loaded: an agent never loads SQLite or Hono.
  const { startAgent } = await import("../../agent/main.js");
  const running = await startAgent(
    {
      server: args.server,
      token: args.token,
      ...(args.slots ? { slots: args.slots } : {}),
      ...(args.name ? { name: args.name } : {}),
      ...agentTuning(args),
    },
    logger,
  );
  return signals.untilStopped(() => running.close());
}

/** `labrun up`: coordinator + one local agent in one process, client config written. */
export async function up(argv: string[]): Promise<number> {
  const args = parseCommand(
    "up",
    argv,
    {
      ...SERVER_OPTIONS,
      slots: { type: "string" },
      warm: { type: "string" },
      grace: { type: "string" },
    },
    z.object({
      ...ServerArgs,
      slots: Slots.optional(),
      warm: Warm.optional(),
      grace: Grace.optional(),
      positionals: NoPositionals,
    }),
  );
  const logger = createLogger();
  const signals = catchSignals();
  const [{ startCoordinator }, { startAgent }] = await Promise.all([
    import("../../coordinator/main.js"),
    import("../../agent/main.js"),
  ]);
  const running = await startCoordinator(
    {
      host: args.host,
      port: args.port,
      dataDir: args["data-dir"],
      ...coordinatorSettings(args),
    },
    logger,
  );
  let localAgent: Awaited<ReturnType<typeof startAgent>>;
  try {
    localAgent = await startAgent(
      {
        server: running.url,
        token: running.tokens.agent,
        ...(args.slots ? { slots: args.slots } : {}),
        ...(args.warm !== undefined ? { warmPool: args.warm } : {}),
        ...(args.grace !== undefined ? { drainGraceMs: args.grace } : {}),
      },
      logger,
    );
  } catch (error) {
    await running.close();
    throw error;
  }
  writeClientConfig({
    server: running.url,
    token: running.tokens.client,
    adminToken: running.tokens.admin,
  });
  process.stderr.write(
    `labrun is up at ${running.url} with ${localAgent.slots} slots (agent ${localAgent.name}).\n` +
      `Client config written to ${configPath()}; try: labrun submit examples/hello.js\n`,
  );
  return signals.untilStopped(async () => {
    await localAgent.close();
    await running.close();
  });
}
