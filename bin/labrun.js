#!/usr/bin/env node
// The installed `labrun` command: runs the CLI bundled by `npm run build`
// (which `npm install`/`npm ci` run through the `prepare` script). CommonJS
// (bin/package.json), as the bundle is: on Node 20 an ES module entry would
// load fs/promises and the ES module loader's machinery first (~10 ms).
"use strict";
const nodeModule = require("node:module");
const { homedir } = require("node:os");
const { join } = require("node:path");

// Node 22+ can keep V8's compiled code of the modules outside the bundle
// (`up`, `coordinator`, `agent`, …) between runs; the bundle's command
// groups keep theirs on every Node (client/code-cache.ts). The cache lives
// in the user's own cache folder, not a shared /tmp one another user could write.
if (
  typeof nodeModule.enableCompileCache === "function" &&
  !process.env.NODE_DISABLE_COMPILE_CACHE
) {
  const cacheHome = process.env.XDG_CACHE_HOME || join(homedir(), ".cache");
  try {
    nodeModule.enableCompileCache(join(cacheHome, "labrun", "compile-cache"));
  } catch {
    // No cache folder to be had (read-only home): run uncached.
  }
}

try {
  require("../dist/client/cli.bundle.cjs");
} catch (error) {
  process.stderr.write(
    `labrun: the CLI is not built (${error.code ?? error.message}); run \`npm run build\` in the labrun folder\n`,
  );
  process.exit(2);
}
