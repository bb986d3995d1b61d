// Lays out the build context of labrun-app:local in CONTEXT_DIR (run by
// scripts/build-app-image.sh, which tars it and pipes it to `docker build -`):
//
//   CONTEXT_DIR/Dockerfile          compose/Dockerfile
//   CONTEXT_DIR/data/               empty; becomes /data, owned by 65534
//   CONTEXT_DIR/rootfs/usr/local/bin/node        this node binary
//   CONTEXT_DIR/rootfs/<lib path>                 each shared library `ldd` lists for
//                                                 node and for every native addon (.node)
//   CONTEXT_DIR/rootfs/usr/bin/ldd               compose/ldd.mjs (the agents' runner build needs ldd)
//   CONTEXT_DIR/rootfs/app/{package.json,bin,dist,runner-image,node_modules}
//   CONTEXT_DIR/rootfs/app/{protocol,coordinator,agent,client}/  their non-TypeScript files (assets)
//   CONTEXT_DIR/rootfs/app/compose/agent-entry.mjs
//   CONTEXT_DIR/rootfs/tmp (1777), rootfs/root (0700)
//
// node_modules holds the production dependencies only (`npm ls --omit=dev`),
// copied from this checkout's node_modules — nothing is downloaded, and
// better-sqlite3's addon is the one already built for this node.
//
// Usage: node compose/assemble-app-image.mjs CONTEXT_DIR   (prints a one-line summary)
import { execFileSync } from "node:child_process";
import {
  chmodSync,
  copyFileSync,
  cpSync,
  existsSync,
  mkdirSync,
  readdirSync,
  realpathSync,
  statSync,
} from "node:fs";
import { dirname, join, relative, sep } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const root = dirname(dirname(fileURLToPath(import.meta.url)));
const context = process.argv[2];
if (!context) {
  process.stderr.write("usage: node compose/assemble-app-image.mjs CONTEXT_DIR\n");
  process.exit(2);
}
// The same ldd parsing the agent uses for the runner image.
const { parseLdd } = await import(
  pathToFileURL(join(root, "dist", "agent", "sandbox", "image.js")).href
);

const rootfs = join(context, "rootfs");
const app = join(rootfs, "app");

/** Copies one file (symlinks resolved) to an absolute path inside the image. */
function place(from, to, mode) {
  const target = join(rootfs, to);
  mkdirSync(dirname(target), { recursive: true });
  copyFileSync(realpathSync(from), target);
  chmodSync(target, mode);
}

/** Copies a tree of this checkout into /app, skipping what `skip` says. */
function copyTree(from, skip = () => false) {
  const source = join(root, from);
  cpSync(source, join(app, from), {
    recursive: true,
    verbatimSymlinks: true,
    filter: (path) => !skip(relative(source, path)),
  });
}

function ldd(binary) {
  try {
    return parseLdd(execFileSync("ldd", [binary], { encoding: "utf8", stdio: "pipe" }));
  } catch (error) {
    const output = `${error.stdout ?? ""}${error.stderr ?? ""}`;
    if (/not a dynamic executable|statically linked/.test(output)) return [];
    throw new Error(`ldd ${binary} failed: ${error.message}`);
  }
}

function nativeAddons(dir) {
  const found = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) found.push(...nativeAddons(path));
    else if (entry.isFile() && entry.name.endsWith(".node")) found.push(path);
  }
  return found;
}

// --- the app ------------------------------------------------------------
mkdirSync(app, { recursive: true });
copyFileSync(join(root, "package.json"), join(app, "package.json"));
copyTree("bin");
copyTree("runner-image");
// The roles' code only: no tests, bench or source maps.
for (const part of ["protocol", "coordinator", "agent", "client"]) {
  copyTree(join("dist", part), (path) => path.endsWith(".map") || path.endsWith(".test.js"));
  // Files tsc does not emit (e.g. coordinator/dashboard/public/), which the
  // code finds at their source path under the package root.
  copyTree(part, (path) => path.endsWith(".ts"));
}

// Production dependencies: each package directory `npm ls` lists, without its
// nested node_modules (nested packages are listed on their own).
let listing;
try {
  listing = execFileSync("npm", ["ls", "--omit=dev", "--all", "--parseable"], {
    cwd: root,
    encoding: "utf8",
    stdio: ["ignore", "pipe", "pipe"],
    maxBuffer: 16 * 1024 * 1024,
  });
} catch (error) {
  throw new Error(
    `npm ls --omit=dev failed (run npm ci first): ${String(error.stderr ?? error.message).trim()}`,
  );
}
const packages = listing
  .split("\n")
  .map((line) => relative(root, line.trim()))
  .filter((path) => path.startsWith(`node_modules${sep}`));
// better-sqlite3's sources and build intermediates (~30 MB) are not needed at run time.
const BETTER_SQLITE3_DROP = [
  "deps",
  "src",
  join("build", "Release", "obj"),
  join("build", "Release", "obj.target"),
  join("build", "Release", ".deps"),
  join("build", "Release", "sqlite3.a"),
  join("build", "Release", "test_extension.node"),
];
for (const pkg of packages) {
  const drop = pkg.endsWith(`${sep}better-sqlite3`) ? BETTER_SQLITE3_DROP : [];
  copyTree(pkg, (path) => {
    const top = path.split(sep)[0];
    return top === "node_modules" || drop.some((d) => path === d || path.startsWith(`${d}${sep}`));
  });
}
if (
  !existsSync(
    join(app, "node_modules", "better-sqlite3", "build", "Release", "better_sqlite3.node"),
  )
) {
  throw new Error("better-sqlite3 is not built in node_modules (run npm ci)");
}

// --- node, its libraries, ldd -------------------------------------------
const node = realpathSync(process.execPath);
place(node, "/usr/local/bin/node", 0o755);
const addons = nativeAddons(join(app, "node_modules"));
const libraries = new Set(ldd(node));
for (const addon of addons) for (const library of ldd(addon)) libraries.add(library);
for (const library of libraries) place(library, library, 0o755);
place(join(root, "compose", "ldd.mjs"), "/usr/bin/ldd", 0o755);
place(join(root, "compose", "agent-entry.mjs"), "/app/compose/agent-entry.mjs", 0o755);

// --- directories ----------------------------------------------------------
mkdirSync(join(rootfs, "tmp"));
chmodSync(join(rootfs, "tmp"), 0o1777);
mkdirSync(join(rootfs, "root"), { mode: 0o700 });
mkdirSync(join(context, "data"), { mode: 0o700 });
copyFileSync(join(root, "compose", "Dockerfile"), join(context, "Dockerfile"));

const megabytes = (path) => {
  let bytes = 0;
  const walk = (dir) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const full = join(dir, entry.name);
      if (entry.isDirectory()) walk(full);
      else if (entry.isFile()) bytes += statSync(full).size;
    }
  };
  walk(path);
  return Math.round(bytes / 1048576);
};
process.stdout.write(
  `node ${process.version}, ${libraries.size} shared libraries, ${addons.length} native addon(s), ` +
    `${packages.length} packages, ${megabytes(rootfs)} MB\n`,
);
