import { Agent, request as httpRequest, type IncomingHttpHeaders } from "node:http";
import type { RequestOptions } from "node:https";

/** What a coordinator answered: status, headers and the body as text. */
export interface HttpAnswer {
  status: number;
  headers: IncomingHttpHeaders;
  text: string;
}

export interface HttpRequest {
  method: "GET" | "POST" | "DELETE";
  headers?: Record<string, string>;
  body?: string;
  signal?: AbortSignal;
  /**
   * Fails the request with ETIMEDOUT when its socket is silent this long: a
   * server that is stopped (SIGSTOP) or cut off accepts no less than a live
   * one, and only a timeout tells them apart. A long-poll passes its wait plus
   * a margin. Default: none.
   */
  timeoutMs?: number;
}

/**
 * One HTTP/1.1 request over `node:http` (or `node:https`, loaded only for an
 * https URL), keeping its connection for the next request. Used by the CLI and
 * the agent instead of `fetch`: on Node 20 the first `fetch` compiles undici
 * (~0.1 s of a CLI run, ~35 MB of an agent's RSS), and every job pays a
 * request or two.
 *
 * Network failures reject with Node's own error (`code` ECONNREFUSED, ENOTFOUND,
 * …); an aborted signal rejects with an AbortError. A request on a kept
 * connection that the server closed meanwhile is sent once more on a new one.
 *
 * @example
 * const http = new HttpClient();
 * const { status, text } = await http.request("http://127.0.0.1:7878/healthz", { method: "GET" });
 */
export class HttpClient {
  private readonly agents = new Map<string, Agent>();

  async request(url: string | URL, options: HttpRequest): Promise<HttpAnswer> {
    const target = typeof url === "string" ? new URL(url) : url;
    try {
      return await this.once(target, options);
    } catch (error) {
      if (!isStaleConnection(error) || options.signal?.aborted) throw error;
      return this.once(target, options);
    }
  }

  /** Closes the kept connections (a process that exits need not: they do not hold it open). */
  close(): void {
    for (const agent of this.agents.values()) agent.destroy();
    this.agents.clear();
  }

  private async once(url: URL, options: HttpRequest): Promise<HttpAnswer> {
    const secure = url.protocol === "https:";
    if (!secure && url.protocol !== "http:") {
      throw Object.assign(new Error(`unsupported protocol ${url.protocol}`), {
        code: "ERR_UNSUPPORTED_PROTOCOL",
      });
    }
    const send = secure ? (await import("node:https")).request : httpRequest;
    const headers: Record<string, string> = { ...options.headers };
    if (options.body !== undefined) {
      headers["content-length"] = String(Buffer.byteLength(options.body));
    }
    const requestOptions: RequestOptions = {
      method: options.method,
      headers,
      agent: await this.agentFor(secure),
      ...(options.signal ? { signal: options.signal } : {}),
    };
    return new Promise<HttpAnswer>((resolve, reject) => {
      const req = send(url, requestOptions, (response) => {
        const chunks: Buffer[] = [];
        response.on("data", (chunk: Buffer) => chunks.push(chunk));
        response.once("error", reject);
        response.once("end", () => {
          resolve({
            status: response.statusCode ?? 0,
            headers: response.headers,
            text: Buffer.concat(chunks).toString("utf8"),
          });
        });
      });
      req.once("error", (error) =>
        reject(Object.assign(error, { reusedSocket: req.reusedSocket })),
      );
      if (options.timeoutMs !== undefined) {
        req.setTimeout(options.timeoutMs, () => {
          const error = new Error(`no answer within ${options.timeoutMs} ms`);
          req.destroy(Object.assign(error, { code: "ETIMEDOUT" }));
        });
      }
      req.end(options.body);
    });
  }

  private async agentFor(secure: boolean): Promise<Agent> {
    const key = secure ? "https" : "http";
    let agent = this.agents.get(key);
    if (!agent) {
      // Kept-alive sockets are unref'd while idle, so they never keep a CLI process alive.
      agent = secure
        ? new (await import("node:https")).Agent({ keepAlive: true })
        : new Agent({ keepAlive: true });
      this.agents.set(key, agent);
    }
    return agent;
  }
}

/** The server closed a kept connection just as this request went out on it. */
function isStaleConnection(error: unknown): boolean {
  const { code, reusedSocket } = error as { code?: string; reusedSocket?: boolean };
  return reusedSocket === true && (code === "ECONNRESET" || code === "EPIPE");
}
