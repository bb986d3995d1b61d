import { isConnectionError } from "../../protocol/servers.js";

/**
 * Why a store call may fail when the database is away rather than wrong:
 * its server is down, restarting or out of connections, or the socket to
 * it broke. The HTTP layer answers these 503 UNAVAILABLE (clients and
 * agents then try another coordinator, or again), not 500 INTERNAL.
 */
const UNREACHABLE = new Set([
  // postgres.js's, for a connection it lost or could not open in time.
  "CONNECTION_CLOSED",
  "CONNECTION_ENDED",
  "CONNECTION_DESTROYED",
  "CONNECT_TIMEOUT",
  // SQLSTATEs: the server shut down (fast, or after a crash) or is not up yet, too many connections.
  "57P01",
  "57P02",
  "57P03",
  "53300",
]);

/**
 * The database did not answer: Node's codes for a socket that never
 * connected or broke (the clients' own list, isConnectionError), those of
 * UNREACHABLE, and SQLSTATE class 08, connection exception.
 */
export function isStoreUnavailable(error: unknown): boolean {
  const { code } = (error ?? {}) as { code?: unknown };
  if (typeof code !== "string") return false;
  return isConnectionError(error) || UNREACHABLE.has(code) || /^08[0-9A-Z]{3}$/.test(code);
}
