import { createRequire, Module } from "node:module";

/**
 * The two files of dockerode's tree that pull in what a local agent never
 * runs: gRPC and protobufjs for BuildKit sessions (`buildImage` with
 * `version: "2"`), and ssh2 for an `ssh://` DOCKER_HOST — about 20 MB of an
 * idle agent's RSS. Each exports one function.
 */
const RARELY_USED = [
  { file: "dockerode/lib/session.js" },
  { file: "docker-modem/lib/ssh.js", via: "dockerode" },
] as const;

/**
 * Puts a stand-in for each of those files into require's cache before
 * dockerode is loaded; the stand-in loads the real module on its first call,
 * so an ssh:// DOCKER_HOST still works. Where a file is not found (another
 * dockerode layout) the real one simply loads as before.
 *
 * @example
 * deferRarelyUsedDockerModules();
 * const { default: Dockerode } = await import("dockerode");
 */
export function deferRarelyUsedDockerModules(): void {
  const require = createRequire(import.meta.url);
  for (const entry of RARELY_USED) {
    let path: string;
    try {
      const base = "via" in entry ? createRequire(require.resolve(entry.via)) : require;
      path = base.resolve(entry.file);
    } catch {
      continue;
    }
    if (require.cache[path]) continue;
    let real: ((...args: unknown[]) => unknown) | undefined;
    const standIn = function (this: unknown, ...args: unknown[]) {
      if (!real) {
        delete require.cache[path];
        real = require(path) as (...args: unknown[]) => unknown;
      }
      return real.apply(this, args);
    };
    const stub = new Module(path);
    stub.filename = path;
    stub.loaded = true;
    stub.exports = standIn;
    require.cache[path] = stub;
  }
}
