import type { MiddlewareHandler } from "hono";
import { limitBody } from "../bodyLimits.js";
import { payloadTooLarge } from "../errors.js";

/** A Content-Length as HTTP allows it: digits only. */
const DIGITS = /^\d+$/;

/**
 * limitBody (bodyLimits.ts) without its cost when the request says its size:
 * Hono's bodyLimit reads `c.req.raw.body` first, and on @hono/node-server
 * that turns the lightweight request into a full undici Request whose body is
 * the socket through web streams (~a fifth of a small POST's CPU, and every
 * later `c.req.text()` reads through those streams). A body with a
 * Content-Length and no Transfer-Encoding is judged by the header alone, as
 * bodyLimit itself judges it (Node's parser refuses a body longer than its
 * Content-Length); any other body goes through bodyLimit unchanged, so the
 * answers (413 and its body) are the same.
 *
 * @example
 * createRoute({ …, middleware: [auth("agent"), limitBodyBySize(BODY_LIMITS.small)] });
 */
export function limitBodyBySize(maxBytes: number): MiddlewareHandler {
  const counted = limitBody(maxBytes);
  const tooLarge = payloadTooLarge(maxBytes);
  return (c, next) => {
    // No body to judge (bodyLimit's `!c.req.raw.body`).
    if (c.req.method === "GET" || c.req.method === "HEAD") return next();
    const length = c.req.header("content-length");
    if (
      length !== undefined &&
      DIGITS.test(length) &&
      c.req.header("transfer-encoding") === undefined
    ) {
      return Number.parseInt(length, 10) > maxBytes ? tooLarge() : next();
    }
    return counted(c, next);
  };
}
