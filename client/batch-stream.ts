import { request as httpRequest, type IncomingMessage } from "node:http";
import { request as httpsRequest } from "node:https";
import { createInterface } from "node:readline";
import {
  API_PREFIX,
  type BatchSpec,
  type ItemResult,
  NDJSON,
  SubmitBatchResponse,
} from "../protocol/index.js";
import { isConnectionError, rotateServers, splitServers } from "../protocol/servers.js";
import { LabrunApiError, refusalOf, ServerUnreachableError } from "./api.js";

export interface Connection {
  /** One coordinator, or several of one store (`URL1,URL2`): the first is tried first. */
  server: string;
  token: string;
}

/**
 * An HTTP request to the connection's first server whose body and answer are
 * streams (node:http; fetch would buffer neither better).
 */
function open(
  connection: Connection,
  method: "GET" | "POST",
  path: string,
  options: { contentType?: string; signal?: AbortSignal } = {},
) {
  const server = splitServers(connection.server)[0] ?? connection.server;
  const url = new URL(`${server}${API_PREFIX}${path}`);
  const send = url.protocol === "https:" ? httpsRequest : httpRequest;
  const request = send(url, {
    method,
    headers: {
      authorization: `Bearer ${connection.token}`,
      ...(options.contentType ? { "content-type": options.contentType } : {}),
    },
    ...(options.signal ? { signal: options.signal } : {}),
  });
  const answer = new Promise<IncomingMessage>((resolve, reject) => {
    request.once("response", resolve);
    request.once("error", (error) =>
      reject(
        (error as { name?: string }).name === "AbortError"
          ? error
          : new ServerUnreachableError(server, error),
      ),
    );
  });
  return { request, answer };
}

/** Reads a whole answer as text. */
async function textOf(response: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of response) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

/** A non-2xx answer as the LabrunApiError its error body names (any body, JSON or not). */
async function refusal(response: IncomingMessage) {
  const text = await textOf(response);
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    // not JSON: the status says it
  }
  return refusalOf(response.statusCode ?? 0, body);
}

const ok = (response: IncomingMessage) =>
  (response.statusCode ?? 0) >= 200 && (response.statusCode ?? 0) < 300;

/**
 * `POST /v1/batches` as NDJSON: the spec on the first line, then each input's
 * JSON text on its own line, written as the socket takes them (no one
 * document of every input is built). With several servers, a connection
 * error or a 5xx sends it to the next one (a batch is queued only once its
 * whole body is read, in one transaction).
 *
 * @example
 * const { id, total } = await submitBatch(connection, spec, ["1", "2", "3"]);
 */
export async function submitBatch(
  connection: Connection,
  spec: BatchSpec,
  inputs: readonly string[],
): Promise<SubmitBatchResponse> {
  let target = connection;
  for (let left = splitServers(connection.server).length; ; left--) {
    try {
      return await submitBatchTo(target, spec, inputs);
    } catch (error) {
      if (left <= 1 || !worthAnotherServer(error)) throw error;
      target = { ...target, server: rotateServers(target.server) };
    }
  }
}

/** A failure another coordinator of the same store may not have. */
function worthAnotherServer(error: unknown): boolean {
  if (error instanceof LabrunApiError) return error.status >= 500;
  return error instanceof ServerUnreachableError && isConnectionError(error.cause);
}

async function submitBatchTo(
  connection: Connection,
  spec: BatchSpec,
  inputs: readonly string[],
): Promise<SubmitBatchResponse> {
  const { request, answer } = open(connection, "POST", "/batches", { contentType: NDJSON });
  // The answer may come early (a refusal): stop writing then.
  let answered = false;
  void answer.then(
    () => {
      answered = true;
    },
    () => {
      answered = true;
    },
  );
  const write = (text: string) =>
    request.write(text)
      ? Promise.resolve()
      : new Promise((resolve) => request.once("drain", resolve));
  await write(`${JSON.stringify(spec)}\n`);
  const CHUNK = 256;
  for (let at = 0; at < inputs.length && !answered; at += CHUNK) {
    await write(`${inputs.slice(at, at + CHUNK).join("\n")}\n`);
  }
  request.end();
  const response = await answer;
  if (!ok(response)) throw await refusal(response);
  return SubmitBatchResponse.parse(JSON.parse(await textOf(response)));
}

/**
 * The result lines of a batch from the `from`-th on, as they arrive, until
 * the server ends the stream (the batch ended and every line was sent).
 * Throws ServerUnreachableError when the connection fails or drops
 * mid-stream; the caller resumes with `from` = the lines it has.
 */
export async function* batchResults(
  connection: Connection,
  batchId: string,
  options: { from: number; order: "index" | "completion"; signal?: AbortSignal },
): AsyncGenerator<ItemResult> {
  const query = `?from=${options.from}&order=${options.order}`;
  const { request, answer } = open(
    connection,
    "GET",
    `/batches/${encodeURIComponent(batchId)}/results${query}`,
    options.signal ? { signal: options.signal } : {},
  );
  request.end();
  const response = await answer;
  if (!ok(response)) throw await refusal(response);
  let ended = false;
  response.once("end", () => {
    ended = true;
  });
  const lines = createInterface({ input: response, crlfDelay: Number.POSITIVE_INFINITY });
  try {
    for await (const line of lines) {
      if (line.trim() === "") continue;
      yield JSON.parse(line) as ItemResult;
    }
  } catch (error) {
    if ((error as { name?: string }).name === "AbortError") throw error;
    throw new ServerUnreachableError(connection.server, error);
  }
  // A stream cut before its end (the server died) is no end of the batch.
  if (!ended || !response.complete) {
    throw new ServerUnreachableError(connection.server, new Error("the result stream was cut"));
  }
}
