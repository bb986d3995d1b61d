"use strict";
// Source maps read only when a stack is formatted. A bundle from `labrun
// submit` carries a source map (its own file, or inline), so that a stack
// names the user's files and lines (`at fail (src/lib/fail.ts:2:9)`) instead
// of the bundle's. Node's own switch (process.setSourceMapsEnabled) reads,
// decodes and parses every map while the module loads, before any of it runs:
// a program that succeeds paid for a map it never used (tens of ms for a
// 2 MiB bundle). Here a file's map is parsed the first time a stack with a
// frame in that file is formatted, and never otherwise.
//
// The frames are written as Node's own source-mapped stacks write them
// (serializeJSStackFrame in lib/internal/source_map/prepare_stack_trace.js),
// so what a user sees is the same as with Node's switch. This runs on errors
// the program made, after its code ran: it uses only what it captured at load
// (the primordials pattern, as runner.js), and any surprise falls back to
// Node's own stack text.

const { SourceMap } = require("node:module");
const path = require("node:path");
const { fileURLToPath, pathToFileURL } = require("node:url");

const { apply } = Reflect;
const uncurry =
  (fn) =>
  (self, ...args) =>
    apply(fn, self, args);
const parseJson = JSON.parse;
const bufferFrom = Buffer.from;
const bufferToString = uncurry(Buffer.prototype.toString);
const bufferLastIndexOf = uncurry(Buffer.prototype.lastIndexOf);
const bufferIndexOf = uncurry(Buffer.prototype.indexOf);
const URLCtor = URL;
const urlHref = uncurry(Object.getOwnPropertyDescriptor(URL.prototype, "href").get);
const stringSlice = uncurry(String.prototype.slice);
const stringStartsWith = uncurry(String.prototype.startsWith);
const stringLastIndexOf = uncurry(String.prototype.lastIndexOf);
const stringIndexOf = uncurry(String.prototype.indexOf);
const regExpExec = uncurry(RegExp.prototype.exec);
const arrayMap = uncurry(Array.prototype.map);
const arrayJoin = uncurry(Array.prototype.join);
const mapGet = uncurry(Map.prototype.get);
const mapSet = uncurry(Map.prototype.set);
const mapHas = uncurry(Map.prototype.has);
const findEntry = uncurry(SourceMap.prototype.findEntry);
const pathResolve = path.resolve;
const pathDirname = path.dirname;
const StringCtor = String;
// Node's default Error.prepareStackTrace (20.x and later define one): the
// text of every stack this module does not map, and of each header.
const nodePrepareStackTrace =
  typeof Error.prepareStackTrace === "function" ? Error.prepareStackTrace : null;

const MAGIC_COMMENTS = ["\n//# sourceMappingURL=", "\n//@ sourceMappingURL="];
const DATA_URL = /^data:application\/json(?:;charset=utf-?8)?;base64,/i;
const AT = "\n    at ";

/**
 * Where in `content` (a string, or bytes) the URL of its last
 * `//# sourceMappingURL=` comment starts, or -1 when it has none (as Node,
 * only the last one counts).
 */
function sourceMappingUrlAt(content) {
  const lastIndexOf = typeof content === "string" ? stringLastIndexOf : bufferLastIndexOf;
  let at = -1;
  for (const comment of MAGIC_COMMENTS) {
    const found = lastIndexOf(content, comment);
    if (found !== -1 && found + comment.length > at) at = found + comment.length;
  }
  return at;
}

/** The URL that starts at `at` in `content`: the text to the end of its line, up to any space. */
function sourceMappingUrl(content, at) {
  const indexOf = typeof content === "string" ? stringIndexOf : bufferIndexOf;
  const end = indexOf(content, "\n", at);
  const line =
    typeof content === "string"
      ? stringSlice(content, at, end === -1 ? undefined : end)
      : bufferToString(content, "utf8", at, end === -1 ? content.length : end);
  return regExpExec(/^\S+/, line)?.[0] ?? "";
}

/** A file's text: its content as sent (a string), or decoded from its bytes. */
const textOf = (content) =>
  typeof content === "string" ? content : bufferToString(content, "utf8");

/**
 * Installs the lazy mapping for the program in `dir`, whose files are
 * `files` ({path relative to dir, content}: the request's own text or
 * bytes, so a map is read from what was sent, never from the disk the
 * program can change).
 * Returns "none" when no file names a source map (most programs: nothing is
 * installed), "lazy" once installed, and "unsupported" when this node has no
 * default prepareStackTrace to build on.
 */
function installLazySourceMaps(dir, files) {
  /** Absolute path → {text, url, map}: the files with a sourceMappingURL. */
  const mapped = new Map();
  /** Absolute path → content, for a map kept as a file of its own. */
  const contents = new Map();
  for (const file of files) {
    const absolute = pathResolve(dir, file.path);
    mapSet(contents, absolute, file.content);
    if (!regExpExec(/\.(c|m)?js$/, file.path)) continue;
    const at = sourceMappingUrlAt(file.content);
    if (at !== -1) mapSet(mapped, absolute, { content: file.content, at, map: undefined });
  }
  if (mapped.size === 0) return "none";
  if (nodePrepareStackTrace === null) return "unsupported";

  /** The parsed map of `absolute`, or null; parsed once, on first use. */
  const mapOf = (absolute) => {
    const entry = mapGet(mapped, absolute);
    if (entry.map !== undefined) return entry.map;
    entry.map = null;
    try {
      const url = sourceMappingUrl(entry.content, entry.at);
      let payload;
      // Sources are resolved against the map's own URL (the bundle's, inline), as Node does.
      let base;
      if (regExpExec(DATA_URL, url)) {
        const encoded = stringSlice(url, stringIndexOf(url, ",") + 1);
        payload = parseJson(bufferToString(bufferFrom(encoded, "base64"), "utf8"));
        base = absolute;
      } else {
        const mapPath = pathResolve(pathDirname(absolute), decodeURIComponent(url));
        if (!mapHas(contents, mapPath)) return null;
        payload = parseJson(textOf(mapGet(contents, mapPath)));
        base = mapPath;
      }
      const baseUrl = urlHref(pathToFileURL(base));
      const root = typeof payload.sourceRoot === "string" ? payload.sourceRoot : "";
      payload.sources = arrayMap(payload.sources, (source) =>
        urlHref(new URLCtor(`${root}${source}`, baseUrl)),
      );
      entry.map = new SourceMap(payload);
    } catch {
      // An unreadable map: its frames stay the bundle's.
    }
    return entry.map;
  };

  const fileOf = (callSite) => {
    let name = callSite.getFileName();
    if (name === undefined || name === null) name = callSite.getEvalOrigin();
    if (typeof name !== "string") return undefined;
    if (stringStartsWith(name, "file://")) {
      try {
        name = fileURLToPath(name);
      } catch {
        return undefined;
      }
    }
    return mapHas(mapped, name) ? name : undefined;
  };

  function labrunPrepareStackTrace(error, trace) {
    try {
      let any = false;
      for (const callSite of trace) if (fileOf(callSite) !== undefined) any = true;
      if (!any) return apply(nodePrepareStackTrace, this, [error, trace]);
      const header = apply(nodePrepareStackTrace, this, [error, []]);
      const frames = arrayMap(trace, (callSite, i) => {
        try {
          const file = fileOf(callSite);
          const map = file === undefined ? null : mapOf(file);
          if (map) return `${AT}${serializeFrame(map, callSite, trace[i + 1])}`;
        } catch {
          // As Node does: a frame that cannot be mapped is shown as it is.
        }
        return `${AT}${StringCtor(callSite)}`;
      });
      return `${header}${arrayJoin(frames, "")}`;
    } catch {
      return apply(nodePrepareStackTrace, this, [error, trace]);
    }
  }
  Error.prepareStackTrace = labrunPrepareStackTrace;
  return "lazy";
}

/** One call site in the original sources: Node's serializeJSStackFrame. */
function serializeFrame(map, callSite, callerCallSite) {
  const { originalLine, originalColumn, originalSource } = findEntry(
    map,
    callSite.getLineNumber() - 1,
    callSite.getColumnNumber() - 1,
  );
  if (originalSource === undefined || originalLine === undefined || originalColumn === undefined) {
    return StringCtor(callSite);
  }
  const name = originalSymbolName(map, callSite, callerCallSite);
  const source = stringStartsWith(originalSource, "file://")
    ? fileURLToPath(originalSource)
    : originalSource;
  const fnName = callSite.getFunctionName() ?? callSite.getMethodName();
  let prefix = "";
  if (callSite.isAsync()) prefix = "async ";
  else if (callSite.isConstructor()) prefix = "new ";
  const typeName = callSite.getTypeName();
  const namePrefix = typeName !== null && typeName !== "global" ? `${typeName}.` : "";
  const originalName = `${namePrefix}${fnName || "<anonymous>"}`;
  const mappedName = name && name !== originalName ? `${name}` : `${originalName}`;
  const hasName = !!(name || originalName);
  return (
    `${prefix}${mappedName}${hasName ? " (" : ""}` +
    `${source}:${originalLine + 1}:${originalColumn + 1}${hasName ? ")" : ""}`
  );
}

/** The name a transpiler removed, from the map's names (Node's getOriginalSymbolName). */
function originalSymbolName(map, callSite, callerCallSite) {
  const enclosing = findEntry(
    map,
    callSite.getEnclosingLineNumber() - 1,
    callSite.getEnclosingColumnNumber() - 1,
  );
  if (enclosing.name) return enclosing.name;
  if (callerCallSite && callSite.getFileName() === callerCallSite.getFileName()) {
    return findEntry(map, callerCallSite.getLineNumber() - 1, callerCallSite.getColumnNumber() - 1)
      .name;
  }
  return undefined;
}

module.exports = { installLazySourceMaps };
