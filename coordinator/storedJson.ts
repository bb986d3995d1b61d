import { randomBytes } from "node:crypto";
import type { Context, TypedResponse } from "hono";
import type { JSONParsed } from "hono/utils/types";

/**
 * JSON the store keeps as text (a program's files) and hands on to an agent
 * as that same text. A lease of a 2 MiB bundle used to decode the stored
 * files and parse them, only for the answer to stringify them again, measure
 * the string and encode it: five passes over the megabytes, each a fresh allocation
 * (on this kind of VM, first-touch page faults cost as much as the copying).
 * The lease answer now splices the stored bytes in as they are
 * (storedJsonAnswer); code that wants the value reads `.value`, parsed then.
 */
export class StoredJson<T = unknown> {
  #parsed: { value: T } | undefined;

  /** `text` is JSON the store wrote itself (JSON.stringify's), as a string or its UTF-8 bytes. */
  constructor(readonly text: string | Buffer) {}

  /** The value the text holds, parsed on first read. */
  get value(): T {
    this.#parsed ??= {
      value: JSON.parse(typeof this.text === "string" ? this.text : this.text.toString("utf8")),
    };
    return this.#parsed.value;
  }

  /** In a plain JSON.stringify, the value; while an answer is written, its placeholder. */
  toJSON(): unknown {
    return splicing ? splicing.placeholder(this) : this.value;
  }
}

/** The answer being written (JSON.stringify is synchronous: one at a time). */
let splicing: { placeholder(stored: StoredJson): string } | null = null;

/**
 * `value` as JSON.stringify writes it, as UTF-8 bytes, with each StoredJson
 * in it written as its stored text, never parsed: JSON.stringify writes
 * a placeholder for each (a string no JSON value sent to labrun can hold:
 * it carries 128 random bits), and the bytes are spliced in its place.
 *
 * @example
 * const files = new StoredJson('[{"path":"main.mjs","content":"…"}]');
 * stringifyWithStoredJson({ spec: { files } }); // {"spec":{"files":[{"path":…}]}}
 */
export function stringifyWithStoredJson(value: unknown): Buffer<ArrayBuffer> {
  const marker = `labrun-stored-json-${randomBytes(16).toString("hex")}-`;
  const stored: StoredJson[] = [];
  splicing = {
    placeholder(json) {
      stored.push(json);
      return `${marker}${stored.length - 1}`;
    },
  };
  let text: string;
  try {
    text = JSON.stringify(value);
  } finally {
    splicing = null;
  }
  if (stored.length === 0) return Buffer.from(text, "utf8");
  // Each placeholder is written as a JSON string: `"marker-N"`.
  const parts: Buffer[] = [];
  const pattern = new RegExp(`"${marker}(\\d+)"`, "g");
  let from = 0;
  for (const match of text.matchAll(pattern)) {
    const json = stored[Number(match[1])];
    if (!json) continue;
    parts.push(
      Buffer.from(text.slice(from, match.index), "utf8"),
      typeof json.text === "string" ? Buffer.from(json.text, "utf8") : json.text,
    );
    from = match.index + match[0].length;
  }
  parts.push(Buffer.from(text.slice(from), "utf8"));
  return Buffer.concat(parts);
}

/**
 * A route's 200 JSON answer (as `c.json(value, 200)`) of `value`, whose
 * StoredJson parts go out as the bytes they were kept in. `Wire` is the
 * answer as its route declares it: what those bytes are.
 */
export function storedJsonAnswer<Wire>(c: Context, value: unknown) {
  const body = stringifyWithStoredJson(value);
  return c.body(body, 200, { "content-type": "application/json" }) as unknown as Response &
    TypedResponse<JSONParsed<Wire>, 200, "json">;
}
