import * as z from "zod";
import { type HttpAnswer, HttpClient, type HttpRequest } from "./http-client.js";

/**
 * A list of coordinator base URLs, `URL1,URL2` (from `--server`,
 * `LABRUN_SERVER` or a config file), each without its trailing slashes.
 */
export const ServerList = z
  .string()
  .transform(splitServers)
  .pipe(
    z
      .array(
        z
          .string()
          .url("each server must be a URL like http://127.0.0.1:7878")
          .refine(
            (url) => /^https?:\/\//.test(url),
            "each server must be an http:// or https:// URL",
          ),
      )
      .min(1, "give at least one server"),
  );

/**
 * The same list kept as text (`URL1,URL2`, normalised), for config shapes
 * that pass it on as they got it (an env file, a unit); `message` is the
 * error for a bad URL.
 */
export const serverListText = (message: string) =>
  z
    .string()
    .refine((text) => ServerList.safeParse(text).success, message)
    .transform((text) => splitServers(text).join(","));

/** `"URL1, URL2/"` → `["URL1", "URL2"]`: the order is the order of preference. */
export function splitServers(text: string): string[] {
  return text
    .split(",")
    .map((url) => url.trim().replace(/\/+$/, ""))
    .filter((url) => url !== "");
}

/** The same list with its first server moved last: the next one to try after a failure. */
export function rotateServers(text: string): string {
  const [first, ...rest] = splitServers(text);
  return [...rest, first].join(",");
}

/** Node's codes for a request that never reached, or lost, its server. */
const CONNECTION_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "EPIPE",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "EHOSTDOWN",
  "ENOTFOUND",
  "EAI_AGAIN",
  "UND_ERR_SOCKET",
]);

/** An error that says the server is unreachable or went away mid-request (not our own abort). */
export function isConnectionError(error: unknown): boolean {
  const { code } = error as { code?: unknown };
  return typeof code === "string" && CONNECTION_CODES.has(code);
}

/** Every server failed; `cause` is the last one's error, `server` the last one tried. */
export class AllServersFailedError extends Error {
  constructor(
    readonly server: string,
    readonly servers: readonly string[],
    override readonly cause: unknown,
  ) {
    super(`no server answered (${servers.join(", ")})`);
    this.name = "AllServersFailedError";
  }
}

/**
 * Requests to one of several coordinators that share a store. It sticks to
 * the server that last answered, and moves to the next one on a connection
 * error or a 5xx answer, trying each server once per request. Only when every
 * server failed does the request fail: with the last 5xx answer when there
 * was one (its error body is the most useful thing to show), else with
 * AllServersFailedError.
 *
 * `timeoutMs` (silence on the socket) counts only when there is another
 * server to go to: with one server, waiting on is as good as anything.
 *
 * A request that failed over may have reached the first server: a lease or a
 * submit whose answer was lost is sent again. Results are idempotent by lease
 * id and a lost lease expires, so agents are safe; a client's submit may then
 * be queued twice (docs/decisions.md).
 *
 * @example
 * const servers = new FailoverHttp(["http://a:7878", "http://b:7878"]);
 * const { answer, server } = await servers.request("/healthz", { method: "GET" });
 */
export class FailoverHttp {
  private readonly http = new HttpClient();
  private index = 0;

  constructor(readonly servers: readonly string[]) {
    if (servers.length === 0) throw new Error("FailoverHttp needs at least one server");
  }

  /** The server requests go to first (the last one that answered). */
  get current(): string {
    return this.servers[this.index] as string;
  }

  async request(
    path: string,
    options: HttpRequest,
  ): Promise<{ answer: HttpAnswer; server: string }> {
    let lastError: unknown;
    let lastAnswer: { answer: HttpAnswer; server: string } | undefined;
    const { timeoutMs, ...rest } = options;
    const attempt: HttpRequest = this.servers.length > 1 && timeoutMs ? options : rest;
    // Each request walks the list from where it starts on its own: many in
    // flight fail over together, and a shared step per failure would send
    // some of them past the live server and back to the dead one.
    const start = this.index;
    let server = this.current;
    for (let tried = 0; tried < this.servers.length; tried++) {
      const index = (start + tried) % this.servers.length;
      server = this.servers[index] as string;
      try {
        const answer = await this.http.request(`${server}${path}`, attempt);
        if (answer.status < 500) {
          this.index = index;
          return { answer, server };
        }
        lastAnswer = { answer, server };
      } catch (error) {
        if (options.signal?.aborted || !isConnectionError(error)) throw error;
        lastError = error;
      }
      // The next request starts past this one (unless another has answered since).
      if (this.index === index) this.index = (index + 1) % this.servers.length;
    }
    if (lastAnswer) return lastAnswer;
    throw new AllServersFailedError(server, this.servers, lastError);
  }

  close(): void {
    this.http.close();
  }
}
