import * as z from "zod";

/** Codes a finished job's outcome can carry (DESIGN.md §3). */
export const OUTCOME_ERROR_CODES = [
  "BAD_PROGRAM_FORMAT",
  "RUNTIME_ERROR",
  "TIMEOUT",
  "OUT_OF_MEMORY",
  "OUTPUT_TOO_LARGE",
  "RESULT_NOT_JSON",
  "NODE_LOST",
  "CANCELLED",
  "SANDBOX_ERROR",
] as const;
export const OutcomeErrorCode = z.enum(OUTCOME_ERROR_CODES);
export type OutcomeErrorCode = z.infer<typeof OutcomeErrorCode>;

/** The exact message of a BAD_PROGRAM_FORMAT failure; details go in `detail`. */
export const BAD_PROGRAM_FORMAT_MESSAGE = "Bad program format";

/** Codes of HTTP error answers, each with its status. */
export const API_ERROR_STATUS = {
  VALIDATION_ERROR: 400,
  UNAUTHORIZED: 401,
  FORBIDDEN: 403,
  NOT_FOUND: 404,
  STALE_LEASE: 409,
  CONFLICT: 409,
  PAYLOAD_TOO_LARGE: 413,
  UNSUPPORTED_MEDIA_TYPE: 415,
  QUOTA_EXCEEDED: 429,
  INTERNAL: 500,
  UNAVAILABLE: 503,
} as const;
export type ApiErrorCode = keyof typeof API_ERROR_STATUS;
export const ApiErrorCode = z.enum(
  Object.keys(API_ERROR_STATUS) as [ApiErrorCode, ...ApiErrorCode[]],
);

/** Body of every non-2xx answer: `{error: {code, message, details?}}`. */
export const ApiErrorBody = z.object({
  error: z.object({
    code: ApiErrorCode,
    message: z.string(),
    details: z.unknown().optional(),
  }),
});
export type ApiErrorBody = z.infer<typeof ApiErrorBody>;
