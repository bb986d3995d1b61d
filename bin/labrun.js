#!/usr/bin/env node
// The installed `labrun` command: runs the compiled CLI (built by `npm run build`,
// which `npm install`/`npm ci` run through the `prepare` script).
import("../dist/client/cli.js").catch((error) => {
  process.stderr.write(
    `labrun: the CLI is not built (${error.code ?? error.message}); run \`npm run build\` in the labrun folder\n`,
  );
  process.exit(2);
});
