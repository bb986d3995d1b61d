/**
 * How deep arrays and objects may nest in any JSON body of the protocol.
 * zod's `z.json()` and JSON.stringify recurse per level: in a default Node
 * stack they overflow at about 1,500 levels. The coordinator refuses deeper
 * bodies with 400; the agent fails a job whose result nests deeper with
 * RESULT_NOT_JSON before it ever sends it.
 */
export const MAX_JSON_DEPTH = 512;

const QUOTE = 0x22;
const BACKSLASH = 0x5c;

/**
 * Whether valid JSON text nests arrays and objects deeper than `max`; reads
 * it once, without recursion. A string is skipped with indexOf from one
 * quote to the next, not character by character: a program's megabytes of
 * source in a body are almost all string (a 2 MiB bundle: ~17 ms a scan
 * character by character, well under 1 ms this way).
 *
 * @example
 * nestsDeeperThan("[[1]]", 1); // true
 */
export function nestsDeeperThan(text: string, max: number): boolean {
  let depth = 0;
  for (let i = 0; i < text.length; i++) {
    const char = text.charCodeAt(i);
    if (char === QUOTE) {
      i = stringEnd(text, i);
    } else if (char === 0x5b || char === 0x7b) {
      if (++depth > max) return true;
    } else if (char === 0x5d || char === 0x7d) {
      depth--;
    }
  }
  return false;
}

/**
 * Where the string that opens at `open` closes: the first quote after it
 * that an odd run of backslashes does not escape (text.length if none).
 */
function stringEnd(text: string, open: number): number {
  for (let at = text.indexOf('"', open + 1); at !== -1; at = text.indexOf('"', at + 1)) {
    let backslashes = 0;
    while (text.charCodeAt(at - 1 - backslashes) === BACKSLASH) backslashes++;
    if (backslashes % 2 === 0) return at;
  }
  return text.length;
}
