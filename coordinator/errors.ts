import type { Context } from "hono";
import { HTTPException } from "hono/http-exception";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import type { Logger } from "pino";
import { z } from "zod";
import { API_ERROR_STATUS, type ApiErrorBody, type ApiErrorCode } from "../protocol/index.js";
import { isStoreUnavailable } from "./store/unavailable.js";

/**
 * The one error type the coordinator throws on purpose. Its code picks the
 * HTTP status (protocol's API_ERROR_STATUS); `onError` turns it into
 * `{error: {code, message, details?}}`.
 *
 * @example
 * throw new ApiError("NOT_FOUND", "job j_abc does not exist");
 */
export class ApiError extends Error {
  readonly status: ContentfulStatusCode;

  constructor(
    readonly code: ApiErrorCode,
    message: string,
    readonly details?: unknown,
  ) {
    super(message);
    this.name = "ApiError";
    this.status = API_ERROR_STATUS[code];
  }
}

export const notFound = (what: string) => new ApiError("NOT_FOUND", `${what} does not exist`);

type Issues = readonly z.core.$ZodIssue[];

/** zod issues as `details`: where, what kind, and what is wrong. */
export const zodDetails = (issues: Issues) =>
  issues.map((issue) => ({ path: issue.path, code: issue.code, message: issue.message }));

/** A zod failure as a 400 whose message names the first problem. */
export function validationError(where: string, issues: Issues): ApiError {
  const first = issues[0];
  const path = first?.path.length ? `${first.path.join(".")}: ` : "";
  return new ApiError(
    "VALIDATION_ERROR",
    `invalid ${where}: ${path}${first?.message ?? "does not match the schema"}`,
    zodDetails(issues),
  );
}

/**
 * A request part that failed its route's schema, as labrun words it:
 * `invalid request body: …` (or the body's own name, `invalid job: …`),
 * `invalid query: …`, `invalid path parameter id: …`. A path parameter is
 * named in the message and its issues' paths start below it, as when each
 * parameter was checked on its own.
 */
export function requestValidationError(
  part: string,
  error: z.ZodError,
  bodyName = "request body",
): ApiError {
  if (part === "json") return validationError(bodyName, error.issues);
  if (part === "param") {
    const name = String(error.issues[0]?.path[0] ?? "");
    const own = error.issues
      .filter((issue) => issue.path[0] === name)
      .map((issue) => ({ ...issue, path: issue.path.slice(1) }));
    return validationError(`path parameter ${name}`, own);
  }
  return validationError(part, error.issues);
}

/** bodyLimit's onError: the body is over the route's limit. */
export function payloadTooLarge(maxBytes: number) {
  return (): never => {
    throw new ApiError(
      "PAYLOAD_TOO_LARGE",
      `the request body is larger than this route accepts (${maxBytes} bytes)`,
    );
  };
}

/** The code of an HTTPException thrown by Hono or its middleware, by status. */
const CODE_OF_STATUS: Partial<Record<number, ApiErrorCode>> = {
  400: "VALIDATION_ERROR",
  401: "UNAUTHORIZED",
  403: "FORBIDDEN",
  404: "NOT_FOUND",
  409: "CONFLICT",
  413: "PAYLOAD_TOO_LARGE",
  415: "UNSUPPORTED_MEDIA_TYPE",
  429: "QUOTA_EXCEEDED",
  503: "UNAVAILABLE",
};

export function errorBody(code: ApiErrorCode, message: string, details?: unknown): ApiErrorBody {
  return { error: { code, message, ...(details === undefined ? {} : { details }) } };
}

/**
 * Hono's onError: every failure becomes the JSON error body, never a stack.
 * Typed errors keep their status; a database that does not answer is a 503
 * UNAVAILABLE; anything else unexpected is logged and answered with a
 * generic 500 INTERNAL.
 */
export function onError(logger: Logger) {
  return (error: Error, c: Context) => {
    const where = { method: c.req.method, path: c.req.path };
    if (error instanceof ApiError) {
      if (error.status >= 500) logger.error({ ...where, code: error.code, err: error }, "failed");
      else logger.warn({ ...where, code: error.code, message: error.message }, "refused");
      return c.json(errorBody(error.code, error.message, error.details), error.status);
    }
    if (error instanceof z.ZodError) {
      logger.warn({ ...where, issues: error.issues.length }, "invalid request");
      return c.json(
        errorBody(
          "VALIDATION_ERROR",
          "the request does not match the schema",
          zodDetails(error.issues),
        ),
        400,
      );
    }
    if (error instanceof HTTPException && error.status < 500) {
      const code = CODE_OF_STATUS[error.status] ?? "VALIDATION_ERROR";
      logger.warn({ ...where, code, status: error.status }, "refused");
      // Hono's own messages ("Malformed JSON in request body") are safe to pass on.
      return c.json(errorBody(code, error.message || "the request was refused"), error.status);
    }
    if (isStoreUnavailable(error)) {
      // The database is away (restarting, down): a clean 503 the client may retry, or take elsewhere.
      logger.warn({ ...where, code: (error as { code?: string }).code }, "database unavailable");
      c.header("retry-after", "1");
      return c.json(
        errorBody("UNAVAILABLE", "the database does not answer; try again in a moment"),
        503,
      );
    }
    logger.error({ ...where, err: error }, "unexpected error");
    return c.json(
      errorBody("INTERNAL", "the coordinator failed to handle this request; see its log"),
      500,
    );
  };
}
