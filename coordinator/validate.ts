import type { Context } from "hono";
import type { z } from "zod";
import { MAX_JSON_DEPTH, nestsDeeperThan } from "../protocol/index.js";
import { ApiError, validationError } from "./errors.js";

/** `application/json`, or any `…+json` media type, with or without parameters. */
function isJsonMediaType(contentType: string): boolean {
  const type = contentType.split(";")[0]?.trim().toLowerCase() ?? "";
  return type === "application/json" || /^application\/[a-z0-9.+-]+\+json$/.test(type);
}

/** A value checked against a schema; 400 VALIDATION_ERROR with the zod issues otherwise. */
export function parseWith<T extends z.ZodType>(schema: T, value: unknown, where: string) {
  const parsed = schema.safeParse(value);
  if (!parsed.success) throw validationError(where, parsed.error);
  return parsed.data as z.output<T>;
}

/**
 * The request body as JSON, not yet checked against a schema. A body sent
 * with a content type other than JSON is refused with 415; a missing content
 * type is tolerated (curl without -H, simple scripts); JSON nested deeper
 * than MAX_JSON_DEPTH is refused with 400.
 */
export async function readJson(c: Context): Promise<unknown> {
  const contentType = c.req.header("content-type");
  if (contentType !== undefined && !isJsonMediaType(contentType)) {
    throw new ApiError(
      "UNSUPPORTED_MEDIA_TYPE",
      `the body must be JSON (Content-Type: application/json), not ${contentType}`,
    );
  }
  const text = await c.req.text();
  if (text.trim() === "") {
    throw new ApiError("VALIDATION_ERROR", "the request body is empty; send a JSON object");
  }
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch (error) {
    const reason = error instanceof SyntaxError ? `: ${error.message}` : "";
    throw new ApiError("VALIDATION_ERROR", `the request body is not valid JSON${reason}`);
  }
  if (nestsDeeperThan(text, MAX_JSON_DEPTH)) {
    throw new ApiError(
      "VALIDATION_ERROR",
      `the request body nests arrays and objects deeper than ${MAX_JSON_DEPTH} levels; flatten it`,
    );
  }
  return body;
}

/**
 * The request's JSON body checked against a schema.
 *
 * @example
 * const { free, waitMs } = await jsonBody(c, LeaseRequest);
 */
export async function jsonBody<T extends z.ZodType>(c: Context, schema: T) {
  return parseWith(schema, await readJson(c), "request body");
}

/** The query string checked against a schema. */
export function query<T extends z.ZodType>(c: Context, schema: T) {
  return parseWith(schema, c.req.query(), "query");
}

/** One path parameter checked against a schema. */
export function param<T extends z.ZodType>(c: Context, name: string, schema: T) {
  return parseWith(schema, c.req.param(name), `path parameter ${name}`);
}
