import {
  BatchSpec,
  NDJSON,
  type NewBatch,
  programBytes,
  programTooLarge,
} from "../protocol/index.js";
import { ApiError, validationError } from "./errors.js";
import { isJsonMediaType, parseJsonBodyText, parseJsonText } from "./jsonBody.js";

/** What a batch may hold, from the coordinator's config. */
export interface BatchBounds {
  /** Items at most (`--max-batch`). */
  maxItems: number;
  /** Bytes of one input's JSON at most (`--max-input`). */
  maxInputBytes: number;
  /** Bytes of the program at most (`--max-program`). */
  maxProgramBytes: number;
}

/** The media type of a body, lower-cased, without parameters; undefined when none was sent. */
const mediaType = (contentType: string | undefined) =>
  contentType?.split(";")[0]?.trim().toLowerCase();

/** The parts of a request a batch is read from. */
export interface BatchRequest {
  contentType: string | undefined;
  /** The whole body as text (a JSON batch). */
  text: () => Promise<string>;
  /** The body as it streams in (an NDJSON batch). */
  body: AsyncIterable<Uint8Array> | null;
}

/**
 * A batch from `POST /v1/batches`: one JSON document `{...spec, inputs: […]}`,
 * or NDJSON (the spec on the first line, then one input per line), read as
 * it streams in. Any bad item refuses the whole batch, naming its index:
 * 400 VALIDATION_ERROR for bad JSON, too deep or out of the schema, 413
 * PAYLOAD_TOO_LARGE for an input past `maxInputBytes` or more than
 * `maxItems` items. Nothing is queued before all of it has been read.
 *
 * @example
 * const batch = await readBatch(
 *   { contentType: c.req.header("content-type"), text: () => c.req.text(), body: c.req.raw.body },
 *   { maxItems: 100_000, maxInputBytes: 1 << 20, maxProgramBytes: 8 << 20 },
 * );
 */
export async function readBatch(request: BatchRequest, bounds: BatchBounds): Promise<NewBatch> {
  const type = mediaType(request.contentType);
  if (type === NDJSON) return readNdjsonBatch(request.body, bounds);
  if (type !== undefined && !isJsonMediaType(type)) {
    throw new ApiError(
      "UNSUPPORTED_MEDIA_TYPE",
      `the body must be JSON (Content-Type: application/json) or NDJSON (${NDJSON}), not ${type}`,
    );
  }
  return readJsonBatch(await request.text(), bounds);
}

/** One line or the whole body as JSON; a bad line's refusal names its item. */
const parseLine = (text: string, where: string, index?: number) =>
  parseJsonText(text, where, indexed(index));

const indexed = (index: number | undefined) => (index === undefined ? undefined : { index });

/** The spec without inputs, checked; 413 first when the program is too large. */
function parseSpec(value: unknown, bounds: BatchBounds) {
  const bytes = programBytes(value);
  if (bytes !== undefined && bytes > bounds.maxProgramBytes) {
    throw new ApiError("PAYLOAD_TOO_LARGE", programTooLarge(bytes, bounds.maxProgramBytes), {
      bytes,
      maxBytes: bounds.maxProgramBytes,
    });
  }
  const parsed = BatchSpec.safeParse(value);
  if (!parsed.success) throw validationError("batch", parsed.error.issues);
  return parsed.data;
}

/** One input's JSON text, or 413 naming its index. */
function checkedInput(text: string, index: number, bounds: BatchBounds): string {
  const bytes = Buffer.byteLength(text, "utf8");
  if (bytes > bounds.maxInputBytes) {
    throw new ApiError(
      "PAYLOAD_TOO_LARGE",
      `input ${index} is ${bytes} bytes of JSON, more than the ${bounds.maxInputBytes} an input may be; pass less data`,
      { index, bytes },
    );
  }
  return text;
}

function tooMany(bounds: BatchBounds): ApiError {
  return new ApiError(
    "PAYLOAD_TOO_LARGE",
    `the batch has more than ${bounds.maxItems} inputs, the most this coordinator takes in one batch; split it`,
    { maxItems: bounds.maxItems },
  );
}

function readJsonBatch(text: string, bounds: BatchBounds): NewBatch {
  const body = parseJsonBodyText(text);
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    throw new ApiError("VALIDATION_ERROR", "invalid batch: send a JSON object with inputs");
  }
  const { inputs, ...rest } = body as { inputs?: unknown };
  if (!Array.isArray(inputs) || inputs.length === 0) {
    throw new ApiError(
      "VALIDATION_ERROR",
      "invalid batch: inputs must be an array of at least one JSON value",
      [{ path: ["inputs"], code: "invalid_type", message: "an array of at least one input" }],
    );
  }
  if (inputs.length > bounds.maxItems) throw tooMany(bounds);
  const spec = parseSpec(rest, bounds);
  // JSON.parse gave JSON values, so each input is valid JSON as it is;
  // `undefined` cannot occur. The text is what the item's job stores.
  return {
    spec,
    inputs: inputs.map((input, index) => checkedInput(JSON.stringify(input), index, bounds)),
  };
}

/**
 * NDJSON, line by line as the body arrives: the first non-blank line is
 * the spec, every later non-blank line one input (blank lines are skipped,
 * so a trailing newline is fine).
 */
async function readNdjsonBatch(
  body: AsyncIterable<Uint8Array> | null,
  bounds: BatchBounds,
): Promise<NewBatch> {
  let spec: NewBatch["spec"] | undefined;
  const inputs: string[] = [];
  const take = (line: string) => {
    const text = line.trim();
    if (text === "") return;
    if (spec === undefined) {
      spec = parseSpec(parseLine(text, "line 1 (the batch's spec)"), bounds);
      return;
    }
    const index = inputs.length;
    if (index >= bounds.maxItems) throw tooMany(bounds);
    parseLine(text, `input ${index}`, index);
    inputs.push(checkedInput(text, index, bounds));
  };
  const decoder = new TextDecoder("utf-8", { fatal: true });
  let pending = "";
  try {
    for await (const chunk of body ?? []) {
      pending += decoder.decode(chunk, { stream: true });
      let newline = pending.indexOf("\n");
      while (newline >= 0) {
        take(pending.slice(0, newline));
        pending = pending.slice(newline + 1);
        newline = pending.indexOf("\n");
      }
    }
    take(pending + decoder.decode());
  } catch (error) {
    if (error instanceof TypeError && /decode|encoded/i.test(error.message)) {
      throw new ApiError("VALIDATION_ERROR", "the request body is not valid UTF-8");
    }
    throw error;
  }
  if (spec === undefined) {
    throw new ApiError(
      "VALIDATION_ERROR",
      "the request body is empty; send the batch's spec on the first line, then one input per line",
    );
  }
  if (inputs.length === 0) {
    throw new ApiError("VALIDATION_ERROR", "invalid batch: a batch needs at least one input");
  }
  return { spec, inputs };
}
