#!/usr/bin/env node
// The installed `labrun` command: runs the CLI bundled by `npm run build`
// (which `npm install`/`npm ci` run through the `prepare` script) into one
// file, so a command loads one module instead of a hundred.
import module from "node:module";
import { homedir } from "node:os";
import { join } from "node:path";

// Node 22+ can keep V8's compiled code of the bundle between runs; Node 20
// has no such API and simply compiles it each time. The cache lives in the
// user's own cache folder, not a shared /tmp one another user could write.
if (typeof module.enableCompileCache === "function" && !process.env.NODE_DISABLE_COMPILE_CACHE) {
  const cacheHome = process.env.XDG_CACHE_HOME || join(homedir(), ".cache");
  try {
    module.enableCompileCache(join(cacheHome, "labrun", "compile-cache"));
  } catch {
    // No cache folder to be had (read-only home): run uncached.
  }
}

import("../dist/client/cli.bundle.js").catch((error) => {
  process.stderr.write(
    `labrun: the CLI is not built (${error.code ?? error.message}); run \`npm run build\` in the labrun folder\n`,
  );
  process.exit(2);
});
