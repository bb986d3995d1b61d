#!/usr/local/bin/node
// The compose agents' entry point (the app image has no shell, so the join
// token cannot be spliced into the command line with `sh -c`):
//   1. waits for the coordinator's tokens.json on the shared data volume and
//      for its /readyz, with bounded retries;
//   2. hands the join token to `labrun agent` through LABRUN_AGENT_TOKEN (set
//      in this process only, so it is neither on the command line nor in the
//      container's configured environment), and runs the CLI in this process.
// Every argument is passed on to `labrun agent` (e.g. --name, --slots).
//
// Env: LABRUN_SERVER (default http://127.0.0.1:${LABRUN_PORT:-7878}),
//      LABRUN_TOKENS_FILE (default /data/tokens.json),
//      LABRUN_WAIT_SECONDS (default 120; then exit 1 and let `restart:` retry).
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath, pathToFileURL } from "node:url";

const env = process.env;
const server = (env.LABRUN_SERVER || `http://127.0.0.1:${env.LABRUN_PORT || 7878}`).replace(
  /\/+$/,
  "",
);
const tokensFile = env.LABRUN_TOKENS_FILE || "/data/tokens.json";
const waitSeconds = Number(env.LABRUN_WAIT_SECONDS || 120);
const say = (message) => process.stderr.write(`agent-entry: ${message}\n`);

function readJoinToken() {
  try {
    const token = JSON.parse(readFileSync(tokensFile, "utf8")).agent;
    return typeof token === "string" && token.length > 0 ? token : undefined;
  } catch {
    return undefined; // not written yet (or half written): try again
  }
}

async function coordinatorReady() {
  try {
    const response = await fetch(`${server}/readyz`, { signal: AbortSignal.timeout(2_000) });
    return response.ok;
  } catch {
    return false;
  }
}

const deadline = Date.now() + waitSeconds * 1_000;
let token = readJoinToken();
let ready = token !== undefined && (await coordinatorReady());
let announced = false;
while (!ready) {
  if (Date.now() > deadline) {
    say(
      `gave up after ${waitSeconds} s: ${token ? `${server}/readyz does not answer` : `no agent token in ${tokensFile}`}`,
    );
    process.exit(1);
  }
  if (!announced) {
    say(`waiting for the coordinator (${tokensFile}, ${server}/readyz)`);
    announced = true;
  }
  await sleep(1_000);
  token ??= readJoinToken();
  ready = token !== undefined && (await coordinatorReady());
}

const argv = process.argv.slice(2);
if (!argv.includes("--server")) argv.unshift("--server", server);
process.env.LABRUN_AGENT_TOKEN = token;
// The CLI reads process.argv when its module is evaluated.
const cli = join(dirname(fileURLToPath(import.meta.url)), "..", "dist", "client", "cli.js");
process.argv = [process.argv[0], cli, "agent", ...argv];
await import(pathToFileURL(cli).href);
