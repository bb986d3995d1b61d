"use strict";
// What a labrun runner does with a program's outcome, shared by runner.js (one
// job per container) and item-host.js (a batch's items in one container): how
// main is found, how its value is awaited, how a result or an error becomes
// the envelope. Loaded before any program code, so what it captures below are
// the originals a program cannot patch.

const { types } = require("node:util");

// --- captured before any user code loads ------------------------------------
const { apply } = Reflect;
const uncurry =
  (fn) =>
  (self, ...args) =>
    apply(fn, self, args);
const stringify = JSON.stringify;
const StringCtor = String;
const getPrototypeOf = Object.getPrototypeOf;
const stringSlice = uncurry(String.prototype.slice);
const stringIndexOf = uncurry(String.prototype.indexOf);
const arrayPush = uncurry(Array.prototype.push);
const arrayJoin = uncurry(Array.prototype.join);
const promiseThen = Promise.prototype.then;
const isPromise = types.isPromise;
// Error.isError (Node 24+) and isNativeError cannot be fooled by prototypes or Symbol.hasInstance.
const isError = typeof Error.isError === "function" ? Error.isError : types.isNativeError;
const SyntaxErrorPrototype = SyntaxError.prototype;

/** Messages and details are capped so a huge error cannot outgrow the agent's result cap. */
const TEXT_CAP = 4096;

/**
 * The envelope of a failure, assembled by hand from JSON strings: the captured
 * stringify still honours a toJSON the program put on Object.prototype, but
 * never consults one for a primitive string.
 */
function failure(code, message, detail) {
  let json = `{"code":${stringify(code)},"message":${stringify(cap(message))}`;
  if (detail) json += `,"detail":${stringify(cap(detail))}`;
  return `{"ok":false,"error":${json}}}`;
}

function isOutputOverflow(thrown) {
  try {
    return isError(thrown) && thrown.code === "ENOBUFS" && thrown.syscall === "write";
  } catch {
    return false;
  }
}

function cap(text) {
  return text.length > TEXT_CAP ? `${stringSlice(text, 0, TEXT_CAP)}…` : text;
}

/** String(value), or a placeholder when the value's own conversion throws. */
function show(value) {
  try {
    return StringCtor(value);
  } catch {
    return "a value that cannot be shown as text";
  }
}

function stackOf(error) {
  try {
    const stack = error.stack;
    return typeof stack === "string" ? stack : "";
  } catch {
    return "";
  }
}

function replaceAllText(text, find, replacement) {
  let result = "";
  let from = 0;
  for (;;) {
    const at = stringIndexOf(text, find, from);
    if (at === -1) return result + stringSlice(text, from);
    result += stringSlice(text, from, at) + replacement;
    from = at + find.length;
  }
}

/** Shows `/tmp/labrun-job-x/main.js:3` as `main.js:3`: the user only knows its own file name. */
function withoutProgramDir(text, program) {
  return replaceAllText(replaceAllText(text, `${program.dirUrl}/`, ""), `${program.dir}/`, "");
}

/**
 * Whether import() failed because the module does not parse or link (V8's own
 * SyntaxError, raised before any of the program ran, so none of its stack
 * frames is in the program) rather than because the program threw while
 * evaluating (its own code is then on the stack). Only the frames count: the
 * header of a link error names the program's file too.
 */
function isParseOrLinkError(error, program) {
  if (!isError(error) || getPrototypeOf(error) !== SyntaxErrorPrototype) return false;
  const stack = stackOf(error);
  const framesAt = stringIndexOf(stack, "\n    at ");
  if (framesAt === -1) return true;
  const frames = stringSlice(stack, framesAt);
  return stringIndexOf(frames, program.dir) === -1 && stringIndexOf(frames, program.dirUrl) === -1;
}

/** Node's "file:line / source line / ^^^ / SyntaxError: ..." header, without the runner's frames. */
function parseErrorDetail(error, program) {
  const stack = withoutProgramDir(stackOf(error), program);
  const framesAt = stringIndexOf(stack, "\n    at ");
  const header = framesAt === -1 ? stack : stringSlice(stack, 0, framesAt);
  return header || `SyntaxError: ${show(error.message)}`;
}

/**
 * The program's main and the `this` a caller would naturally use:
 * CommonJS `exports.main` or `module.exports` as a function; ESM `export main`,
 * `export default { main }` or a default function. Also `exports.default` from
 * ESM compiled to CommonJS (TypeScript, Babel).
 */
function findMain(loaded) {
  const exported = loaded.exports;
  const isObjectLike = (value) =>
    value !== null && (typeof value === "object" || typeof value === "function");
  if (!isObjectLike(exported)) return null;
  if (typeof exported.main === "function") {
    return { main: exported.main, self: loaded.kind === "cjs" ? exported : undefined };
  }
  if (loaded.kind === "cjs" && typeof exported === "function") {
    return { main: exported, self: undefined };
  }
  const fallback = exported.default;
  if (isObjectLike(fallback) && typeof fallback.main === "function") {
    return { main: fallback.main, self: fallback };
  }
  if (typeof fallback === "function") return { main: fallback, self: undefined };
  return null;
}

/**
 * Follows `value` the way `await` would, through captured functions only: a
 * native promise settles through the original then (a program that patched
 * Promise.prototype.then cannot stall or fake its result); any other thenable
 * through its own then, as `await` would call it.
 */
function whenSettled(value, onValue, onError) {
  let then = null;
  let called = false;
  try {
    if (isPromise(value)) then = promiseThen;
    else if (value !== null && (typeof value === "object" || typeof value === "function")) {
      const candidate = value.then;
      if (typeof candidate === "function") then = candidate;
    }
    if (then !== null) {
      apply(then, value, [
        (next) => {
          if (called) return;
          called = true;
          whenSettled(next, onValue, onError);
        },
        (reason) => {
          if (called) return;
          called = true;
          onError(reason);
        },
      ]);
    }
  } catch (thrown) {
    if (!called) {
      called = true;
      onError(thrown);
    }
    return;
  }
  if (then === null) onValue(value);
}

/**
 * The success envelope of main's value, with JSON.stringify semantics
 * (toJSON honoured, undefined → null), or RESULT_NOT_JSON for a value with no
 * JSON text. Serialised at once: later changes by leftover timers do not count.
 */
function resultEnvelope(value) {
  if (value === undefined) return '{"ok":true,"result":null}';
  let json;
  try {
    json = stringify(value);
  } catch (error) {
    const { message } = describeThrown(error);
    return failure("RESULT_NOT_JSON", `main's result cannot be serialised to JSON: ${message}`);
  }
  if (json === undefined) {
    const what = typeof value === "object" ? "its toJSON returned undefined" : `a ${typeof value}`;
    return failure("RESULT_NOT_JSON", `main's result has no JSON form (${what})`);
  }
  return `{"ok":true,"result":${json}}`;
}

/** `{message, stack}` of a thrown value: error.message for errors, String(value) otherwise. */
function describeThrown(thrown, program) {
  if (!isError(thrown)) return { message: show(thrown), stack: "" };
  let message = "";
  try {
    message = show(thrown.message);
  } catch {
    // A throwing message getter: fall back to the error's own text below.
  }
  const stack = stackOf(thrown);
  return {
    message: message || show(thrown),
    stack: program ? withoutProgramDir(stack, program) : stack,
  };
}

/**
 * A stream's text chunks as lines: the handler for its "data" events, calling
 * `onLine` with each line. Only each new chunk is searched for a newline: a
 * batch item's request (a source of megabytes, an input of one) or its reply
 * comes in many chunks, and searching all that had come at every chunk was
 * quadratic in its size (a 0.45 MB source took ~47 ms here to be read as one
 * line, more than running it).
 */
function lineSplitter(onLine) {
  let pieces = [];
  return (chunk) => {
    let from = 0;
    for (;;) {
      const end = stringIndexOf(chunk, "\n", from);
      if (end === -1) {
        if (from < chunk.length) arrayPush(pieces, stringSlice(chunk, from));
        return;
      }
      arrayPush(pieces, stringSlice(chunk, from, end));
      const line = arrayJoin(pieces, "");
      pieces = [];
      from = end + 1;
      onLine(line);
    }
  };
}

module.exports = {
  describeThrown,
  failure,
  isOutputOverflow,
  show,
  isParseOrLinkError,
  parseErrorDetail,
  findMain,
  whenSettled,
  resultEnvelope,
  lineSplitter,
};
