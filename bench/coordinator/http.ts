import { Agent, request } from "node:http";
import { API_PREFIX } from "../../protocol/index.js";

/** One answer: its status and its parsed JSON body (undefined when empty). */
export interface JsonAnswer {
  status: number;
  body: unknown;
}

/**
 * A minimal JSON-over-HTTP client for the bench's simulated agents and
 * submitter, on node:http with keep-alive.
 *
 * Why not global fetch: the bench shares the machine's two cores with the
 * coordinator it measures, and fetch (undici through web streams) spends
 * several times the CPU of node:http per small request; a heavier client would
 * steal cycles from the coordinator and understate its capacity. Answers are
 * not checked with zod for the same reason (the coordinator's own tests do
 * that); the bench only counts statuses and reads the ids it needs.
 */
export class LoopbackJson {
  readonly #agent = new Agent({ keepAlive: true, maxSockets: Number.POSITIVE_INFINITY });
  readonly #host: string;
  readonly #port: number;

  constructor(baseUrl: string) {
    const url = new URL(baseUrl);
    // The bench only ever talks to a coordinator it started on loopback.
    if (url.protocol !== "http:" || url.hostname !== "127.0.0.1") {
      throw new Error(`the bench talks to 127.0.0.1 only, not ${baseUrl}`);
    }
    this.#host = url.hostname;
    this.#port = Number(url.port);
  }

  /**
   * POSTs `body` (already JSON text, so hot loops can reuse one string) to
   * `/v1<path>`. A request on a reused keep-alive socket that the server had
   * just closed is retried once, as the node:http docs advise.
   */
  post(
    path: string,
    token: string,
    body: string,
    signal?: AbortSignal,
    contentType = "application/json",
  ): Promise<JsonAnswer> {
    return this.#send(path, token, body, signal, true, contentType);
  }

  /** Closes the idle keep-alive sockets. */
  close(): void {
    this.#agent.destroy();
  }

  #send(
    path: string,
    token: string,
    body: string,
    signal: AbortSignal | undefined,
    mayRetry: boolean,
    contentType: string,
  ): Promise<JsonAnswer> {
    return new Promise((resolve, reject) => {
      const req = request(
        {
          agent: this.#agent,
          host: this.#host,
          port: this.#port,
          method: "POST",
          path: `${API_PREFIX}${path}`,
          headers: {
            authorization: `Bearer ${token}`,
            "content-type": contentType,
            "content-length": Buffer.byteLength(body),
          },
          ...(signal ? { signal } : {}),
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (chunk: Buffer) => chunks.push(chunk));
          res.on("error", reject);
          res.on("end", () => {
            const text = Buffer.concat(chunks).toString("utf8");
            try {
              resolve({ status: res.statusCode ?? 0, body: text ? JSON.parse(text) : undefined });
            } catch (error) {
              reject(error);
            }
          });
        },
      );
      req.on("error", (error: NodeJS.ErrnoException) => {
        if (mayRetry && req.reusedSocket && error.code === "ECONNRESET" && !signal?.aborted) {
          this.#send(path, token, body, signal, false, contentType).then(resolve, reject);
        } else {
          reject(error);
        }
      });
      req.end(body);
    });
  }
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
