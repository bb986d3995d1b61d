#!/usr/bin/env node
// Part of `npm run build`, after tsc: bundles the `labrun` CLI's everyday
// path for bin/labrun.js, in two parts:
//
// - dist/client/cli.bundle.cjs (a few KB): cli.ts, the usage text and the
//   dispatch. `labrun --version` and `--help` load nothing else.
// - dist/client/cli-commands/{jobs,batches,nodes,users}.cjs: each command
//   group with everything it imports (the HTTP client, the protocol, zod) in
//   one CommonJS file, which cli.bundle.cjs runs through V8's code cache
//   (client/code-cache.ts): a command neither resolves ~100 ES modules nor
//   compiles ~0.5 MB of code again on every run (Node 20 has no compile cache
//   for ES modules; a vm.Script takes cached data on every Node).
//
// The commands that run services or touch Docker (serve, install, image,
// doctor) stay outside both: they are imported, as before, from the tsc
// output beside the bundle (dist/client/commands/), with their dependencies
// from node_modules; they find the runner image and dashboard files relative
// to their own location, which a bundle would move.
import { rmSync } from "node:fs";
import { build } from "esbuild";

const root = new URL("..", import.meta.url);
const CACHED_GROUPS = ["jobs", "batches", "nodes", "users"];
const SERVICE_COMMANDS = /^\.\/commands\/(serve|install|image|doctor)\.js$/;
const CACHED_COMMANDS = new RegExp(`^\\./commands/(${CACHED_GROUPS.join("|")})\\.js$`);
// zod's `z` namespace re-exports every locale (~0.37 MB of a bundle); the
// CLI's messages are zod's English ones, which zod registers from
// locales/en.js directly, so the namespace gets English alone.
const ZOD_LOCALES = /^\.\.\/locales\/index\.js$/;
const ENGLISH_ONLY = 'export { default as en } from "zod/v4/locales/en.js";';

const zodEnglishOnly = {
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
};

const common = {
  absWorkingDir: root.pathname,
  bundle: true,
  platform: "node",
  target: "node20",
  sourcemap: "linked",
  logLevel: "warning",
};

// What earlier builds made (an ES module bundle and its chunks).
rmSync(new URL("dist/client/cli-chunks", root), { recursive: true, force: true });
rmSync(new URL("dist/client/cli.bundle.js", root), { force: true });
rmSync(new URL("dist/client/cli.bundle.js.map", root), { force: true });
rmSync(new URL("dist/client/cli-commands", root), { recursive: true, force: true });

await build({
  ...common,
  entryPoints: Object.fromEntries(CACHED_GROUPS.map((group) => [group, `cli-group:${group}`])),
  outdir: "dist/client/cli-commands",
  outExtension: { ".js": ".cjs" },
  format: "cjs",
  // esbuild bundles programs (client/bundle.ts) and is loaded only when a
  // program needs it: it stays a package of its own (its Go binary cannot be
  // bundled). A vm.Script run from cached data cannot import(), so its
  // dynamic import becomes a require (esbuild's package is CommonJS).
  external: ["esbuild"],
  supported: { "dynamic-import": false },
  // A CommonJS bundle has no import.meta: code that finds a file or a package
  // from its own place (client/bundle.ts loads esbuild with createRequire)
  // gets the group bundle's own URL, as the dispatch bundle below does.
  define: { "import.meta.url": "__labrunCliUrl" },
  banner: {
    js: 'var __labrunCliUrl = require("node:url").pathToFileURL(__filename).href;',
  },
  plugins: [
    zodEnglishOnly,
    {
      // Each group's entry: zod set jitless first (its imports are evaluated
      // in order, so before any schema of the group is built), then the
      // group's module. Jitless, zod checks an object field by field instead
      // of first compiling a checker for it with `new Function`: code that a
      // one-command process would compile on every run (~10 ms), outside the
      // code cache. The checks and their messages are the same.
      name: "cli-group-entries",
      setup(esbuild) {
        esbuild.onResolve({ filter: /^cli-group:/ }, (args) => ({
          path: args.path.slice("cli-group:".length),
          namespace: "cli-group",
        }));
        esbuild.onResolve({ filter: /^zod-jitless$/ }, () => ({
          path: "zod-jitless",
          namespace: "cli-group",
        }));
        esbuild.onLoad({ filter: /^zod-jitless$/, namespace: "cli-group" }, () => ({
          contents: 'import { config } from "zod/v4/core"; config({ jitless: true });',
          resolveDir: root.pathname,
          loader: "js",
        }));
        esbuild.onLoad({ filter: /^[a-z]+$/, namespace: "cli-group" }, ({ path: group }) => ({
          contents: `import "zod-jitless";\nexport * from "./client/commands/${group}.ts";`,
          resolveDir: root.pathname,
          loader: "js",
        }));
      },
    },
  ],
});

/** The names a command group exports (its entry file alone, not bundled). */
async function exportsOf(group) {
  const { metafile } = await build({
    absWorkingDir: root.pathname,
    entryPoints: [`client/commands/${group}.ts`],
    outdir: "dist/client/cli-commands",
    format: "esm",
    write: false,
    metafile: true,
    logLevel: "warning",
  });
  return Object.values(metafile.outputs).flatMap((output) => output.exports);
}
const exported = Object.fromEntries(
  await Promise.all(CACHED_GROUPS.map(async (group) => [group, await exportsOf(group)])),
);

await build({
  ...common,
  entryPoints: { "cli.bundle": "client/cli.ts" },
  outdir: "dist/client",
  outExtension: { ".js": ".cjs" },
  // CommonJS, as bin/labrun.js is (bin/package.json): Node 20 reads every ES
  // module through fs/promises, whose loading alone costs a command ~10 ms.
  format: "cjs",
  define: { "import.meta.url": "__labrunCliUrl" },
  banner: {
    js: '"use strict";\nvar __labrunCliUrl = require("node:url").pathToFileURL(__filename).href;',
  },
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
      // `import("./commands/jobs.js")` in cli.ts gets a module with the same
      // exports, taken from the code-cached CommonJS bundle of the group; it
      // is evaluated (and the bundle loaded) only when cli.ts imports it.
      name: "code-cached-commands",
      setup(esbuild) {
        esbuild.onResolve({ filter: CACHED_COMMANDS }, (args) => ({
          path: CACHED_COMMANDS.exec(args.path)[1],
          namespace: "code-cached-command",
        }));
        esbuild.onLoad({ filter: /.*/, namespace: "code-cached-command" }, ({ path: group }) => ({
          contents: [
            'import { join } from "node:path";',
            'import { loadCachedBundle } from "./client/code-cache.ts";',
            // The command word picks the code cache of that command's runs.
            `const bundle = loadCachedBundle(join(__dirname, "cli-commands", "${group}.cjs"), process.argv[2]);`,
            ...exported[group].map((name) => `export const ${name} = bundle.${name};`),
          ].join("\n"),
          resolveDir: root.pathname,
          loader: "js",
        }));
      },
    },
  ],
});
