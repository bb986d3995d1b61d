import type { MiddlewareHandler } from "hono";
import { MAX_JSON_DEPTH, nestsDeeperThan } from "../protocol/index.js";
import { ApiError } from "./errors.js";
import type { AuthEnv } from "./routeTypes.js";

/** `application/json`, or any `…+json` media type, with or without parameters. */
export function isJsonMediaType(contentType: string): boolean {
  const type = contentType.split(";")[0]?.trim().toLowerCase() ?? "";
  return type === "application/json" || /^application\/[a-z0-9.+-]+\+json$/.test(type);
}

/**
 * JSON text as a value: 400 VALIDATION_ERROR when it is not JSON, or when it
 * nests deeper than MAX_JSON_DEPTH (checked before any schema recursion).
 * `where` names it in the message ("the request body", "input 13");
 * `details` go with the refusal (a batch names the item's index).
 */
export function parseJsonText(text: string, where: string, details?: unknown): unknown {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    const reason = error instanceof SyntaxError ? `: ${error.message}` : "";
    throw new ApiError("VALIDATION_ERROR", `${where} is not valid JSON${reason}`, details);
  }
  if (nestsDeeperThan(text, MAX_JSON_DEPTH)) {
    throw new ApiError(
      "VALIDATION_ERROR",
      `${where} nests arrays and objects deeper than ${MAX_JSON_DEPTH} levels; flatten it`,
      details,
    );
  }
  return value;
}

/** A whole request body's text as JSON; an empty body is refused first. */
export function parseJsonBodyText(text: string): unknown {
  if (text.trim() === "") {
    throw new ApiError("VALIDATION_ERROR", "the request body is empty; send a JSON object");
  }
  return parseJsonText(text, "the request body");
}

export interface JsonBodyOptions {
  /** What a validation message calls the body: `invalid <name>: …`. Default "request body". */
  name?: string;
  /**
   * Runs on the parsed body before its schema (throw an ApiError to refuse),
   * e.g. a 413 for a part too large whatever else is wrong with the body.
   */
  check?: (body: unknown) => void;
}

/**
 * Reads a route's JSON body the way labrun always has, before the route's
 * schema sees it (@hono/zod-openapi's validator only checks a body whose
 * content type is exactly JSON, and refuses other ones with its own 415):
 *
 * - a content type other than JSON → 415 UNSUPPORTED_MEDIA_TYPE; a missing
 *   one is tolerated (curl without -H, simple scripts);
 * - an empty body, text that is not JSON, or JSON nested deeper than
 *   MAX_JSON_DEPTH → 400 VALIDATION_ERROR, before any schema recursion.
 *
 * Then it hands the body on in the form the route's validator reads: the
 * content type stated as `application/json`, and `c.req.json()` answering
 * the value already parsed (so the text is parsed once). The schema failure
 * itself is worded by the app's one validation hook (routes/declare.ts).
 *
 * @example
 * createRoute({ …, middleware: [auth("agent"), limitBody(BODY_LIMITS.small), readJsonBody()] });
 */
export function readJsonBody(options: JsonBodyOptions = {}): MiddlewareHandler<AuthEnv> {
  return async (c, next) => {
    const contentType = c.req.header("content-type");
    if (contentType !== undefined && !isJsonMediaType(contentType)) {
      throw new ApiError(
        "UNSUPPORTED_MEDIA_TYPE",
        `the body must be JSON (Content-Type: application/json), not ${contentType}`,
      );
    }
    const body = parseJsonBodyText(await c.req.text());
    options.check?.(body);
    if (options.name !== undefined) c.set("bodyName", options.name);
    if (contentType !== "application/json")
      c.req.raw.headers.set("content-type", "application/json");
    const parsed = Promise.resolve(body);
    c.req.json = <T>() => parsed as Promise<T>;
    await next();
  };
}
