// labrun's in-container runner. No dependencies: it runs FROM scratch beside
// the node binary. Flow: read request → write program → load → find main →
// call → serialise → emit the framed envelope → exit.
//
// Everything the runner relies on is captured before user code loads, so a
// program that monkey-patches globals (JSON, console, process.stdout, Buffer,
// process.exit, Promise) cannot forge or break the envelope. The envelope is
// framed by a nonce that lives only in this module's closure.
"use strict";

const fs = require("node:fs");
const os = require("node:os");
const path = require("node:path");
const Module = require("node:module");
const { pathToFileURL } = require("node:url");

// --- captured before any user code runs -----------------------------------
const stringify = JSON.stringify;
const parseJson = JSON.parse;
const writeSync = fs.writeSync;
const reallyExit = process.reallyExit.bind(process);
const ObjectPrototypeHasOwn = Object.prototype.hasOwnProperty;
const StringFn = String;
const BufferFrom = Buffer.from;
const SyntaxErrorCtor = SyntaxError;
const ErrorCtor = Error;
const PromiseCtor = Promise;
const promiseThen = Promise.prototype.then;
const reflectApply = Reflect.apply;
const processOn = process.on.bind(process);
const streamWrite = require("node:stream").Writable.prototype.write;
// Touching process.stdout/stderr creates the streams now, before the program can replace them.
const stdio = [process.stdout, process.stderr];
const STACK_CAP = 4096;

const BAD_PROGRAM_FORMAT = "Bad program format";

let settled = false;
let nonce = "";

/** Writes all of `text` to fd 1, looping over partial writes and EAGAIN. */
function writeAll(text) {
  const bytes = BufferFrom(text, "utf8");
  let offset = 0;
  while (offset < bytes.length) {
    try {
      offset += writeSync(1, bytes, offset, bytes.length - offset);
    } catch (error) {
      // fd 1 may be non-blocking once the program touched process.stdout.
      if (error && error.code === "EAGAIN") continue;
      throw error;
    }
  }
}

/** Emits the one envelope of this run and exits; later calls do nothing. */
function finish(envelope) {
  if (settled) return;
  settled = true;
  let text;
  try {
    text = stringify(envelope);
  } catch {
    text = stringify({
      ok: false,
      error: { code: "RUNTIME_ERROR", message: "the runner could not encode the outcome" },
    });
  }
  try {
    writeAll(`\n${nonce}${text}${nonce}\n`);
  } finally {
    reallyExit(0);
  }
}

function fail(code, message, detail) {
  const error = { code, message: StringFn(message) };
  if (detail) error.detail = StringFn(detail).slice(0, STACK_CAP);
  finish({ ok: false, error });
}

/** Message (and stack) of a thrown value; a hostile value cannot make this throw. */
function describe(value) {
  try {
    if (value instanceof ErrorCtor) {
      return { message: StringFn(value.message), stack: StringFn(value.stack) };
    }
    return { message: StringFn(value) };
  } catch {
    return { message: "a thrown value that cannot be shown" };
  }
}

// --- a job ends when main settles; anything before that is the program's ----
process.exit = function exit(code) {
  fail(
    "RUNTIME_ERROR",
    `the program called process.exit(${code === undefined ? "" : StringFn(code)}) before main returned`,
  );
};
processOn("uncaughtException", (error) => {
  const { message, stack } = describe(error);
  // The kernel refused more queued stdout/stderr: the program printed far more,
  // far faster, than can be delivered. That is an output limit, not a bug in it.
  if (error && error.code === "ENOBUFS" && error.syscall === "write") {
    return fail("OUTPUT_TOO_LARGE", "the program wrote more output than can be delivered", stack);
  }
  fail("RUNTIME_ERROR", message, stack);
});
// The event loop ran dry while main's promise was still pending: it can never settle.
processOn("beforeExit", () => {
  fail("RUNTIME_ERROR", "main returned a promise that never settles (nothing was left to run)");
});
processOn("unhandledRejection", (reason) => {
  const { message, stack } = describe(reason);
  fail("RUNTIME_ERROR", message, stack);
});

// --- read the request -------------------------------------------------------
function readRequest() {
  let request;
  try {
    request = parseJson(fs.readFileSync(0, "utf8"));
  } catch (error) {
    return { error: `the runner's request is not JSON: ${describe(error).message}` };
  }
  const valid =
    request !== null &&
    typeof request === "object" &&
    typeof request.source === "string" &&
    typeof request.filename === "string" &&
    /^[A-Za-z0-9_.-]{1,100}$/.test(request.filename) &&
    /\.(c|m)?js$/.test(request.filename) &&
    typeof request.nonce === "string" &&
    /^[A-Za-z0-9]{16,128}$/.test(request.nonce);
  if (!valid) return { error: "the runner's request is malformed", nonce: request?.nonce };
  return { request };
}

// --- load the program -------------------------------------------------------
const ESM_SYNTAX =
  /Cannot use import statement|Unexpected token 'export'|import\.meta|await is only valid|Cannot use 'import\.meta'/;

/** Program module loading: CommonJS first for .js, ESM when its syntax says so. */
async function loadProgram(dir, filename, source) {
  const file = path.join(dir, filename);
  fs.writeFileSync(file, source, { mode: 0o400 });
  if (filename.endsWith(".mjs")) return importEsm(file);
  try {
    const requireProgram = Module.createRequire(file);
    return { kind: "cjs", exports: requireProgram(file) };
  } catch (error) {
    const looksEsm =
      (error instanceof SyntaxErrorCtor && ESM_SYNTAX.test(error.message)) ||
      // Node 22+ may load ESM syntax through require() itself, except with top-level await.
      (error && (error.code === "ERR_REQUIRE_ASYNC_MODULE" || error.code === "ERR_REQUIRE_ESM"));
    if (!filename.endsWith(".cjs") && looksEsm) {
      const esmFile = path.join(dir, `${filename.replace(/\.js$/, "")}.mjs`);
      fs.writeFileSync(esmFile, source, { mode: 0o400 });
      return importEsm(esmFile);
    }
    throw error;
  }
}

async function importEsm(file) {
  return { kind: "esm", exports: await import(pathToFileURL(file).href) };
}

/** The callable main, or null: exports.main, module.exports = fn, default.main, default fn. */
function findMain(loaded) {
  const exported = loaded.exports;
  if (exported === null || exported === undefined) return null;
  if (loaded.kind === "cjs" && typeof exported === "function") return exported;
  if (typeof exported.main === "function") return exported.main;
  // ESM default export (also what Node 22+'s require() of ESM syntax yields).
  const fallback = exported.default;
  if (typeof fallback === "function") return fallback;
  if (fallback && typeof fallback.main === "function") return fallback.main;
  return null;
}

/**
 * Lets output the program wrote before main settled reach the agent: pipe
 * writes can be queued in the stream, and exiting at once would drop them
 * (and with them what the agent counts against the output cap). Not bounded
 * here on purpose: a time bound made the outcome depend on load; the job's
 * wall timeout, enforced from outside, bounds it instead.
 */
async function flushProgramOutput() {
  for (const stream of stdio) {
    await new PromiseCtor((resolve) => {
      try {
        // The callback of an empty write runs once everything queued before it is out.
        reflectApply(streamWrite, stream, ["", resolve]);
      } catch {
        resolve();
      }
    });
  }
}

// --- serialise the result ---------------------------------------------------
function serialise(value) {
  if (value === undefined) return { ok: true, json: "null" };
  let json;
  try {
    json = stringify(value);
  } catch (error) {
    return {
      ok: false,
      message: `main's result is not JSON-serialisable: ${describe(error).message}`,
    };
  }
  if (json === undefined) {
    return {
      ok: false,
      message: `main's result is not JSON-serialisable: a ${typeof value} has no JSON form`,
    };
  }
  return { ok: true, json };
}

// --- the run ----------------------------------------------------------------
async function run() {
  const { request, error, nonce: maybeNonce } = readRequest();
  if (error) {
    if (typeof maybeNonce === "string" && /^[A-Za-z0-9]{16,128}$/.test(maybeNonce))
      nonce = maybeNonce;
    return fail("SANDBOX_ERROR", error);
  }
  nonce = request.nonce;
  // Nothing the program can reach holds the nonce from here on.
  request.nonce = undefined;
  const input =
    ObjectPrototypeHasOwn.call(request, "input") && request.input !== undefined
      ? request.input
      : null;

  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "job-"));
  let loaded;
  try {
    loaded = await loadProgram(dir, request.filename, request.source);
  } catch (loadError) {
    if (loadError instanceof SyntaxErrorCtor) {
      return fail("BAD_PROGRAM_FORMAT", BAD_PROGRAM_FORMAT, loadError.message);
    }
    const { message, stack } = describe(loadError);
    return fail("RUNTIME_ERROR", message, stack);
  }
  const main = findMain(loaded);
  if (!main) {
    return fail(
      "BAD_PROGRAM_FORMAT",
      BAD_PROGRAM_FORMAT,
      "the program has no callable main export",
    );
  }

  let result;
  try {
    result = reflectApply(main, undefined, [input]);
    if (result !== null && (typeof result === "object" || typeof result === "function")) {
      // A native promise settles through the captured `then`, so a program that
      // patched Promise.prototype.then cannot stall or fake its own result.
      const then = result instanceof PromiseCtor ? promiseThen : result.then;
      if (typeof then === "function") {
        // Settle through the captured Promise so a patched Promise.prototype cannot interfere.
        result = await new PromiseCtor((resolve, reject) =>
          reflectApply(then, result, [resolve, reject]),
        );
      }
    }
  } catch (thrown) {
    const { message, stack } = describe(thrown);
    await flushProgramOutput();
    return fail("RUNTIME_ERROR", message, stack);
  }

  await flushProgramOutput();
  const serialised = serialise(result);
  if (!serialised.ok) return fail("RESULT_NOT_JSON", serialised.message);
  if (settled) return;
  settled = true;
  try {
    writeAll(`\n${nonce}{"ok":true,"result":${serialised.json}}${nonce}\n`);
  } finally {
    reallyExit(0);
  }
}

reflectApply(promiseThen, run(), [
  undefined,
  (error) => {
    const { message, stack } = describe(error);
    fail("SANDBOX_ERROR", `the runner failed: ${message}`, stack);
  },
]);
