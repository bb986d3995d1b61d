import type { AddressInfo } from "node:net";
import { serve } from "@hono/node-server";
import type { Logger } from "pino";
import { createApp } from "./app.js";
import { requireRole } from "./auth.js";
import { CoordinatorConfig, type CoordinatorConfigInput } from "./config.js";
import { Notifier } from "./notifier.js";
import { Store } from "./store/store.js";
import { loadOrCreateTokens, type Tokens } from "./tokens.js";

export interface RunningCoordinator {
  url: string;
  port: number;
  tokens: Tokens;
  dataDir: string;
  close(): Promise<void>;
}

/** Starts the coordinator (wiring only): store, tokens, lease sweeper, HTTP server. */
export async function startCoordinator(
  input: CoordinatorConfigInput,
  logger: Logger,
): Promise<RunningCoordinator> {
  const config = CoordinatorConfig.parse(input);
  const store = new Store(config.dataDir, config);
  const { tokens, path: tokensPath, created } = loadOrCreateTokens(config.dataDir);
  if (created) logger.info({ path: tokensPath }, "created client, admin and agent tokens");
  const notifier = new Notifier();
  let closing = false;
  const clock = () => Date.now();

  const app = createApp({
    store,
    notifier,
    tokens,
    config,
    logger,
    clock,
    auth: (...roles) => requireRole(tokens, store, ...roles),
    closing: () => closing,
  });

  const sweeper = setInterval(() => {
    const { requeued, failed } = store.expireLeases(clock());
    if (requeued.length > 0) {
      logger.warn({ jobs: requeued }, "leases expired; jobs queued again");
      notifier.workAvailable();
    }
    for (const id of failed) {
      logger.warn({ jobId: id }, "job failed: its node was lost on every attempt");
      notifier.jobFinished(id);
    }
  }, config.sweepMs);
  sweeper.unref();

  const server = await new Promise<ReturnType<typeof serve>>((resolve, reject) => {
    const instance = serve({ fetch: app.fetch, hostname: config.host, port: config.port }, () =>
      resolve(instance),
    );
    instance.once("error", reject);
  });
  const port = (server.address() as AddressInfo).port;
  const url = `http://${config.host.includes(":") ? `[${config.host}]` : config.host}:${port}`;
  logger.info({ url, dataDir: config.dataDir }, "coordinator listening");

  return {
    url,
    port,
    tokens,
    dataDir: config.dataDir,
    async close() {
      closing = true;
      clearInterval(sweeper);
      // Long-polls answer now rather than holding the shutdown.
      notifier.close();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        if ("closeIdleConnections" in server) server.closeIdleConnections();
        setTimeout(() => {
          if ("closeAllConnections" in server) server.closeAllConnections();
        }, 1000).unref();
      });
      store.close();
      logger.info("coordinator stopped");
    },
  };
}
