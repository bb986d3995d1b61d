#!/usr/bin/env node
// Part of `npm run build`, after tsc: bundles the `labrun` CLI's everyday
// path (cli.ts, the job and node commands, the HTTP client, the protocol and
// zod) into dist/client/cli.bundle.js, which bin/labrun.js runs, and the
// chunks it loads (dist/client/cli-chunks/). A few files save Node the
// resolution and loading of ~100 ES modules on every command (~80 ms of a
// `labrun submit`).
//
// The commands that run services or touch Docker (serve, install, image,
// doctor) stay outside the bundle: they are imported, as before, from the
// tsc output beside it (dist/client/commands/), with their dependencies from
// node_modules; they find the runner image and dashboard files relative to
// their own location, which a bundle would move.
import { rmSync } from "node:fs";
import { build } from "esbuild";

const root = new URL("..", import.meta.url);
// Chunks are named by content hash: drop the last build's.
rmSync(new URL("dist/client/cli-chunks", root), { recursive: true, force: true });
const SERVICE_COMMANDS = /^\.\/commands\/(serve|install|image|doctor)\.js$/;
// zod's `z` namespace re-exports every locale (~0.37 MB of the bundle); the
// CLI's messages are zod's English ones, which zod registers from
// locales/en.js directly, so the namespace gets English alone.
const ZOD_LOCALES = /^\.\.\/locales\/index\.js$/;
const ENGLISH_ONLY = 'export { default as en } from "zod/v4/locales/en.js";';

await build({
  absWorkingDir: root.pathname,
  entryPoints: { "cli.bundle": "client/cli.ts" },
  outdir: "dist/client",
  // The commands' code (and zod) goes into chunks loaded by the command that
  // needs it: `labrun --version` or `--help` reads a few KB, not ~0.9 MB.
  splitting: true,
  chunkNames: "cli-chunks/[name]-[hash]",
  bundle: true,
  platform: "node",
  format: "esm",
  target: "node20",
  sourcemap: "linked",
  logLevel: "warning",
  // esbuild bundles programs (client/bundle.ts) and is imported only when a
  // program needs it: it stays a package of its own (its Go binary cannot be
  // bundled), and a command that bundles nothing never loads it.
  external: ["esbuild"],
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
    {
      name: "zod-english-only",
      setup(esbuild) {
        esbuild.onResolve({ filter: ZOD_LOCALES }, (args) =>
          args.importer.includes("/node_modules/zod/")
            ? { path: "zod-locales", namespace: "zod-english-only" }
            : undefined,
        );
        esbuild.onLoad({ filter: /.*/, namespace: "zod-english-only" }, () => ({
          contents: ENGLISH_ONLY,
          resolveDir: root.pathname,
          loader: "js",
        }));
      },
    },
  ],
});
