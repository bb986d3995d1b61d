// labrun's item host: runs the items of one batch, one after another, each in
// a fresh `vm` context, for the framer (framer.js, PID 1 of the container).
//
//   framer --(fd 0: one request per line, no nonce)--> item host
//   framer <--(fd 3: one reply per line)-------------- item host
//   item host's stdout/stderr = the container's (the program's logs)
//
// The host never learns a nonce: the framer frames each envelope itself, and
// the host runs no code of the framer. The host is a separate process from
// an exec-only node binary, so it cannot read the framer's memory or files
// (/proc/1/* is closed to a non-dumpable process's peers).
//
// What a fresh context gives an item: its own globals and intrinsics (Object,
// Array, JSON, Promise… and their prototypes), its own module cache and its own
// timers (cleared when the item ends). What it cannot give: the built-in modules
// (require("fs")), `Buffer`, `process` and the other Node globals are the
// host's own objects. So after every item the host checks that none of them
// was changed (a fingerprint of their properties), that nothing is left
// running (timers, I/O, threads, open files under /tmp, listeners) and that
// process state is as it was; when anything differs the reply says so and the
// framer replaces the host with a new process before the next item.
"use strict";

const fs = require("node:fs");
const path = require("node:path");
const os = require("node:os");
const vm = require("node:vm");
const { builtinModules } = require("node:module");
const { Writable } = require("node:stream");
const { pathToFileURL } = require("node:url");
const { types } = require("node:util");
const { Console } = require("node:console");
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
  lineSplitter,
} = require("./contract.js");

// --- captured before any item runs (the primordials pattern, as runner.js) ----
const { apply, ownKeys, getOwnPropertyDescriptor } = Reflect;
const uncurry =
  (fn) =>
  (self, ...args) =>
    apply(fn, self, args);
const stringify = JSON.stringify;
const parseJson = JSON.parse;
const writeSync = fs.writeSync;
const bufferFrom = Buffer.from;
const StringCtor = String;
const ArrayIsArray = Array.isArray;
const stringSlice = uncurry(String.prototype.slice);
const stringIndexOf = uncurry(String.prototype.indexOf);
const stringEndsWith = uncurry(String.prototype.endsWith);
const stringStartsWith = uncurry(String.prototype.startsWith);
const regExpTest = uncurry(RegExp.prototype.test);
const arrayPush = uncurry(Array.prototype.push);
const arrayIncludes = uncurry(Array.prototype.includes);
const arrayJoin = uncurry(Array.prototype.join);
const setAdd = uncurry(Set.prototype.add);
const setHas = uncurry(Set.prototype.has);
const setDelete = uncurry(Set.prototype.delete);
const mapGet = uncurry(Map.prototype.get);
const mapSet = uncurry(Map.prototype.set);
const isError = typeof Error.isError === "function" ? Error.isError : types.isNativeError;
const objectCreate = Object.create;
const defineProperty = Object.defineProperty;
const hostSetTimeout = setTimeout;
const hostClearTimeout = clearTimeout;
const hostSetInterval = setInterval;
const hostClearInterval = clearInterval;
const hostSetImmediate = setImmediate;
const hostClearImmediate = clearImmediate;
const hostRequire = require;
const activeResources = process.getActiveResourcesInfo;
const processCwd = process.cwd;
const processUmask = process.umask;
const processEventNames = process.eventNames;
const processListenerCount = process.listenerCount;
const processOn = uncurry(process.on);
const reallyExit = typeof process.reallyExit === "function" ? process.reallyExit : process.exit;
const streamWrite = uncurry(Writable.prototype.write);
const streamUncork = uncurry(Writable.prototype.uncork);
const streamCorked = uncurry(getOwnPropertyDescriptor(Writable.prototype, "writableCorked").get);
const readdirSync = fs.readdirSync;
const readlinkSync = fs.readlinkSync;
const atomicsWait = Atomics.wait;
const sleepCell = new Int32Array(new SharedArrayBuffer(4));
const stdoutStream = process.stdout;
const stderrStream = process.stderr;
const programOutput = [stdoutStream, stderrStream];
const REPLY_FD = 3;

const BAD_PROGRAM_FORMAT = "Bad program format";
const FILENAME = /^[A-Za-z0-9_.-]{1,100}$/;
const PROGRAM_EXTENSION = /\.(c|m)?js$/;
/** How often a running item is checked for being stuck (a promise nothing can settle). */
const STUCK_CHECK_MS = 25;

// Same lists as runner.js: ESM syntax in a `.js` file.
const ESM_SYNTAX =
  /^(Cannot use import statement outside a module|Unexpected token 'export'|Cannot use 'import\.meta' outside a module)/;
const MAYBE_ESM_SYNTAX =
  /^(await is only valid in async functions and the top level bodies of modules|Unexpected reserved word|Identifier '(module|exports|require|__filename|__dirname)' has already been declared)/;
const COMMONJS_PARAMETERS = ["exports", "require", "module", "__filename", "__dirname"];

/**
 * Node's globals an item's context gets, the host's own objects (its
 * intrinsics, Object to Promise, are the context's). `console`, `process`,
 * the timers and `global` are the item's own, made per item below.
 */
const HOST_GLOBALS = [
  "Buffer",
  "URL",
  "URLSearchParams",
  "TextEncoder",
  "TextDecoder",
  "AbortController",
  "AbortSignal",
  "Event",
  "EventTarget",
  "MessageChannel",
  "MessagePort",
  "MessageEvent",
  "Blob",
  "atob",
  "btoa",
  "structuredClone",
  "queueMicrotask",
  "performance",
  "crypto",
  "fetch",
  "Headers",
  "Request",
  "Response",
  "FormData",
  "BroadcastChannel",
  "DOMException",
  "WebAssembly",
];

/** Built-in modules loaded (and fingerprinted) when the host starts: the ones programs use most. */
const PRELOADED = [
  "assert",
  "buffer",
  "child_process",
  "crypto",
  "events",
  "fs",
  "fs/promises",
  "os",
  "path",
  "querystring",
  "stream",
  "string_decoder",
  "timers",
  "url",
  "util",
  "zlib",
];

/**
 * Modules that make an item's host unfit for the next item once required:
 * they start threads, load code into the host realm or keep process-wide state.
 */
const TAINTING = new Set(["module", "worker_threads", "inspector", "vm", "repl", "cluster", "v8"]);

// --- the fingerprint of what contexts share ------------------------------------

/**
 * Every own property of `object` (and, one level down, of the objects and
 * functions it holds, and of a function's `prototype`) as [holder, key, value,
 * getter, setter, extensible] entries: enough to see a replaced function, a new
 * or deleted property, or a patched prototype.
 */
function fingerprintOf(object, into, depth, seen) {
  if (object === null || (typeof object !== "object" && typeof object !== "function")) return;
  if (setHas(seen, object)) return;
  setAdd(seen, object);
  const keys = ownKeys(object);
  arrayPush(into, object, keys.length, Object.isExtensible(object));
  for (let i = 0; i < keys.length; i++) {
    const descriptor = getOwnPropertyDescriptor(object, keys[i]);
    arrayPush(into, keys[i], descriptor.value, descriptor.get, descriptor.set);
    if (depth > 0 && "value" in descriptor) fingerprintOf(descriptor.value, into, depth - 1, seen);
  }
  if (typeof object === "function" && depth >= 0) {
    const prototype = getOwnPropertyDescriptor(object, "prototype")?.value;
    fingerprintOf(prototype, into, 0, seen);
  }
}

/** Intrinsics of the host's realm: an item reaches them only through a host object. */
const HOST_INTRINSICS = [
  "Object",
  "Array",
  "Function",
  "String",
  "Number",
  "Boolean",
  "Symbol",
  "Promise",
  "RegExp",
  "Error",
  "TypeError",
  "Map",
  "Set",
  "JSON",
  "Math",
  "Reflect",
  "Uint8Array",
  "ArrayBuffer",
  "Date",
];

/**
 * The shared objects, each with how deep it is fingerprinted: process, its
 * streams and the host's global object by their own properties (their inner
 * state changes with every write); the globals items get, the host's
 * intrinsics and its built-in modules one level down.
 */
function sharedRoots() {
  const roots = [
    [process, 0],
    [stdoutStream, 0],
    [stderrStream, 0],
    [globalThis, 0],
  ];
  for (const name of HOST_GLOBALS) if (name in globalThis) arrayPush(roots, [globalThis[name], 1]);
  for (const name of HOST_INTRINSICS) arrayPush(roots, [globalThis[name], 1]);
  return roots;
}

function segmentOf([object, depth]) {
  const into = [];
  fingerprintOf(object, into, depth, new Set());
  return into;
}

/** One segment per shared root, then one per built-in module as it is first handed out. */
let fingerprint = [];
/** The roots of `fingerprint`, in its order. */
let roots = [];

function takeFingerprint() {
  roots = sharedRoots();
  for (const name of loadedBuiltins) arrayPush(roots, [hostRequire(name), 1]);
  fingerprint = [];
  for (let i = 0; i < roots.length; i++) arrayPush(fingerprint, segmentOf(roots[i]));
}

function fingerprintChanged() {
  for (let i = 0; i < roots.length; i++) {
    const now = segmentOf(roots[i]);
    const then = fingerprint[i];
    if (now.length !== then.length) return true;
    for (let j = 0; j < now.length; j++) if (!Object.is(now[j], then[j])) return true;
  }
  return false;
}

/** Built-in modules handed out so far (each one's fingerprint is part of the host's). */
const loadedBuiltins = [];

/** Process-wide state beside the shared objects: cwd, umask, listeners. */
function processState() {
  const names = apply(processEventNames, process, []);
  let text = `${apply(processCwd, process, [])}|${apply(processUmask, process, [])}`;
  for (let i = 0; i < names.length; i++) {
    text += `|${StringCtor(names[i])}:${apply(processListenerCount, process, [names[i]])}`;
  }
  return text;
}

function resourceCounts() {
  return arrayJoin(apply(activeResources, process, []).sort(), ",");
}

function threadCount() {
  return readdirSync("/proc/self/task").length;
}

/** Open files as "fd=target", but the ones the host itself keeps. */
function openFiles() {
  const files = [];
  for (const fd of readdirSync("/proc/self/fd")) {
    try {
      arrayPush(files, `${fd}=${readlinkSync(`/proc/self/fd/${fd}`)}`);
    } catch {
      // The directory's own descriptor, closed by now.
    }
  }
  return arrayJoin(files.sort(), ",");
}

let baseline = null;

function takeBaseline() {
  takeFingerprint();
  return {
    process: processState(),
    resources: resourceCounts(),
    threads: threadCount(),
    files: openFiles(),
  };
}

/**
 * Why the host is not fit for another item (a short reason), or "" when it is:
 * anything shared that changed, or anything of the item still alive.
 */
function taintOf(item) {
  if (item.tainted) return item.tainted;
  // A failed item may have stopped half-way through changing something: not
  // worth a doubt, failures are rare.
  if (stringStartsWith(item.outcome, '{"ok":false')) return "the item failed";
  if (processState() !== baseline.process) return "process state changed";
  if (resourceCounts() !== baseline.resources) {
    return `work left pending (${resourceCounts()} after ${baseline.resources})`;
  }
  if (threadCount() !== baseline.threads) return "threads left running";
  if (openFiles() !== baseline.files) return "files left open";
  if (stdoutStream.destroyed || stderrStream.destroyed) return "output closed";
  if (fingerprintChanged()) return "a shared built-in changed";
  return "";
}

// --- envelopes (the same texts as runner.js) --------------------------------------

function thrownFailure(thrown, program) {
  if (isOutputOverflow(thrown)) {
    return failure("OUTPUT_TOO_LARGE", "the program wrote more output than can be delivered");
  }
  const { message, stack } = describeThrown(thrown, program);
  return failure("RUNTIME_ERROR", message, stack);
}

// --- one item -------------------------------------------------------------------

/** The item running now; null between items. */
let current = null;

/** Ends the current item with `envelopeJson` (the first ending wins), once its output is out. */
function conclude(item, envelopeJson) {
  if (item.outcome !== null) return;
  item.outcome = envelopeJson;
  let pending = programOutput.length;
  for (let i = 0; i < programOutput.length; i++) {
    const stream = programOutput[i];
    let called = false;
    const flushed = (error) => {
      if (called) return;
      called = true;
      if (isOutputOverflow(error)) item.outcome = thrownFailure(error);
      pending -= 1;
      if (pending === 0) finish(item);
    };
    try {
      for (let n = 0; n < 1000 && streamCorked(stream) > 0; n++) streamUncork(stream);
      streamWrite(stream, "", flushed);
    } catch (error) {
      flushed(error);
    }
  }
}

/** The item is over: its timers go, the host is checked, and the framer gets the reply. */
function finish(item) {
  if (item.finished) return;
  item.finished = true;
  item.dead = true;
  hostClearInterval(item.stuckCheck);
  for (const timer of item.timers) timer.clear();
  item.timers.clear();
  // One turn of the event loop: what the item queued as it ended (microtasks,
  // immediates it had no time to clear) has run or shows up as pending work.
  hostSetImmediate(() => {
    const taint = taintOf(item);
    current = null;
    reply({ envelope: item.outcome, clean: taint === "", taint });
    // A host fit for another item makes that item's context while it waits
    // for it (a replaced one is about to be killed).
    if (taint === "")
      hostSetImmediate(() => {
        prepared ??= newItem();
      });
  });
}

function reply(message) {
  const bytes = bufferFrom(`${stringify(message)}\n`, "utf8");
  let offset = 0;
  while (offset < bytes.length) {
    try {
      offset += writeSync(REPLY_FD, bytes, offset, bytes.length - offset);
    } catch (error) {
      if (error?.code !== "EAGAIN") throw error;
      apply(atomicsWait, Atomics, [sleepCell, 0, 0, 1]);
    }
  }
}

/** The item's own timers: tracked, refused once the item is over, cleared at its end. */
function itemTimers(item) {
  const track = (set, clear, repeats) =>
    function schedule(callback, ...args) {
      if (item.dead) return undefined;
      let entry = null;
      // A one-shot timer that fired is no longer the item's to clear.
      const run =
        repeats || typeof callback !== "function"
          ? callback
          : function fire(...given) {
              setDelete(item.timers, entry);
              return apply(callback, this, given);
            };
      const handle = apply(set, globalThis, [run, ...args]);
      entry = { handle, clear: () => apply(clear, globalThis, [handle]) };
      setAdd(item.timers, entry);
      mapSet(item.handles, handle, entry);
      return handle;
    };
  const untrack = (clear) =>
    function cancel(handle) {
      const entry = mapGet(item.handles, handle);
      if (entry) setDelete(item.timers, entry);
      apply(clear, globalThis, [handle]);
    };
  return {
    setTimeout: track(hostSetTimeout, hostClearTimeout, false),
    setInterval: track(hostSetInterval, hostClearInterval, true),
    setImmediate: track(hostSetImmediate, hostClearImmediate, false),
    clearTimeout: untrack(hostClearTimeout),
    clearInterval: untrack(hostClearInterval),
    clearImmediate: untrack(hostClearImmediate),
  };
}

/**
 * The item's `process`: the host's, seen through an object of the item's own,
 * so a property the item sets lands on its own object; `exit` and friends end
 * the item (as runner.js's guards do) instead of the host; `env` is a copy.
 */
function itemProcess(item) {
  const own = objectCreate(process);
  const intercept = (name) =>
    function exit(code) {
      const shown = code === undefined ? "" : show(code);
      item.tainted ||= `the program called ${name}`;
      if (item.outcome === null) {
        conclude(
          item,
          failure("RUNTIME_ERROR", `the program called ${name}(${shown}) before main returned`),
        );
      }
      // Whatever it meant to run after exit does not count.
      throw new item.context.Error(`${name} ends the job`);
    };
  for (const name of ["exit", "reallyExit", "abort"]) {
    defineProperty(own, name, { value: intercept(`process.${name}`), writable: true });
  }
  defineProperty(own, "env", { value: { ...process.env }, writable: true, enumerable: true });
  defineProperty(own, "mainModule", { value: undefined, writable: true });
  return own;
}

/** A fresh context with Node's globals, for one item. */
function makeContext(item) {
  const context = vm.createContext();
  const global = vm.runInContext("globalThis", context);
  item.context = global;
  const define = (name, value) =>
    defineProperty(global, name, { value, writable: true, configurable: true });
  for (const name of HOST_GLOBALS) if (name in globalThis) define(name, globalThis[name]);
  const timers = itemTimers(item);
  for (const name of ownKeys(timers)) define(name, timers[name]);
  item.timersModule = { ...hostRequire("timers"), ...timers };
  define("process", itemProcess(item));
  define("console", new Console({ stdout: stdoutStream, stderr: stderrStream }));
  define("global", global);
  return context;
}

/**
 * The item's require: the host's built-in modules (fingerprinted: a change to
 * one replaces the host), and the item's own files, loaded in its context with
 * a module cache of the item's own.
 */
function makeRequire(item, context, fromFile) {
  const localRequire = function require(specifier) {
    if (typeof specifier !== "string") {
      throw new item.context.TypeError('The "id" argument must be of type string');
    }
    const bare = stringStartsWith(specifier, "node:") ? stringSlice(specifier, 5) : specifier;
    if (arrayIncludes(builtinModules, bare)) return builtin(item, bare);
    const file = resolveFile(specifier, path.dirname(fromFile));
    if (file === null) {
      const error = new item.context.Error(`Cannot find module '${specifier}'`);
      error.code = "MODULE_NOT_FOUND";
      throw error;
    }
    return loadFile(item, context, file).exports;
  };
  localRequire.resolve = (specifier) => {
    const bare = stringStartsWith(specifier, "node:") ? stringSlice(specifier, 5) : specifier;
    if (arrayIncludes(builtinModules, bare)) return specifier;
    const file = resolveFile(specifier, path.dirname(fromFile));
    if (file === null) throw new item.context.Error(`Cannot find module '${specifier}'`);
    return file;
  };
  localRequire.cache = item.cache;
  return localRequire;
}

function builtin(item, name) {
  if (setHas(TAINTING, name)) item.tainted ||= `the program loaded ${name}`;
  if (name === "process") return item.context.process;
  if (name === "timers") return item.timersModule;
  const module = hostRequire(name);
  if (!arrayIncludes(loadedBuiltins, name)) {
    // Not fingerprinted yet: it is as it loads, before the item has it (only
    // its own segment: what the item changed elsewhere must still show).
    arrayPush(loadedBuiltins, name);
    const root = [module, 1];
    arrayPush(roots, root);
    arrayPush(fingerprint, segmentOf(root));
  }
  return module;
}

function resolveFile(specifier, fromDir) {
  if (!stringStartsWith(specifier, "./") && !stringStartsWith(specifier, "../")) {
    if (!stringStartsWith(specifier, "/")) return null;
  }
  const base = path.resolve(fromDir, specifier);
  for (const candidate of [base, `${base}.js`, `${base}.cjs`, `${base}.json`, `${base}/index.js`]) {
    try {
      if (fs.statSync(candidate).isFile()) return candidate;
    } catch {
      // Not this one.
    }
  }
  return null;
}

/**
 * The item's folder. The framer empties /tmp before every item, so each
 * item gets the same one, made fresh: its program then has the same file
 * name as the item before's, and may be compiled from that one's code
 * cache (entryCodeCache), which keeps the name it was compiled under. A
 * folder that is somehow there already is not reused: a new one is made,
 * as for a single job.
 */
function itemDir() {
  const fixed = path.join(os.tmpdir(), "labrun-job-item");
  try {
    fs.mkdirSync(fixed, { mode: 0o700 });
    return fixed;
  } catch {
    return fs.mkdtempSync(path.join(os.tmpdir(), "labrun-job-"));
  }
}

/**
 * V8's code cache of the last entry program compiled ({file, source, data}):
 * a batch's items all run one program, and each item compiles it again in
 * its own context; from the cache that is ~3 ms instead of ~12 ms for a
 * 0.45 MB bundle here. It is made by V8 from the host's own compile of the
 * same source, never by an item, and used only for that source at that
 * file name, so every item's stack names its own file.
 */
let entryCodeCache = null;

/** Compiles the item's entry program, from entryCodeCache when it holds this one. */
function compileEntry(text, file, context) {
  const cached =
    entryCodeCache !== null && entryCodeCache.file === file && entryCodeCache.source === text
      ? entryCodeCache.data
      : undefined;
  const compiled = vm.compileFunction(text, COMMONJS_PARAMETERS, {
    filename: file,
    parsingContext: context,
    ...(cached === undefined ? { produceCachedData: true } : { cachedData: cached }),
  });
  if (cached === undefined && compiled.cachedDataProduced === true) {
    entryCodeCache = { file, source: text, data: compiled.cachedData };
  }
  return compiled;
}

/** A CommonJS file of the item, compiled in its context; cached per item. */
function loadFile(item, context, file, source) {
  const cached = item.cache[file];
  if (cached) return cached;
  const module = vm.runInContext("({ exports: {}, loaded: false, children: [] })", context);
  module.id = file;
  module.filename = file;
  item.cache[file] = module;
  const text = source ?? fs.readFileSync(file, "utf8");
  if (stringEndsWith(file, ".json")) {
    module.exports = item.context.JSON.parse(text);
  } else {
    // The entry (its source given) may come from the code cache; a file it requires is compiled.
    const compiled =
      source === undefined
        ? vm.compileFunction(text, COMMONJS_PARAMETERS, { filename: file, parsingContext: context })
        : compileEntry(text, file, context);
    const require = makeRequire(item, context, file);
    module.require = require;
    apply(compiled, module.exports, [module.exports, require, module, file, path.dirname(file)]);
  }
  module.loaded = true;
  return module;
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
    // A throwing getter.
  }
  return `the program has no callable main${found}: ${where}`;
}

/**
 * An ES module runs in the host's own realm (Node's loader), as runner.js runs
 * it: the host is replaced after such an item, so nothing of it is shared.
 */
async function importProgram(item, program, cjsSyntaxError) {
  item.tainted ||= "an ES module ran in the host's realm";
  let file = program.file;
  if (!stringEndsWith(file, ".mjs")) {
    file = `${stringSlice(file, 0, -".js".length)}.mjs`;
    fs.writeFileSync(file, program.source, { mode: 0o400 });
  }
  try {
    return { kind: "esm", exports: await import(pathToFileURL(file).href) };
  } catch (thrown) {
    if (!isParseOrLinkError(thrown, program)) {
      conclude(item, thrownFailure(thrown, program));
      return null;
    }
    const reported = cjsSyntaxError ?? thrown;
    conclude(
      item,
      failure("BAD_PROGRAM_FORMAT", BAD_PROGRAM_FORMAT, parseErrorDetail(reported, program)),
    );
    return null;
  }
}

/** Loads a `.js`/`.cjs` program in the item's context; null when the item has ended. */
function requireProgram(item, context, program) {
  try {
    return { kind: "cjs", exports: loadFile(item, context, program.file, program.source).exports };
  } catch (thrown) {
    if (!isError(thrown) || stringIndexOf(show(thrown.name), "SyntaxError") === -1) {
      conclude(item, thrownFailure(thrown, program));
      return null;
    }
    if (!compiles(program, context)) {
      const message = show(thrown.message);
      if (stringEndsWith(program.filename, ".js")) {
        if (regExpTest(ESM_SYNTAX, message)) return { kind: "esm-syntax", syntaxError: null };
        if (regExpTest(MAYBE_ESM_SYNTAX, message))
          return { kind: "esm-syntax", syntaxError: thrown };
      }
      conclude(
        item,
        failure("BAD_PROGRAM_FORMAT", BAD_PROGRAM_FORMAT, parseErrorDetail(thrown, program)),
      );
      return null;
    }
    // It parsed: a SyntaxError it threw while loading (JSON.parse, eval) is its own.
    conclude(item, thrownFailure(thrown, program));
    return null;
  }
}

function compiles(program, context) {
  try {
    vm.compileFunction(program.source, COMMONJS_PARAMETERS, {
      filename: program.file,
      parsingContext: context,
    });
    return true;
  } catch {
    return false;
  }
}

function requestProblem(request) {
  if (request === null || typeof request !== "object" || ArrayIsArray(request)) {
    return "it is not a JSON object";
  }
  if (typeof request.source !== "string") return "source is not a string";
  if (typeof request.filename !== "string") return "filename is not a string";
  if (!regExpTest(FILENAME, request.filename) || !regExpTest(PROGRAM_EXTENSION, request.filename)) {
    return "filename is not a plain name ending in .js, .cjs or .mjs";
  }
  return "";
}

/** A new item with its context made (~2–4 ms here): made ahead, while the host waits. */
function newItem() {
  const item = {
    outcome: null,
    finished: false,
    dead: false,
    tainted: "",
    timers: new Set(),
    handles: new Map(),
    cache: objectCreate(null),
    context: null,
    vmContext: null,
    stuckCheck: null,
  };
  item.vmContext = makeContext(item);
  return item;
}

/** The next item's, made while the host waited for it. */
let prepared = null;

async function runItem(request) {
  const item = prepared ?? newItem();
  prepared = null;
  current = item;
  const problem = requestProblem(request);
  if (problem) {
    return conclude(
      item,
      failure("SANDBOX_ERROR", `the runner's request is malformed: ${problem}`),
    );
  }
  let dir;
  try {
    dir = itemDir();
    fs.writeFileSync(path.join(dir, "package.json"), '{"type":"commonjs"}\n', { mode: 0o400 });
  } catch (error) {
    const { message } = describeThrown(error);
    return conclude(
      item,
      failure("SANDBOX_ERROR", `the runner could not prepare the job directory: ${message}`),
    );
  }
  const file = path.join(dir, request.filename);
  fs.writeFileSync(file, request.source, { mode: 0o400 });
  const program = {
    dir,
    dirUrl: pathToFileURL(dir).href,
    file,
    filename: request.filename,
    source: request.source,
  };
  // A promise that nothing can settle any more: no timer, no I/O of the item's
  // left (the host's own work is its baseline), as runner.js's beforeExit.
  item.stuckCheck = hostSetInterval(() => {
    if (item.outcome !== null || item.timers.size > 0) return;
    if (resourceCounts() !== idle) return;
    conclude(
      item,
      failure(
        "RUNTIME_ERROR",
        item.phase === "running"
          ? "main returned a promise that never settles (nothing was left to run)"
          : "the program's top-level await never finished (nothing was left to run)",
      ),
    );
  }, STUCK_CHECK_MS);
  item.phase = "loading";
  // What is pending while nothing of the item is: the host's own work and this check.
  const idle = resourceCounts();

  const context = item.vmContext;
  let loaded = stringEndsWith(program.filename, ".mjs")
    ? await importProgram(item, program, null)
    : requireProgram(item, context, program);
  if (loaded?.kind === "esm-syntax")
    loaded = await importProgram(item, program, loaded.syntaxError);
  if (!loaded || item.outcome !== null) return;

  let found;
  try {
    found = findMain(loaded);
  } catch (thrown) {
    return conclude(item, thrownFailure(thrown, program));
  }
  if (!found) {
    return conclude(
      item,
      failure("BAD_PROGRAM_FORMAT", BAD_PROGRAM_FORMAT, missingMainDetail(loaded)),
    );
  }
  item.phase = "running";
  let result;
  try {
    result = apply(found.main, found.self, [request.input ?? null]);
  } catch (thrown) {
    return conclude(item, thrownFailure(thrown, program));
  }
  whenSettled(
    result,
    (value) => conclude(item, resultEnvelope(value)),
    (reason) => conclude(item, thrownFailure(reason, program)),
  );
}

// --- the host's loop ------------------------------------------------------------

// An uncaught error or rejection belongs to the item running now; one that
// comes between items (nothing of an item should be left to raise it) marks
// the host unfit, which the framer learns with the next reply.
// Nothing of an item should be left to raise one: the host is not fit for
// another item, and ends (the framer starts a new one).
function strayBetweenItems() {
  apply(reallyExit, process, [70]);
}
processOn(process, "uncaughtException", (error) => {
  const item = current;
  if (item && item.outcome === null) conclude(item, thrownFailure(error));
  else if (item && isOutputOverflow(error)) item.outcome = thrownFailure(error);
  else strayBetweenItems();
});
processOn(process, "unhandledRejection", (reason) => {
  const item = current;
  if (item && item.outcome === null) conclude(item, thrownFailure(reason));
  else strayBetweenItems();
});

function serve() {
  for (const name of PRELOADED) {
    hostRequire(name);
    arrayPush(loadedBuiltins, name);
  }
  // Node defines some globals lazily: each is made now, so that an item's
  // first use of it does not read as a change.
  for (const name of HOST_GLOBALS) void globalThis[name];
  // The thread pool starts with the first asynchronous file operation: started
  // now, so that its threads are part of the baseline.
  fs.stat("/", () => {
    process.stdin.on(
      "data",
      lineSplitter((line) => {
        let request = null;
        try {
          request = parseJson(line);
        } catch {
          // Answered as malformed below.
        }
        void runItem(request);
      }),
    );
    process.stdin.setEncoding("utf8");
    // Once the stat's own request is done: the host at rest.
    hostSetImmediate(() => {
      baseline = takeBaseline();
      prepared = newItem();
      // The host is up, its baseline taken: the framer may send the first item.
      reply({ ready: true });
    });
  });
}

serve();
