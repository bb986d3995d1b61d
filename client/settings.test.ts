import { mkdirSync, mkdtempSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { UsageError } from "./errors.js";
import { configPath, resolveConnection, writeClientConfig } from "./settings.js";

function sandboxEnv(extra: Record<string, string> = {}): {
  dir: string;
  env: Record<string, string>;
} {
  const dir = mkdtempSync(join(tmpdir(), "labrun-settings-"));
  return {
    dir,
    env: {
      HOME: dir,
      XDG_CONFIG_HOME: join(dir, "cfg"),
      XDG_DATA_HOME: join(dir, "data"),
      ...extra,
    },
  };
}

describe("resolveConnection", () => {
  it("prefers flags over env over the config file", () => {
    const { env } = sandboxEnv({ LABRUN_SERVER: "http://env:1", LABRUN_TOKEN: "env-token" });
    writeClientConfig({ server: "http://file:1", token: "file-token" }, configPath(env));
    expect(resolveConnection({}, "client", env)).toEqual({
      server: "http://env:1",
      token: "env-token",
    });
    expect(resolveConnection({ server: "http://flag:1", token: "flag" }, "client", env)).toEqual({
      server: "http://flag:1",
      token: "flag",
    });
    const { LABRUN_SERVER: _server, LABRUN_TOKEN: _token, ...fileOnly } = env;
    expect(resolveConnection({}, "client", fileOnly)).toEqual({
      server: "http://file:1",
      token: "file-token",
    });
  });

  it("falls back to the local data dir's tokens.json and the default server", () => {
    const { dir, env } = sandboxEnv();
    const dataDir = join(dir, "labrun-data");
    const withData = { ...env, LABRUN_DATA_DIR: dataDir };
    mkdirSync(dataDir);
    writeFileSync(
      join(dataDir, "tokens.json"),
      JSON.stringify({ client: "c", admin: "a", agent: "j" }),
    );
    expect(resolveConnection({}, "admin", withData)).toEqual({
      server: "http://127.0.0.1:7878",
      token: "a",
    });
  });

  it("explains how to get a token when there is none", () => {
    const { env } = sandboxEnv();
    expect(() => resolveConnection({}, "client", env)).toThrow(UsageError);
    expect(() => resolveConnection({}, "client", env)).toThrow(/labrun up/);
  });

  it("writes the config file with mode 0600", () => {
    const { env } = sandboxEnv();
    writeClientConfig({ token: "secret" }, configPath(env));
    expect(statSync(configPath(env)).mode & 0o777).toBe(0o600);
  });

  it("rejects a config file that is not JSON with a usage error", () => {
    const { env } = sandboxEnv();
    writeClientConfig({}, configPath(env));
    writeFileSync(configPath(env), "{oops");
    expect(() => resolveConnection({}, "client", env)).toThrow(/not valid JSON/);
  });
});
