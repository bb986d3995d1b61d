import { bodyLimit } from "hono/body-limit";
import { MAX_RESULT_GROUP_BYTES } from "../protocol/index.js";
import { payloadTooLarge } from "./errors.js";

const KiB = 1024;
const MiB = 1024 * KiB;

/**
 * The largest request body each kind of route reads, in bytes. A larger one
 * is answered 413 PAYLOAD_TOO_LARGE before it is parsed, so no route buffers
 * more than it can use.
 */
export const BODY_LIMITS = {
  /**
   * `POST /v1/jobs`: any program and input within the limits, as
   * JSON.stringify sends them. A control character of the program (1 byte)
   * is escaped to 6 (`\u0001`), so a valid program can take 6 × its size;
   * the input is measured as JSON already; labels, the files' paths (at most
   * 1000 × 1 KiB, escaped) and the rest fit in 8 MiB.
   */
  submit: (maxProgramBytes: number, maxInputBytes: number) =>
    6 * maxProgramBytes + maxInputBytes + 8 * MiB,
  /**
   * `POST /v1/agents/:id/results`: the largest outcome the limits allow
   * (protocol/limits.ts: an 8 MiB result, as JSON.stringify wrote it, and
   * 1 MiB of logs that escape to at most 6 MiB), with room to spare.
   */
  result: 16 * MiB,
  /** `POST /v1/batches`: the coordinator's `--max-batch-bytes`, whichever form. */
  batch: (maxBatchBytes: number) => maxBatchBytes,
  /**
   * `POST /v1/agents/:id/results` with a group of results: twice a single
   * one's. The agent sends a group only while it fits; a result as large as
   * the limits allow goes on its own.
   */
  resultGroup: MAX_RESULT_GROUP_BYTES,
  /** Everything else (register, lease, heartbeat, cancel, admin): small fixed shapes. */
  small: 64 * KiB,
} as const;

/**
 * Refuses bodies over `maxBytes` with 413 PAYLOAD_TOO_LARGE, by Content-Length
 * when there is one, else by counting the bytes as they arrive.
 *
 * @example
 * app.post("/:id/heartbeat", auth("agent"), limitBody(BODY_LIMITS.small), handler);
 */
export const limitBody = (maxBytes: number) =>
  bodyLimit({ maxSize: maxBytes, onError: payloadTooLarge(maxBytes) });
