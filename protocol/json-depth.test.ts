import { describe, expect, it } from "vitest";
import { nestsDeeperThan } from "./json-depth.js";

describe("nestsDeeperThan", () => {
  it("counts arrays and objects outside strings only", () => {
    expect(nestsDeeperThan('[{"a":[1]}]', 2)).toBe(true);
    expect(nestsDeeperThan('[{"a":[1]}]', 3)).toBe(false);
    expect(nestsDeeperThan('["[[[[", {"{{{{": "]]]]"}]', 2)).toBe(false);
  });

  it("ends a string at a quote after an even run of backslashes, not after an odd one", () => {
    // "x\\" closes after two backslashes: the [[ that follows nests.
    expect(nestsDeeperThan(JSON.stringify(["x\\", [[1]]]), 2)).toBe(true);
    // "x\"[[" stays one string: an escaped quote does not close it.
    expect(nestsDeeperThan(JSON.stringify(['x"[[[', 1]), 1)).toBe(false);
    expect(nestsDeeperThan(JSON.stringify(['\\\\\\"[[[', [1]]), 1)).toBe(true);
  });

  it("agrees with a scan character by character on random JSON", () => {
    const pieces = ['"', "\\", '\\"', "[", "]", "{", "}", "a"];
    const text = (n: number) =>
      Array.from({ length: n }, (_, i) => pieces[(i * 7 + n) % pieces.length]).join("");
    for (let n = 0; n < 300; n++) {
      const json = JSON.stringify([text(n), { [text(n + 1)]: [text(n + 2), [[text(n + 3)]]] }]);
      for (const max of [1, 2, 3, 4, 5]) {
        expect(nestsDeeperThan(json, max)).toBe(byCharacter(json, max));
      }
    }
  });
});

/** The scan as it was before it skipped strings with indexOf: the reference. */
function byCharacter(text: string, max: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const char = text.charCodeAt(i);
    if (inString) {
      if (char === 0x5c) i++;
      else if (char === 0x22) inString = false;
    } else if (char === 0x22) inString = true;
    else if (char === 0x5b || char === 0x7b) {
      if (++depth > max) return true;
    } else if (char === 0x5d || char === 0x7d) depth--;
  }
  return false;
}
