#!/usr/bin/env node
// Part of `npm run build`, after tsc: bundles the `labrun` CLI's everyday
// path (cli.ts, the job and node commands, the HTTP client, the protocol and
// zod) into one file, dist/client/cli.bundle.js, which bin/labrun.js runs.
// One file saves Node the resolution and loading of ~100 ES modules on every
// command (~80 ms of a `labrun submit`).
//
// The commands that run services or touch Docker (serve, install, image,
// doctor) stay outside the bundle: they are imported, as before, from the
// tsc output beside it (dist/client/commands/), with their dependencies from
// node_modules; they find the runner image and dashboard files relative to
// their own location, which a bundle would move.
import { build } from "esbuild";

const root = new URL("..", import.meta.url);
const SERVICE_COMMANDS = /^\.\/commands\/(serve|install|image|doctor)\.js$/;

await build({
  absWorkingDir: root.pathname,
  entryPoints: ["client/cli.ts"],
  outfile: "dist/client/cli.bundle.js",
  bundle: true,
  platform: "node",
  format: "esm",
  target: "node20",
  sourcemap: "linked",
  logLevel: "warning",
  plugins: [
    {
      name: "service-commands-from-dist",
      setup(esbuild) {
        esbuild.onResolve({ filter: SERVICE_COMMANDS }, (args) => ({
          path: args.path,
          external: true,
        }));
      },
    },
  ],
});
