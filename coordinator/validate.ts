import type { Context } from "hono";
import type { z } from "zod";
import { ApiError } from "./errors.js";

function invalid(where: string, error: z.ZodError): ApiError {
  const first = error.issues[0];
  const path = first?.path.length ? `${first.path.join(".")}: ` : "";
  return new ApiError(
    "VALIDATION_ERROR",
    `invalid ${where}: ${path}${first?.message ?? "does not match the schema"}`,
    error.issues.map((issue) => ({ path: issue.path, message: issue.message })),
  );
}

/** The request's JSON body, checked against a schema (400 VALIDATION_ERROR otherwise). */
export async function jsonBody<T extends z.ZodType>(c: Context, schema: T): Promise<z.output<T>> {
  let json: unknown;
  try {
    json = JSON.parse(await c.req.text());
  } catch {
    throw new ApiError("VALIDATION_ERROR", "the request body is not valid JSON");
  }
  const parsed = schema.safeParse(json);
  if (!parsed.success) throw invalid("request body", parsed.error);
  return parsed.data;
}

/** The query string, checked against a schema. */
export function query<T extends z.ZodType>(c: Context, schema: T): z.output<T> {
  const parsed = schema.safeParse(c.req.query());
  if (!parsed.success) throw invalid("query", parsed.error);
  return parsed.data;
}

/** A path parameter, checked against a schema. */
export function param<T extends z.ZodType>(c: Context, name: string, schema: T): z.output<T> {
  const parsed = schema.safeParse(c.req.param(name));
  if (!parsed.success) throw invalid(`path parameter ${name}`, parsed.error);
  return parsed.data;
}
