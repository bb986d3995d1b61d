/**
 * How deep arrays and objects may nest in any JSON body of the protocol.
 * zod's `z.json()` and JSON.stringify recurse per level: in a default Node
 * stack they overflow at about 1,500 levels. The coordinator refuses deeper
 * bodies with 400; the agent fails a job whose result nests deeper with
 * RESULT_NOT_JSON before it ever sends it.
 */
export const MAX_JSON_DEPTH = 512;

/**
 * Whether valid JSON text nests arrays and objects deeper than `max`; reads
 * it once, without recursion.
 *
 * @example
 * nestsDeeperThan("[[1]]", 1); // true
 */
export function nestsDeeperThan(text: string, max: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const char = text.charCodeAt(i);
    if (inString) {
      // A backslash escapes the next character, which may be a quote.
      if (char === 0x5c) i++;
      else if (char === 0x22) inString = false;
    } else if (char === 0x22) {
      inString = true;
    } else if (char === 0x5b || char === 0x7b) {
      if (++depth > max) return true;
    } else if (char === 0x5d || char === 0x7d) {
      depth--;
    }
  }
  return false;
}
