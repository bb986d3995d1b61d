import type { Context } from "hono";
import { HTTPException } from "hono/http-exception";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import type { Logger } from "pino";
import { API_ERROR_STATUS, type ApiErrorBody, type ApiErrorCode } from "../protocol/index.js";

/** The one error type routes throw; `onError` turns it into `{error:{code,message}}`. */
export class ApiError extends Error {
  readonly status: ContentfulStatusCode;
  constructor(
    readonly code: ApiErrorCode,
    message: string,
    readonly details?: unknown,
  ) {
    super(message);
    this.name = "ApiError";
    this.status = API_ERROR_STATUS[code] as ContentfulStatusCode;
  }
}

/** bodyLimit's onError: the body is over the route's limit. */
export function payloadTooLarge(): never {
  throw new ApiError("PAYLOAD_TOO_LARGE", "the request body is too large");
}

export const notFound = (what: string) => new ApiError("NOT_FOUND", `${what} does not exist`);

function body(code: ApiErrorCode, message: string, details?: unknown): ApiErrorBody {
  return { error: { code, message, ...(details === undefined ? {} : { details }) } };
}

/** Hono's onError: typed errors keep their status; anything else is a logged 500 without a stack. */
export function errorHandler(logger: Logger) {
  return (error: Error, c: Context) => {
    if (error instanceof ApiError) {
      return c.json(body(error.code, error.message, error.details), error.status);
    }
    if (error instanceof HTTPException && error.status === 413) {
      return c.json(body("PAYLOAD_TOO_LARGE", "the request body is too large"), 413);
    }
    if (error instanceof HTTPException && error.status < 500) {
      return c.json(body("VALIDATION_ERROR", error.message || "bad request"), 400);
    }
    logger.error({ err: error, path: c.req.path }, "unexpected error");
    return c.json(body("INTERNAL", "the coordinator failed to handle this request"), 500);
  };
}
