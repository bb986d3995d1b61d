import { describe, expect, it } from "vitest";
import { StoredJson, stringifyWithStoredJson } from "./storedJson.js";

const FILES = [{ path: "main.mjs", content: 'export const main = () => "é ✓ \\n \\"";\n' }];

describe("stored JSON", () => {
  it("reads as the value its text holds, parsed once, from a string or from bytes", () => {
    const fromBytes = new StoredJson<typeof FILES>(Buffer.from(JSON.stringify(FILES)));
    expect(fromBytes.value).toEqual(FILES);
    expect(fromBytes.value).toBe(fromBytes.value);
    expect(new StoredJson('{"x":[1,2]}').value).toEqual({ x: [1, 2] });
    // A plain JSON.stringify writes the value.
    expect(JSON.stringify({ files: fromBytes })).toBe(JSON.stringify({ files: FILES }));
  });

  it("writes the same JSON as JSON.stringify, with stored texts spliced in", () => {
    const files = new StoredJson(Buffer.from(JSON.stringify(FILES)));
    const spec = { source: "", files, skipped: undefined, input: { n: 1 } };
    const answer = {
      jobs: [
        { id: "j_1", spec },
        { id: "j_2", spec: { ...spec, files: new StoredJson("[]") } },
        { id: "j_3", spec: { ...spec, files } },
      ],
      nested: { deeper: { 'quoted "key"': "ünïcode" } },
    };
    const plain = {
      ...answer,
      jobs: answer.jobs.map((job) => ({
        ...job,
        spec: { ...job.spec, files: job.spec.files.value },
      })),
    };
    expect(stringifyWithStoredJson(answer).toString("utf8")).toBe(JSON.stringify(plain));
  });

  it("never parses a stored text to write it", () => {
    // Not JSON at all: a parse would throw. The writer copies what it was given.
    const files = new StoredJson(Buffer.from("[RAW]"));
    expect(stringifyWithStoredJson({ spec: { files } }).toString()).toBe(
      '{"spec":{"files":[RAW]}}',
    );
    expect(() => files.value).toThrow(SyntaxError);
  });

  it("splices only its own placeholders: a string that looks like one is left as it is", () => {
    const files = new StoredJson("[1]");
    // What a user could send: the placeholders' form, with a number, but not this answer's random part.
    const input = { text: "labrun-stored-json-00000000000000000000000000000000-0" };
    const written = stringifyWithStoredJson({ jobs: [{ spec: { files, input } }] }).toString();
    expect(JSON.parse(written)).toEqual({ jobs: [{ spec: { files: [1], input } }] });
  });

  it("writes an answer without stored texts as JSON.stringify does", () => {
    for (const value of [{ jobs: [] }, [], "text", 3, null, { a: { b: [undefined] } }]) {
      expect(stringifyWithStoredJson(value).toString()).toBe(JSON.stringify(value));
    }
  });
});
