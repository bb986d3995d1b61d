/**
 * Where the API lives: its path prefix and the default coordinator address
 * (DESIGN.md §3). A module of their own (index.ts re-exports them), so that
 * a CLI command can import them without building every shape the protocol
 * declares.
 */

/** Path prefix of every versioned route. */
export const API_PREFIX = "/v1";
/** Default coordinator address (DESIGN.md §3). */
export const DEFAULT_PORT = 7878;
export const DEFAULT_HOST = "127.0.0.1";
