import type { IncomingMessage, Server, ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { serve } from "@hono/node-server";

/** Requests still unanswered this long after close() have their sockets closed. */
const CLOSE_GRACE_MS = 1_000;

export interface HttpServer {
  port: number;
  /**
   * Stops accepting connections; answers in flight end their connection
   * (`Connection: close`), idle keep-alive sockets close at once, and any
   * left after a grace period are closed by force. Never hangs on a client.
   */
  close(): Promise<void>;
}

/**
 * Serves `fetch` (a Hono app's) with @hono/node-server on host:port; resolves
 * once listening (port 0 → the port the OS picked), rejects on EADDRINUSE etc.
 */
export async function listen(
  fetch: Parameters<typeof serve>[0]["fetch"],
  hostname: string,
  port: number,
  onError: (error: Error) => void,
): Promise<HttpServer> {
  // Without createServer/serverOptions for http2 or https, serve() makes a node:http Server.
  const server = await new Promise<Server>((resolve, reject) => {
    const created = serve({ fetch, hostname, port }, () => {
      created.off("error", reject);
      resolve(created as Server);
    });
    created.once("error", reject);
  });
  server.on("error", onError);

  let closing = false;
  const unanswered = new Set<ServerResponse>();
  const endConnectionAfter = (res: ServerResponse) => {
    if (!res.headersSent) res.setHeader("connection", "close");
  };
  server.on("request", (_req: IncomingMessage, res: ServerResponse) => {
    if (closing) endConnectionAfter(res);
    unanswered.add(res);
    res.once("close", () => unanswered.delete(res));
  });

  let closed: Promise<void> | undefined;
  return {
    port: (server.address() as AddressInfo).port,
    close() {
      closed ??= new Promise<void>((resolve) => {
        closing = true;
        for (const res of unanswered) endConnectionAfter(res);
        server.close(() => resolve());
        server.closeIdleConnections();
        setTimeout(() => server.closeAllConnections(), CLOSE_GRACE_MS).unref();
      });
      return closed;
    },
  };
}
