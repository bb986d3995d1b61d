import { describe, expect, it } from "vitest";
import { MAX_JSON_DEPTH, NDJSON } from "../protocol/index.js";
import { readBatch } from "./batchBody.js";
import { ApiError } from "./errors.js";

const BOUNDS = { maxItems: 5, maxInputBytes: 64, maxProgramBytes: 1 << 20 };
const SPEC = { source: "exports.main = (n) => n", filename: "main.js" };

const post = (body: string | ReadableStream<Uint8Array>, type?: string) =>
  new Request("http://x/v1/batches", {
    method: "POST",
    // Bytes, not a string: a string body would get text/plain from fetch's Request.
    body: typeof body === "string" ? new TextEncoder().encode(body) : body,
    headers: type ? { "content-type": type } : {},
    ...(typeof body === "string" ? {} : { duplex: "half" }),
  } as RequestInit);

const ndjson = (...lines: unknown[]) => lines.map((line) => JSON.stringify(line)).join("\n");

/** The refusal a body gets: status, code, message and details. */
const parts = (request: Request) => ({
  contentType: request.headers.get("content-type") ?? undefined,
  text: () => request.text(),
  body: request.body,
});

async function refusal(request: Request) {
  try {
    await readBatch(parts(request), BOUNDS);
  } catch (error) {
    if (!(error instanceof ApiError)) throw error;
    return {
      status: error.status,
      code: error.code,
      message: error.message,
      details: error.details,
    };
  }
  throw new Error("the batch was accepted");
}

describe("readBatch", () => {
  it("reads a JSON batch, each input as its JSON text", async () => {
    const batch = await readBatch(
      parts(
        post(
          JSON.stringify({ ...SPEC, inputs: [1, { a: [2] }, null], maxParallel: 2 }),
          "application/json",
        ),
      ),
      BOUNDS,
    );
    expect(batch).toEqual({
      spec: { ...SPEC, maxParallel: 2, retries: 0, isolate: false },
      inputs: ["1", '{"a":[2]}', "null"],
    });
  });

  it("reads an NDJSON batch that arrives in pieces split mid-line, blank lines skipped", async () => {
    const text = `${ndjson(SPEC, 1, "two")}\n\n${ndjson({ three: 3 })}\n`;
    const bytes = new TextEncoder().encode(text);
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        for (let at = 0; at < bytes.length; at += 7) controller.enqueue(bytes.slice(at, at + 7));
        controller.close();
      },
    });
    const batch = await readBatch(parts(post(stream, NDJSON)), BOUNDS);
    expect(batch.inputs).toEqual(["1", '"two"', '{"three":3}']);
  });

  it("refuses a bad NDJSON line with 400 and the item's index", async () => {
    expect(await refusal(post(`${ndjson(SPEC, 1, 2)}\n{oops\n${ndjson(4)}`, NDJSON))).toMatchObject(
      {
        status: 400,
        code: "VALIDATION_ERROR",
        message: expect.stringMatching(/^input 2 is not valid JSON/),
        details: { index: 2 },
      },
    );
  });

  it("refuses an input over --max-input with 413 and its index, in either form", async () => {
    const big = "x".repeat(100);
    expect(await refusal(post(ndjson(SPEC, 1, big), NDJSON))).toMatchObject({
      status: 413,
      code: "PAYLOAD_TOO_LARGE",
      details: { index: 1 },
    });
    expect(
      await refusal(post(JSON.stringify({ ...SPEC, inputs: [1, 2, big] }), "application/json")),
    ).toMatchObject({ status: 413, details: { index: 2 } });
  });

  it("refuses more inputs than --max-batch with 413", async () => {
    expect(await refusal(post(ndjson(SPEC, 1, 2, 3, 4, 5, 6), NDJSON))).toMatchObject({
      status: 413,
      message: expect.stringMatching(/more than 5 inputs/),
    });
    expect(
      await refusal(post(JSON.stringify({ ...SPEC, inputs: [1, 2, 3, 4, 5, 6] }))),
    ).toMatchObject({ status: 413 });
  });

  it("refuses a bad spec, no inputs, deep nesting and other media types", async () => {
    expect(await refusal(post(ndjson({ ...SPEC, filename: "x.exe" }, 1), NDJSON))).toMatchObject({
      status: 400,
      message: expect.stringMatching(/^invalid batch: filename/),
    });
    expect(await refusal(post(ndjson({ ...SPEC, bogus: 1 }, 1), NDJSON))).toMatchObject({
      status: 400,
    });
    expect(await refusal(post(ndjson(SPEC), NDJSON))).toMatchObject({
      status: 400,
      message: "invalid batch: a batch needs at least one input",
    });
    expect(await refusal(post("", NDJSON))).toMatchObject({ status: 400 });
    expect(await refusal(post(JSON.stringify({ ...SPEC, inputs: [] })))).toMatchObject({
      status: 400,
    });
    const deep = `${"[".repeat(MAX_JSON_DEPTH + 1)}${"]".repeat(MAX_JSON_DEPTH + 1)}`;
    expect(await refusal(post(`${ndjson(SPEC)}\n${deep}`, NDJSON))).toMatchObject({
      status: 400,
      details: { index: 0 },
    });
    expect(await refusal(post(ndjson(SPEC, 1), "text/plain"))).toMatchObject({ status: 415 });
  });
});
