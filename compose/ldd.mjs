#!/usr/local/bin/node
// /usr/bin/ldd inside the app image. Debian's ldd is a bash script and the
// image has no shell, but the agents need `ldd` to build the runner image
// (agent/sandbox/image.ts lists node's shared libraries with it). This does
// what ldd does: runs the dynamic loader with LD_TRACE_LOADED_OBJECTS=1, which
// prints the libraries in ldd's own format. Usage: ldd FILE...
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";

const say = (message) => process.stderr.write(`ldd: ${message}\n`);

/** The dynamic loader copied into the image (the one ldd listed on the build host). */
function findLoader() {
  for (const dir of ["/lib64", "/lib", "/usr/lib64", "/usr/lib"]) {
    if (!existsSync(dir)) continue;
    const name = readdirSync(dir).find((entry) => /^ld-linux.*\.so\.\d+$/.test(entry));
    if (name) return join(dir, name);
  }
  return undefined;
}

const files = process.argv.slice(2).filter((arg) => !arg.startsWith("-"));
if (files.length === 0) {
  say("missing file arguments");
  process.exit(1);
}
const loader = findLoader();
if (!loader) {
  say("no dynamic loader (ld-linux*.so) in this image");
  process.exit(1);
}
let status = 0;
for (const file of files) {
  if (files.length > 1) process.stdout.write(`${file}:\n`);
  const run = spawnSync(loader, [file], {
    env: { LD_TRACE_LOADED_OBJECTS: "1" },
    stdio: ["ignore", "inherit", "pipe"],
  });
  if (run.error || run.status !== 0) {
    // Like ldd: a file the loader cannot handle is "not a dynamic executable".
    process.stdout.write("\tnot a dynamic executable\n");
    status = 1;
  }
}
process.exit(status);
