import { Agent } from "node:http";
import { createRequire } from "node:module";
import { describe, expect, it } from "vitest";
import { deferRarelyUsedDockerModules } from "./deferred-modules.js";

const require = createRequire(import.meta.url);
const sshPath = createRequire(require.resolve("dockerode")).resolve("docker-modem/lib/ssh.js");

describe("deferRarelyUsedDockerModules", () => {
  it("leaves ssh2 unloaded until docker-modem's ssh transport is first called, then uses the real one", () => {
    deferRarelyUsedDockerModules();
    const standIn = require(sshPath) as (options: object) => unknown;
    expect(Object.keys(require.cache).some((file) => file.includes("/ssh2/"))).toBe(false);

    const agent = standIn({ host: "127.0.0.1", port: 1 });
    expect(agent).toBeInstanceOf(Agent);
    expect(Object.keys(require.cache).some((file) => file.includes("/ssh2/"))).toBe(true);
    (agent as Agent).destroy();
  });
});
