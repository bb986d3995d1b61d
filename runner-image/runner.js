// labrun's in-container runner. No dependencies: it runs FROM scratch beside
// the node binary. It reads one job on stdin, runs the program's main(input)
// and writes exactly one framed envelope on stdout:
//
//   read request → write program → load → find main → call → serialise → emit
//
// The envelope is framed as "\n" + nonce + JSON + nonce + "\n". The nonce
// lives only in this module's closure, so nothing the program prints can forge
// or break the envelope: all other output is just the program's logs.
//
// The program runs in this process and realm and may replace any global or
// prototype method (JSON.stringify, console.log, process.stdout.write, Buffer,
// process.exit, Promise.prototype.then...). Everything the runner uses once
// user code has loaded is therefore captured first, below, and called through
// Reflect.apply — the "primordials" pattern Node uses for its own internals.
"use strict";

const fs = require("node:fs");
const os = require("node:os");
const path = require("node:path");
const vm = require("node:vm");
const { createRequire } = require("node:module");
const { Writable } = require("node:stream");
const { pathToFileURL } = require("node:url");
const {
  failure,
  isOutputOverflow,
  show,
  isParseOrLinkError,
  parseErrorDetail,
  findMain,
  whenSettled,
  resultEnvelope,
  describeThrown,
} = require("./contract.js");
const { installLazySourceMaps } = require("./source-maps.js");

// --- captured before any user code loads ------------------------------------
const { apply } = Reflect;
/** `uncurry(String.prototype.slice)(text, 1)` calls the original slice on `text`. */
const uncurry =
  (fn) =>
  (self, ...args) =>
    apply(fn, self, args);
const parseJson = JSON.parse;
const writeSync = fs.writeSync;
const bufferFrom = Buffer.from;
const stringSlice = uncurry(String.prototype.slice);
const stringEndsWith = uncurry(String.prototype.endsWith);
const regExpExec = uncurry(RegExp.prototype.exec);
const promiseThen = Promise.prototype.then;
const processOn = uncurry(process.on);
const reallyExit = uncurry(
  typeof process.reallyExit === "function" ? process.reallyExit : process.exit,
);
const streamWrite = uncurry(Writable.prototype.write);
const streamUncork = uncurry(Writable.prototype.uncork);
const streamCorked = uncurry(
  Object.getOwnPropertyDescriptor(Writable.prototype, "writableCorked").get,
);
const atomicsWait = Atomics.wait;
const sleepCell = new Int32Array(new SharedArrayBuffer(4));
// Touching process.stdout/stderr creates the streams now, before the program can replace them.
const programOutput = [process.stdout, process.stderr];

const BAD_PROGRAM_FORMAT = "Bad program format";
const NONCE = /^[A-Za-z0-9]{16,128}$/;
const FILENAME = /^[A-Za-z0-9_.-]{1,100}$/;
const PROGRAM_EXTENSION = /\.(c|m)?js$/;

/** Frames this run's envelope; set once from the request, never stored anywhere else. */
let nonce = "";
/** The envelope JSON once the job has ended: the first ending wins. */
let outcome = null;
let emitted = false;
/** How long to wait for removal once the result is out (the request's lingerMs; 0: exit at once). */
let lingerMs = 0;
const MAX_LINGER_MS = 10_000;
/** What the program is doing, for the message when the event loop runs dry. */
let phase = "loading";

// --- ending the job -----------------------------------------------------------

/** Writes all of `text` (a string, or bytes) to `fd`, looping over partial writes and EAGAIN. */
function writeAll(fd, text) {
  const bytes = typeof text === "string" ? bufferFrom(text, "utf8") : text;
  let offset = 0;
  while (offset < bytes.length) {
    try {
      offset += writeSync(fd, bytes, offset, bytes.length - offset);
    } catch (error) {
      // fd 1 is non-blocking once the program has touched process.stdout.
      if (error?.code !== "EAGAIN") throw error;
      apply(atomicsWait, Atomics, [sleepCell, 0, 0, 1]);
    }
  }
}

/**
 * Writes the framed envelope and ends the process at once, cutting off any
 * timers or promises the program left behind. The nonce alone on stderr first
 * tells the agent that stderr is complete, so it can take the result as soon
 * as the envelope arrives instead of waiting ~0.1 s for the container to exit.
 */
function emit(envelopeJson) {
  if (emitted) return;
  emitted = true;
  try {
    let stderrEnded = false;
    try {
      writeAll(2, nonce);
      stderrEnded = true;
    } catch {
      // stderr closed by the program: the agent then waits for the exit instead.
    }
    writeAll(1, `\n${nonce}${envelopeJson}${nonce}\n`);
    if (stderrEnded && lingerMs > 0) lingerUntilRemoved();
  } finally {
    reallyExit(process, 0);
  }
}

/**
 * Blocks this thread until the agent removes the container, or for the
 * request's `lingerMs` (the agent's; a plain `docker run` of the image sends
 * none, and the runner exits at once).
 * Exiting at once would start the container's teardown (runc, containerd and
 * dockerd reaping it, a burst of CPU on a small machine) while the envelope
 * is still on its way out through dockerd's attach stream: 1–6 ms of the
 * warm job measured here. The agent has everything it needs from the output
 * alone, and removes the container later, off the job's hot path. With this
 * thread blocked no program code runs in it; the program's own threads
 * end with the container, as they would at exit.
 */
function lingerUntilRemoved() {
  apply(atomicsWait, Atomics, [sleepCell, 0, 0, lingerMs]);
}

/**
 * Ends the job with `envelopeJson` unless it has already ended. Output the
 * program queued in its streams (a pipe takes 64 KiB before writes queue) is
 * let out first, so it reaches the agent before the envelope instead of being
 * dropped at exit (and with it what the agent counts against the output cap).
 * Not bounded in time on purpose: a bound made the outcome depend on load; the
 * job's wall timeout, enforced from outside, bounds it instead.
 */
function conclude(envelopeJson) {
  if (outcome !== null) return;
  outcome = envelopeJson;
  whenOutputOut(
    () => emit(outcome),
    // Output that cannot be delivered outranks a result already decided.
    (error) => emit(thrownFailure(error)),
  );
}

/**
 * Calls `allOut()` once both output streams have let out what was queued in
 * them before now, or `overflowed(error)` at once when one of them cannot.
 */
function whenOutputOut(allOut, overflowed) {
  let pending = programOutput.length;
  for (let i = 0; i < programOutput.length; i++) {
    const stream = programOutput[i];
    let called = false;
    const flushed = (error) => {
      if (called) return;
      called = true;
      if (isOutputOverflow(error)) return overflowed(error);
      pending -= 1;
      if (pending === 0) allOut();
    };
    try {
      // A corked stream would hold the empty write below back for ever.
      for (let n = 0; n < 1000 && streamCorked(stream) > 0; n++) streamUncork(stream);
      // The callback of an empty write runs once everything queued before it is out.
      streamWrite(stream, "", flushed);
    } catch (error) {
      flushed(error);
    }
  }
}

function fail(code, message, detail) {
  conclude(failure(code, message, detail));
}

/** The failure for something the program threw, rejected with or raised. */
function thrownFailure(thrown, program) {
  // The kernel refused more queued stdout/stderr: the program printed far more,
  // far faster, than can be delivered. That is an output limit, not a bug in it.
  if (isOutputOverflow(thrown)) {
    return failure("OUTPUT_TOO_LARGE", "the program wrote more output than can be delivered");
  }
  const { message, stack } = describeThrown(thrown, program);
  return failure("RUNTIME_ERROR", message, stack);
}

// --- reading thrown values safely ---------------------------------------------
// These run after user code, on values it made: every property read may call a
// getter it wrote, so each one is guarded and uses captured functions only.

// --- the steps of a run -------------------------------------------------------

/**
 * Reads from fd 0 into `buffer` at `offset`, as many bytes as one read
 * gives (at most `length`): 0 once the input has ended.
 */
function readSome(buffer, offset, length) {
  for (;;) {
    try {
      return fs.readSync(0, buffer, offset, length, null);
    } catch (error) {
      if (error?.code === "EAGAIN") {
        apply(atomicsWait, Atomics, [sleepCell, 0, 0, 1]);
        continue;
      }
      if (error?.code === "EOF") return 0;
      throw error;
    }
  }
}

/**
 * The request is one line of JSON (JSON.stringify never writes a raw
 * newline). Reading up to the newline, not to EOF, starts the job as soon as
 * its bytes arrive: Docker takes several ms to pass on the close of stdin.
 * A program of several files follows the line as raw bytes, each file's
 * `bytes` in turn (its contents never go through JSON: no escaping, no
 * parsing of megabytes). Returns the line's text and the bytes read past it
 * (`rest`, the payload's start).
 */
function readRequestText() {
  const chunks = [];
  let length = 0;
  let lineEnd = -1;
  const buffer = Buffer.allocUnsafe(64 * 1024);
  while (lineEnd === -1) {
    const n = readSome(buffer, 0, buffer.length);
    if (n === 0) break;
    const chunk = Buffer.from(buffer.subarray(0, n));
    const at = chunk.indexOf(0x0a);
    if (at !== -1) lineEnd = length + at;
    chunks.push(chunk);
    length += n;
  }
  const all = chunks.length === 1 ? chunks[0] : Buffer.concat(chunks);
  const end = lineEnd === -1 ? all.length : lineEnd;
  return { text: all.toString("utf8", 0, end), rest: all.subarray(end + 1) };
}

/**
 * The `wanted` raw bytes after the request line, read straight into one
 * buffer of that size (the bytes read with the line copied in first): a
 * bundle's megabytes are copied once, not per chunk and again to join
 * them. Null when the input ends first.
 */
function readPayload(read, wanted) {
  const payload = Buffer.allocUnsafe(wanted);
  let have = read.rest.copy(payload, 0, 0, Math.min(read.rest.length, wanted));
  while (have < wanted) {
    const n = readSome(payload, have, wanted - have);
    if (n === 0) return null;
    have += n;
  }
  return payload;
}

/** Reads and validates the request; a request without a usable nonce cannot be answered. */
function readRequest() {
  return parseRequest(readRequestText());
}

/**
 * The request in `read` (readRequestText's line and the bytes after it),
 * validated; sets this run's nonce and lingerMs.
 */
function parseRequest(read) {
  const { text } = read;
  let request = null;
  try {
    request = parseJson(text);
  } catch {
    // Not JSON: answered as SANDBOX_ERROR below, if a nonce can still be found.
  }
  const isObject = request !== null && typeof request === "object" && !Array.isArray(request);
  if (isObject && typeof request.nonce === "string" && NONCE.test(request.nonce)) {
    nonce = request.nonce;
    // Nothing the program can reach holds the nonce from here on.
    delete request.nonce;
  } else {
    // A truncated or garbled request may still carry the nonce: framing the
    // SANDBOX_ERROR lets the agent say what went wrong.
    const found = /"nonce"\s*:\s*"([A-Za-z0-9]{16,128})"/.exec(text);
    if (!found) {
      writeSync(2, "labrun runner: the request on stdin has no valid nonce; cannot answer\n");
      reallyExit(process, 2);
    }
    nonce = found[1];
  }
  // RegExp.input, RegExp.$1 and friends are globals that hold the last match:
  // one more match makes sure they no longer hold the nonce or the request.
  regExpExec(/(?:)/, "");
  if (isObject && Number.isSafeInteger(request.lingerMs)) {
    lingerMs = Math.min(Math.max(request.lingerMs, 0), MAX_LINGER_MS);
  }
  const problem = requestProblem(isObject ? request : null) || attachPayload(read, request);
  if (problem) return { problem };
  return {
    source: request.source,
    filename: request.filename,
    files: request.files,
    input: request.input ?? null,
    reuse: request.reuse === true,
  };
}

/**
 * Reads the files' raw contents that follow the request line (`{path,
 * bytes}` in the line: see readRequestText) into their `content`, as
 * Buffers; a request whose files carry their `content` in the JSON has none.
 * Returns what is wrong, or "".
 */
function attachPayload(read, request) {
  const files = request.files;
  if (files === undefined || typeof files[0]?.bytes !== "number") return "";
  let wanted = 0;
  for (const file of files) wanted += file.bytes;
  const payload = readPayload(read, wanted);
  if (payload === null) return `the input ended before the files' ${wanted} bytes`;
  let offset = 0;
  for (const file of files) {
    file.content = payload.subarray(offset, offset + file.bytes);
    offset += file.bytes;
  }
  return "";
}

/** What is wrong with a request (RunnerRequest in protocol/jobs.ts), or "" when nothing is. */
function requestProblem(request) {
  if (request === null) return "it is not a JSON object";
  if (typeof request.source !== "string") return "source is not a string";
  if (typeof request.filename !== "string") return "filename is not a string";
  if (request.files !== undefined) return filesProblem(request.files, request.filename);
  if (!FILENAME.test(request.filename) || !PROGRAM_EXTENSION.test(request.filename)) {
    return "filename is not a plain name ending in .js, .cjs or .mjs";
  }
  return "";
}

/**
 * A fresh private directory under the tmpfs for the program. The
 * package.json pins `.js` to CommonJS on every Node version (22+ would
 * otherwise guess the module type itself); ESM syntax is detected below.
 */
function makeJobDir(prefix = "labrun-job-") {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  fs.writeFileSync(path.join(dir, "package.json"), '{"type":"commonjs"}\n', { mode: 0o400 });
  return dir;
}

/** Writes the program (one file, or all its files) into the job directory. */
function writeProgram(dir, request) {
  const { filename, files } = request;
  const file = path.join(dir, filename);
  let content = request.source;
  if (files === undefined) fs.writeFileSync(file, content, { mode: 0o400 });
  else content = writeFiles(dir, files, filename);
  return { dir, dirUrl: pathToFileURL(dir).href, file, filename, content, text: null };
}

/** The entry's text, decoded from its bytes the first time it is needed (a bundle's entry `.mjs` never is). */
function sourceOf(program) {
  if (program.text === null) {
    program.text =
      typeof program.content === "string" ? program.content : program.content.toString("utf8");
  }
  return program.text;
}

// --- a program of several files (DESIGN.md §7) ----------------------------------
// Runs before any program code, on the agent's request: the paths were
// checked by the coordinator and are checked again here, and every file and
// folder is created fresh (O_EXCL, O_NOFOLLOW), so nothing is followed or
// overwritten even if a path slipped through.

const MAX_FILES = 1000;
// biome-ignore lint/suspicious/noControlCharactersInRegex: refusing them is the point
const BAD_PATH_CHARACTERS = /[\u0000-\u001f\u007f\\]/;

/** Whether `name` is a relative path that stays inside the job directory (protocol's pathProblem). */
function isInsidePath(name) {
  if (name === "" || name.length > 1024 || name[0] === "/" || BAD_PATH_CHARACTERS.test(name)) {
    return false;
  }
  return name.split("/").every((part) => part !== "" && part !== "." && part !== "..");
}

/** What is wrong with a request's files and entry, or "" when nothing is. */
function filesProblem(files, entry) {
  if (!Array.isArray(files) || files.length === 0 || files.length > MAX_FILES) {
    return `files is not a list of 1 to ${MAX_FILES} files`;
  }
  const paths = new Set();
  for (const file of files) {
    const sized = Number.isSafeInteger(file?.bytes) && file.bytes >= 0;
    if (
      file === null ||
      typeof file?.path !== "string" ||
      !(typeof file.content === "string" || sized)
    ) {
      return "a file is not {path, content} or {path, bytes}";
    }
    if (!isInsidePath(file.path) || paths.has(file.path)) {
      return `the file path ${JSON.stringify(file.path)} is not a new relative path inside the program's folder`;
    }
    paths.add(file.path);
  }
  if (!paths.has(entry) || !PROGRAM_EXTENSION.test(entry)) {
    return "filename is not one of the files, or does not end in .js, .cjs or .mjs";
  }
  return "";
}

/** Writes each file under `dir`, read-only, and returns the entry's content (text, or bytes). */
function writeFiles(dir, files, entry) {
  const { O_WRONLY, O_CREAT, O_EXCL, O_NOFOLLOW } = fs.constants;
  let entrySource = "";
  for (const file of files) {
    const parts = file.path.split("/");
    let folder = dir;
    for (const part of parts.slice(0, -1)) {
      folder = path.join(folder, part);
      try {
        fs.mkdirSync(folder, { mode: 0o700 });
      } catch (error) {
        if (error?.code !== "EEXIST" || !fs.lstatSync(folder).isDirectory()) throw error;
      }
    }
    const target = path.join(dir, file.path);
    // The program's own package.json (its "type") replaces the runner's default one.
    if (file.path === "package.json") fs.unlinkSync(target);
    const fd = fs.openSync(target, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o400);
    try {
      writeAll(fd, file.content);
    } finally {
      fs.closeSync(fd);
    }
    if (file.path === entry) entrySource = file.content;
  }
  return entrySource;
}

/**
 * A bundle's source map (labrun submit sends one) makes a stack name the
 * user's own files and lines (src/lib/fail.ts:2), not the bundle's. The map
 * is parsed only if a stack is formatted (source-maps.js); on a node without
 * the default prepareStackTrace that needs, Node's own eager switch instead.
 */
function mapStacks(program, request) {
  const files = request.files ?? [{ path: program.filename, content: program.content }];
  // A `.js` entry with ESM syntax runs from its `.mjs` copy (importProgram).
  const copy = stringEndsWith(program.filename, ".js")
    ? [{ path: `${stringSlice(program.filename, 0, -".js".length)}.mjs`, content: program.content }]
    : [];
  try {
    const installed = installLazySourceMaps(program.dir, [...copy, ...files]);
    if (installed === "unsupported") process.setSourceMapsEnabled(true);
  } catch {
    // No mapping: stacks name the bundle's own lines.
  }
}

/**
 * From here on the job ends only through the runner: a process.exit, an
 * uncaught exception or an unhandled rejection before main settles becomes a
 * RUNTIME_ERROR; after it settled, they change nothing.
 */
function installGuards(program) {
  const intercept = (name) =>
    function exit(code) {
      const shown = code === undefined ? "" : show(code);
      // The caller expects not to continue: end now, as Node's own exit would.
      emit(
        outcome ??
          failure("RUNTIME_ERROR", `the program called ${name}(${shown}) before main returned`),
      );
    };
  process.exit = intercept("process.exit");
  process.reallyExit = intercept("process.reallyExit");
  process.abort = intercept("process.abort");
  processOn(process, "uncaughtException", (error) => {
    if (outcome === null) conclude(thrownFailure(error, program));
    // Output that cannot be delivered outranks a result already decided.
    else if (isOutputOverflow(error)) emit(thrownFailure(error, program));
  });
  processOn(process, "unhandledRejection", (reason) => conclude(thrownFailure(reason, program)));
  // The event loop ran dry. With the job ended, no more output can come out;
  // before that, the program was still pending and can never finish.
  processOn(process, "beforeExit", () => {
    if (outcome !== null) return emit(outcome);
    fail(
      "RUNTIME_ERROR",
      phase === "loading"
        ? "the program's top-level await never finished (nothing was left to run)"
        : "main returned a promise that never settles (nothing was left to run)",
    );
  });
}

// SyntaxErrors whose message shows ESM syntax in a `.js` file. The first are
// certain; the second only happen in CommonJS but may also be plain mistakes,
// so the CommonJS error is kept if the program does not parse as ESM either
// (Node's own module-syntax detection uses much the same two lists).
const ESM_SYNTAX =
  /^(Cannot use import statement outside a module|Unexpected token 'export'|Cannot use 'import\.meta' outside a module)/;
const MAYBE_ESM_SYNTAX =
  /^(await is only valid in async functions and the top level bodies of modules|Unexpected reserved word|Identifier '(module|exports|require|__filename|__dirname)' has already been declared)/;
const COMMONJS_PARAMETERS = ["exports", "require", "module", "__filename", "__dirname"];

/**
 * Loads a `.cjs`/`.js` program. It is compiled once first, exactly as require()
 * will, so a program that does not parse is told apart from one that throws a
 * SyntaxError while running (JSON.parse, eval) — and require() never sees ESM
 * syntax (which would print Node's "To load an ES module" warning into the logs).
 * Returns null when the job has already ended.
 */
function requireProgram(program) {
  let syntaxError = null;
  try {
    vm.compileFunction(sourceOf(program), COMMONJS_PARAMETERS, { filename: program.file });
  } catch (error) {
    syntaxError = error;
  }
  if (syntaxError) {
    const message = show(syntaxError.message);
    if (stringEndsWith(program.filename, ".js")) {
      if (ESM_SYNTAX.test(message)) return { kind: "esm-syntax", syntaxError: null };
      if (MAYBE_ESM_SYNTAX.test(message)) return { kind: "esm-syntax", syntaxError };
    }
    fail("BAD_PROGRAM_FORMAT", BAD_PROGRAM_FORMAT, parseErrorDetail(syntaxError, program));
    return null;
  }
  try {
    return { kind: "cjs", exports: createRequire(program.file)(program.file) };
  } catch (thrown) {
    // It parsed, so whatever it threw while loading is its own doing.
    conclude(thrownFailure(thrown, program));
    return null;
  }
}

/**
 * Loads an ES module (`.mjs`, or a `.js` whose syntax is ESM, copied to `.mjs`).
 * `cjsSyntaxError` is reported instead when a maybe-ESM `.js` is not valid ESM
 * either. Resolves to null when the job has already ended.
 */
async function importProgram(program, cjsSyntaxError) {
  let file = program.file;
  if (!stringEndsWith(file, ".mjs")) {
    file = `${stringSlice(file, 0, -".js".length)}.mjs`;
    fs.writeFileSync(file, program.content, { mode: 0o400 });
  }
  try {
    return { kind: "esm", exports: await import(pathToFileURL(file).href) };
  } catch (thrown) {
    if (!isParseOrLinkError(thrown, program)) {
      conclude(thrownFailure(thrown, program));
      return null;
    }
    const reported = cjsSyntaxError ?? thrown;
    fail("BAD_PROGRAM_FORMAT", BAD_PROGRAM_FORMAT, parseErrorDetail(reported, program));
    return null;
  }
}

function missingMainDetail(loaded) {
  const where =
    loaded.kind === "cjs"
      ? "set exports.main (or module.exports) to a function"
      : "export a function named main, or a default export that is a function or has a main method";
  let found = "";
  try {
    const main = loaded.exports?.main;
    if (main !== undefined) found = ` (main is ${main === null ? "null" : `a ${typeof main}`})`;
  } catch {
    // A throwing getter: no more to say about it.
  }
  return `the program has no callable main${found}: ${where}`;
}

// --- the rehearsal -----------------------------------------------------------

const REHEARSAL_FILES = [
  { path: "main.js", content: bufferFrom("exports.main = (x) => [x];\n") },
  { path: "lib/main.mjs", content: bufferFrom("export const main = (x) => [x];\n") },
];

/**
 * Runs the steps of a job once on programs of the runner's own, before the
 * job arrives (a warm container waits for it anyway): the first run of each
 * step in a process pays for V8 compiling the runner's functions and for
 * Node loading its module loaders' internals, the ES module loader's above
 * all (~15 ms of CPU for the first import(), more than the rest of a small
 * job), and for Node's stream code on the first flush of stdout and stderr
 * (an empty write each: ~1 ms of a trivial job). The job then finds them
 * ready. No program code has run yet, and nothing of the rehearsal is left
 * where the program could reach it but the loader's entry for a module in a
 * folder that is gone. Any failure only means the job pays for the first run
 * itself: this never ends the job.
 */
async function rehearse() {
  let dir = "";
  try {
    dir = makeJobDir("labrun-rehearsal-");
    // The request as the agent sends it: the line, the files' bytes after it.
    const request = parseRequest({
      text: JSON.stringify({
        source: "",
        filename: "main.js",
        files: REHEARSAL_FILES.map((file) => ({ path: file.path, bytes: file.content.length })),
        input: [1],
        nonce: "rehearsalrehearsal",
      }),
      rest: Buffer.concat(REHEARSAL_FILES.map((file) => file.content)),
    });
    nonce = "";
    lingerMs = 0;
    if (request.problem) return;
    const program = writeProgram(dir, request);
    // Its files name no source map: nothing is installed.
    mapStacks(program, request);
    vm.compileFunction(sourceOf(program), COMMONJS_PARAMETERS, { filename: program.file });
    const exports = createRequire(program.file)(program.file);
    delete require.cache[program.file];
    const found = findMain({ kind: "cjs", exports });
    resultEnvelope(apply(found.main, found.self, [request.input]));
    const module = await import(pathToFileURL(path.join(dir, "lib", "main.mjs")).href);
    resultEnvelope(findMain({ kind: "esm", exports: module }).main(request.input));
    await new Promise((settled) => whenOutputOut(settled, settled));
  } catch {
    // Not rehearsed: the job's own steps run for the first time instead.
  } finally {
    if (dir) {
      try {
        fs.rmSync(dir, { recursive: true, force: true });
      } catch {
        // A leftover folder of the runner's own; the job has its own.
      }
    }
  }
}

// --- the run -----------------------------------------------------------------

async function run() {
  // Made before the job arrives (a warm container waits here), not after; a
  // failure is answered once the request's nonce is known.
  let dir = "";
  let dirError = null;
  try {
    dir = makeJobDir();
  } catch (error) {
    dirError = error;
  }
  await rehearse();
  // Node is up: the agent starts the job's clock here (a cold container spends
  // a while booting node first). Written before any program code exists.
  try {
    writeAll(2, "LABRUN_RUNNER_READY\n");
  } catch {
    // No stderr before any program ran: the agent reports the runner as not starting.
  }
  const request = readRequest();
  // A batch's item that may share this container: framer.js takes over (this
  // process then frames items run by a separate item host, never runs them).
  if (request.reuse) {
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
    return require("./framer.js").serve(request, nonce);
  }
  if (dirError) {
    const { message } = describeThrown(dirError);
    return fail("SANDBOX_ERROR", `the runner could not prepare the job directory: ${message}`);
  }
  if (request.problem) {
    return fail("SANDBOX_ERROR", `the runner's request is malformed: ${request.problem}`);
  }
  let program;
  try {
    program = writeProgram(dir, request);
  } catch (error) {
    const { message } = describeThrown(error);
    return fail("RUNTIME_ERROR", `the runner could not write the program's files: ${message}`);
  }
  installGuards(program);
  mapStacks(program, request);

  // Every await below starts before any of the program runs, so a program
  // that patches Promise cannot get between the runner and its own promises.
  let loaded = stringEndsWith(program.filename, ".mjs")
    ? await importProgram(program, null)
    : requireProgram(program);
  if (loaded?.kind === "esm-syntax") loaded = await importProgram(program, loaded.syntaxError);
  if (!loaded || outcome !== null) return;

  let found;
  try {
    found = findMain(loaded);
  } catch (thrown) {
    return conclude(thrownFailure(thrown, program));
  }
  if (!found) return fail("BAD_PROGRAM_FORMAT", BAD_PROGRAM_FORMAT, missingMainDetail(loaded));

  phase = "running";
  let result;
  try {
    result = apply(found.main, found.self, [request.input]);
  } catch (thrown) {
    return conclude(thrownFailure(thrown, program));
  }
  whenSettled(
    result,
    (value) => conclude(resultEnvelope(value)),
    (reason) => conclude(thrownFailure(reason, program)),
  );
}

apply(promiseThen, run(), [
  undefined,
  (error) => {
    const { message, stack } = describeThrown(error);
    fail("SANDBOX_ERROR", `the runner failed: ${message}`, stack);
  },
]);
