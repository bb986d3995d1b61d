import type { Logger } from "pino";
import { createApp } from "./app.js";
import { joinCluster } from "./cluster/index.js";
import { type CoordinatorConfigInput, parseCoordinatorConfig } from "./config.js";
import { createMetrics } from "./metrics/index.js";
import { startRetention } from "./retention.js";
import { type HttpServer, listen } from "./server.js";
import { describeStore, openStoreFrom } from "./store/open.js";
import { startLeaseSweeper } from "./sweeper.js";
import { settleTokens, type Tokens } from "./tokens.js";

export type { CoordinatorConfigInput } from "./config.js";

export interface RunningCoordinator {
  /** Base URL to reach it, e.g. http://127.0.0.1:7878 (the real port when port was 0). */
  url: string;
  port: number;
  tokens: Tokens;
  dataDir: string;
  /** Stops the sweeper, answers long-polls, closes the server, then the database. Idempotent. */
  close(): Promise<void>;
}

/**
 * Starts the coordinator: store, tokens, lease sweeper, HTTP server. Wiring
 * only; resolves once the server listens. Bad settings reject with a message
 * that names them.
 *
 * @example
 * const running = await startCoordinator({ dataDir, port: 0 }, logger);
 * await fetch(`${running.url}/healthz`);
 * await running.close();
 */
export async function startCoordinator(
  input: CoordinatorConfigInput,
  logger: Logger,
): Promise<RunningCoordinator> {
  const config = parseCoordinatorConfig(input);
  // A postgres:// URL (several coordinators may share it), else SQLite in the data dir.
  const store = await openStoreFrom(config.store ?? config.dataDir, config);
  // PostgreSQL: wakes reach the other coordinators, one of them leads maintenance.
  const cluster = await joinCluster(
    config.store ?? config.dataDir,
    store,
    config.leaseTtlMs,
    logger,
  ).catch(async (error: unknown) => {
    await store.close();
    throw error;
  });
  const { notifier, leadership } = cluster;
  // One registry for the routes and the sweeper, with the process's own metrics.
  const metrics = createMetrics({
    store,
    notifier,
    processMetrics: true,
    isLeader: leadership.isLeader,
  });
  let server: HttpServer;
  let tokens: Tokens;
  try {
    // The store's tokens (the first coordinator's), so every coordinator on it accepts the same.
    const settled = await settleTokens(config.dataDir, (offered) => store.claimTokens(offered));
    tokens = settled.tokens;
    if (settled.minted)
      logger.info({ path: settled.path }, "created client, admin and agent tokens");
    if (settled.file === "rewritten")
      logger.warn(
        { path: settled.path },
        "tokens.json held other tokens than the store; rewrote it with the store's (the old ones no longer work)",
      );
    const app = createApp({ store, notifier, tokens, config, logger, metrics });
    server = await listen(app.fetch, config.host, config.port, (error) =>
      logger.error({ err: error }, "HTTP server error"),
    );
  } catch (error) {
    await cluster.close();
    await store.close();
    throw error;
  }
  const stopSweeper = startLeaseSweeper(
    store,
    notifier,
    logger,
    config.sweepMs,
    Date.now,
    metrics,
    config.leaseTtlMs,
    leadership.isLeader,
  );
  const stopRetention = startRetention(
    store,
    logger,
    config.retentionMs,
    Date.now,
    leadership.isLeader,
  );
  const url = `http://${reachableHost(config.host)}:${server.port}`;
  logger.info(
    { url, dataDir: config.dataDir, store: describeStore(config.store ?? config.dataDir) },
    "coordinator listening",
  );

  let closing: Promise<void> | undefined;
  return {
    url,
    port: server.port,
    tokens,
    dataDir: config.dataDir,
    close() {
      closing ??= (async () => {
        const stopped = Promise.all([stopSweeper(), stopRetention()]);
        notifier.close();
        await server.close();
        await stopped;
        await cluster.close();
        await store.close();
        logger.info("coordinator stopped");
      })();
      return closing;
    },
  };
}

/** The host to put in a URL: wildcard addresses are reached over loopback. */
function reachableHost(host: string): string {
  if (host === "0.0.0.0") return "127.0.0.1";
  if (host === "::" || host === "[::]") return "[::1]";
  return host.includes(":") && !host.startsWith("[") ? `[${host}]` : host;
}
