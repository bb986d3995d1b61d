import * as z from "zod";
import { runtimeOfFilename } from "./runtimes.js";

/**
 * A job's program (DESIGN.md §7) is one file (`source`, named by `filename`)
 * or a folder: `files: [{path, content}]` and the `entry` among them that the
 * runner loads. `labrun submit` sends a bundle this way; `curl` can send
 * plain JavaScript files directly.
 */

const MiB = 1024 * 1024;

/** Largest program a coordinator takes by default (`--max-program`): its source, or all its files' contents. */
export const MAX_PROGRAM_BYTES = 8 * MiB;
/** The most `--max-program` may be set to (the submit body is up to 6 × this: JSON escapes). */
export const MAX_PROGRAM_BYTES_CEILING = 64 * MiB;
/** Files in one program at most. */
export const MAX_PROGRAM_FILES = 1000;
/** Characters of one file's path, and of one of its segments, at most. */
const MAX_PATH_CHARS = 1024;
const MAX_SEGMENT_CHARS = 255;

/**
 * What is wrong with a program file's path, or undefined when nothing is.
 * A path is relative to the program's folder, `/`-separated, with no empty,
 * `.` or `..` segment: it can only name a place inside that folder.
 *
 * @example pathProblem("../etc/passwd") // 'must not contain ".." (a path stays inside the program\'s folder)'
 */
export function pathProblem(path: string): string | undefined {
  if (path === "") return "is empty";
  if (path.length > MAX_PATH_CHARS) return `is longer than ${MAX_PATH_CHARS} characters`;
  if (path.startsWith("/")) return "is absolute: give it relative to the program's folder";
  // Backslashes and control characters are legal in Linux names, but only
  // ever mean a mistake (a Windows path) or a trick (a newline in a log).
  // biome-ignore lint/suspicious/noControlCharactersInRegex: refusing them is the point
  if (/[\u0000-\u001f\u007f\\]/.test(path)) return "has a backslash or a control character";
  for (const segment of path.split("/")) {
    if (segment === "..") return `must not contain ".." (a path stays inside the program's folder)`;
    if (segment === "" || segment === ".")
      return `has an empty or "." segment (use a/b, not a//b, ./a or a/)`;
    if (segment.length > MAX_SEGMENT_CHARS)
      return `has a name longer than ${MAX_SEGMENT_CHARS} characters`;
  }
  return undefined;
}

/** A program file's path (see pathProblem); a refusal quotes the path. */
export const ProgramPath = z.string().superRefine((path, ctx) => {
  const problem = pathProblem(path);
  if (problem) ctx.addIssue({ code: "custom", message: `${JSON.stringify(path)} ${problem}` });
});

/** One file of a program: where it goes in the program's folder, and its text. */
export const ProgramFile = z.object({ path: ProgramPath, content: z.string() }).strict();
export type ProgramFile = z.infer<typeof ProgramFile>;

/**
 * A program's files: at least one, at most MAX_PROGRAM_FILES, each path once,
 * and no path that is both a file and a folder (`a` and `a/b`).
 */
export const ProgramFiles = z
  .array(ProgramFile)
  .min(1, "a program needs at least one file")
  .max(MAX_PROGRAM_FILES, `a program has at most ${MAX_PROGRAM_FILES} files`)
  .superRefine((files, ctx) => {
    const seen = new Set<string>();
    for (const [index, file] of files.entries()) {
      if (seen.has(file.path)) {
        ctx.addIssue({
          code: "custom",
          path: [index, "path"],
          message: `${JSON.stringify(file.path)} is there twice`,
        });
      }
      seen.add(file.path);
    }
    for (const [index, file] of files.entries()) {
      const segments = file.path.split("/");
      for (let depth = 1; depth < segments.length; depth++) {
        const folder = segments.slice(0, depth).join("/");
        if (seen.has(folder)) {
          ctx.addIssue({
            code: "custom",
            path: [index, "path"],
            message: `${JSON.stringify(file.path)} is inside ${JSON.stringify(folder)}, which is a file`,
          });
          break;
        }
      }
    }
  });
export type ProgramFiles = z.infer<typeof ProgramFiles>;

/**
 * The file a runner loads: a plain name (one-file programs) or a path among
 * the program's files, with an extension a runtime runs.
 */
export const ProgramEntry = ProgramPath.refine(
  (path) => runtimeOfFilename(path) !== undefined,
  "must end in .js, .cjs or .mjs (node) or .py (python)",
);

/**
 * Bytes of a program, as `--max-program` counts them: its source, or all its
 * files' contents, as UTF-8. Undefined when the body holds neither as text
 * (the schema then says what is wrong). Reads an unchecked body, so that too
 * large is answered 413 before anything else is looked at.
 */
export function programBytes(body: unknown): number | undefined {
  if (typeof body !== "object" || body === null) return undefined;
  const { source, files } = body as { source?: unknown; files?: unknown };
  if (typeof source === "string") return Buffer.byteLength(source, "utf8");
  if (!Array.isArray(files)) return undefined;
  let bytes = 0;
  for (const file of files) {
    const content = (file as { content?: unknown } | null)?.content;
    if (typeof content === "string") bytes += Buffer.byteLength(content, "utf8");
  }
  return bytes;
}

/** The sentence of a 413 for a program over `maxBytes`. */
export const programTooLarge = (bytes: number, maxBytes: number) =>
  `the program is ${bytes} bytes, more than the ${maxBytes} this coordinator takes (--max-program); make it smaller`;

/** The form check of a job's or batch's program: `source` (+ `filename`) or `files` + `entry`, exactly one. */
export function programFormProblems(request: {
  source?: string | undefined;
  filename?: string | undefined;
  files?: readonly ProgramFile[] | undefined;
  entry?: string | undefined;
}): { path: string; message: string }[] {
  const hasSource = request.source !== undefined;
  const hasFiles = request.files !== undefined;
  if (hasSource && hasFiles) {
    return [{ path: "files", message: "send source or files + entry, not both" }];
  }
  if (!hasSource && !hasFiles) {
    return [{ path: "source", message: "send the program: source, or files + entry" }];
  }
  if (hasSource) {
    return request.entry === undefined
      ? []
      : [
          {
            path: "entry",
            message: "entry goes with files; a one-file program is named by filename",
          },
        ];
  }
  const problems: { path: string; message: string }[] = [];
  if (request.filename !== undefined) {
    problems.push({
      path: "filename",
      message: "with files, the entry names the program; drop filename",
    });
  }
  if (request.entry === undefined) {
    problems.push({ path: "entry", message: "say which of the files to run: entry" });
  } else if (!request.files?.some((file) => file.path === request.entry)) {
    problems.push({
      path: "entry",
      message: `${JSON.stringify(request.entry)} is not one of the files`,
    });
  }
  return problems;
}
