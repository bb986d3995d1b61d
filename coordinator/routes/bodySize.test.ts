import { request } from "node:http";
import { Hono } from "hono";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { onError } from "../errors.js";
import { type HttpServer, listen } from "../server.js";
import { limitBodyBySize } from "./bodySize.js";

// Real HTTP on loopback: only @hono/node-server's requests carry the
// Content-Length that the header path judges (app.request's do not).
let server: HttpServer;
beforeAll(async () => {
  const app = new Hono();
  app.post("/echo", limitBodyBySize(10), async (c) => c.text(await c.req.text()));
  app.onError(onError(pino({ level: "silent" })));
  server = await listen(app.fetch, "127.0.0.1", 0, () => {});
});
afterAll(() => server.close());

/** POSTs `body` with a Content-Length, or chunked (no length) when `chunked`. */
function post(body: string, chunked = false): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: "127.0.0.1",
        port: server.port,
        method: "POST",
        path: "/echo",
        headers: chunked ? {} : { "content-length": Buffer.byteLength(body) },
      },
      (res) => {
        let text = "";
        res.setEncoding("utf8");
        res.on("data", (chunk: string) => {
          text += chunk;
        });
        res.on("end", () => resolve({ status: res.statusCode ?? 0, text }));
      },
    );
    req.on("error", reject);
    if (chunked) {
      // Two writes: Node sends Transfer-Encoding: chunked, no length to judge by.
      req.write(body.slice(0, 3));
      req.end(body.slice(3));
    } else {
      req.end(body);
    }
  });
}

describe("limitBodyBySize", () => {
  it("takes a body of exactly the limit, whole, by its Content-Length", async () => {
    expect(await post("0123456789")).toEqual({ status: 200, text: "0123456789" });
  });

  it("answers one byte more with labrun's 413, with or without a Content-Length", async () => {
    for (const chunked of [false, true]) {
      const { status, text } = await post("0123456789a", chunked);
      expect(status, `chunked: ${chunked}`).toBe(413);
      expect(JSON.parse(text)).toEqual({
        error: {
          code: "PAYLOAD_TOO_LARGE",
          message: "the request body is larger than this route accepts (10 bytes)",
        },
      });
    }
  });

  it("takes a chunked body within the limit, whole", async () => {
    expect(await post("01234", true)).toEqual({ status: 200, text: "01234" });
  });
});
