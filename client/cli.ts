/**
 * The `labrun` command (entry: wiring only). Exit codes: 0 success, 1 the job
 * failed, 2 usage error, 3 server or Docker unreachable, or unauthorised.
 */
import { readFileSync } from "node:fs";
import type { LabrunApiError } from "./api.js";
import { EXIT, UsageError } from "./errors.js";

type Command = (argv: string[]) => Promise<number>;

// Loaded on demand: `submit` must not pay for dockerode, SQLite and Hono,
// which only `up`, `coordinator`, `agent` and `image` need (~0.4 s of start-up).
// The build bundles this file alone, and each group of job, batch, node and
// user commands into a file of its own that runs through V8's code cache
// (scripts/bundle-cli.mjs, client/code-cache.ts); serve, install, image and
// doctor stay outside and load from dist/ next to it, so errors are
// recognised by name.
const jobCommand = (name: "submit" | "status" | "wait" | "cancel" | "logs" | "jobs") =>
  (async (argv) => (await import("./commands/jobs.js"))[name](argv)) satisfies Command;
const serveCommand = (name: "up" | "coordinator" | "agent") =>
  (async (argv) => (await import("./commands/serve.js"))[name](argv)) satisfies Command;

const COMMANDS: Record<string, Command> = {
  submit: jobCommand("submit"),
  status: jobCommand("status"),
  wait: jobCommand("wait"),
  cancel: jobCommand("cancel"),
  logs: jobCommand("logs"),
  jobs: jobCommand("jobs"),
  map: async (argv) => (await import("./commands/batches.js")).map(argv),
  batches: async (argv) => (await import("./commands/batches.js")).batches(argv),
  batch: async (argv) => (await import("./commands/batches.js")).batch(argv),
  nodes: async (argv) => (await import("./commands/nodes.js")).nodes(argv),
  users: async (argv) => (await import("./commands/users.js")).users(argv),
  audit: async (argv) => (await import("./commands/users.js")).audit(argv),
  doctor: async (argv) => (await import("./commands/doctor.js")).doctor(argv),
  up: serveCommand("up"),
  coordinator: serveCommand("coordinator"),
  agent: async (argv) => {
    if (argv[0] === "install") return (await import("./commands/install.js")).install(argv);
    if (argv[0] === "uninstall") return (await import("./commands/install.js")).uninstall(argv);
    return serveCommand("agent")(argv);
  },
  image: async (argv) => (await import("./commands/image.js")).image(argv),
};

const USAGE = `labrun — run JavaScript and Python programs in throwaway containers on a lab's machines

Usage:
  labrun up [--port 7878] [--host 127.0.0.1] [--data-dir DIR] [--slots N] [--warm N] [--grace 60s]
  labrun submit FILE [--input JSON | --input-file F] [--timeout 10s] [--memory 256m]
                     [--cpus N] [--pids 64] [--tmpfs 64m] [--log-bytes 64k]
                     [--result-bytes 8m] [--runtime node|python (default: .py → python)]
                     [--detach] [--json]
  labrun status|wait|cancel|logs ID [--json]
  labrun jobs [--state S] [--limit N] [--user NAME | --all (admin token)] [--json]
  labrun map FILE --inputs F.jsonl|- [--parallel N] [--unordered] [--retries N] [--isolate] [--runtime R]
                  [limit flags as for submit] [--detach] [--json]
                                              one program over every input line; results in order
  labrun batches [--limit N] [--json]
  labrun batch status|wait|results|cancel|retry ID [--from K] [--unordered] [--json]
  labrun nodes [--json]                       the lab's machines (admin token)
  labrun nodes drain|resume|rm NAME [--json]  take a node out of service, back, or forget it
  labrun users add NAME [--max-running N] [--max-queued N] [--weight W] [--json]
                                              a user and their token (shown once; admin token)
  labrun users list|rm NAME|token NAME --rotate [--json]
                                              usage, share, quotas; remove; a new token
  labrun audit [--limit N] [--json]           admin actions: who, when, what
  labrun doctor [--json]                      check Docker, runner image, server, tokens, clock
  labrun coordinator [--port 7878] [--host 127.0.0.1] [--data-dir DIR] [--lease-ttl 10s]
                     [--store postgres://USER@HOST:PORT/DB] (or LABRUN_STORE; default: SQLite in the data dir)
                     [--retention 7d (finished jobs are deleted after this)] [--max-input 1m] [--max-program 8m]
                     [--default-timeout|memory|cpus|pids|tmpfs|log-bytes|result-bytes V]
                     (the lab's default limits; also on up)
                     [--fair-share-half-life 1h] [--default-max-running N] [--default-max-queued N]
                     [--sweep 500ms (how often expired leases are looked for, and waiting agents polled)]
  labrun agent --server URL --token JOIN_TOKEN [--slots N] [--name NAME] [--runtime R]
               [--warm N (containers booted ahead; 0 = off; default: slots)] [--grace 60s]
               [--max-timeout|memory|cpus|pids|tmpfs|log-bytes|result-bytes V] (largest job it takes)
               [--memory 16g] [--cpus 6] (all its jobs together)
               [--seccomp-profile FILE] (instead of the engine's default profile)
               [--python PATH] (runs python jobs; default: python3 on PATH, else node only)
  labrun agent install --server URL --token JOIN_TOKEN [--slots N] [--name NAME] [--no-enable]
                       [any of the agent flags above, written into the unit]
                                              a systemd unit + env file (0600) for this machine
  labrun agent uninstall
  labrun image build [--runtime node|python] [--python PATH] | labrun image prune
                                              build a runner image; remove old versions of them

Every command that talks to a coordinator takes --server URL and --token T
(else LABRUN_SERVER / LABRUN_TOKEN / LABRUN_ADMIN_TOKEN, else the config file
that \`labrun up\` writes). Exit codes: 0 ok, 1 job failed (for map: any item),
2 usage error, 3 server or Docker unreachable, or unauthorised.
`;

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8"));
  return String(pkg.version);
}

/**
 * Commands that run services or drive Docker (pino's log transport flushes
 * itself on `beforeExit`) end the way Node ends a process. Every other
 * command is over when its promise settles: once its last write is out and
 * nothing else is pending (the event loop is empty, `beforeExit`), it exits
 * at once, without first tearing down the V8 heap and the Node environment
 * (a few ms of freeing memory the kernel frees anyway). `exit` handlers (the
 * code cache's) still run, with the same exit code.
 */
const NODE_EXIT = new Set(["up", "coordinator", "agent", "image", "doctor"]);

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!NODE_EXIT.has(name ?? "")) process.once("beforeExit", () => process.exit());
  if (!name || name === "help" || name === "--help" || name === "-h") {
    process.stdout.write(USAGE);
    return name ? EXIT.ok : EXIT.usage;
  }
  if (name === "--version" || name === "-v") {
    process.stdout.write(`${version()}\n`);
    return EXIT.ok;
  }
  const command = COMMANDS[name];
  if (!command) throw new UsageError(`unknown command "${name}" (see labrun --help)`);
  if (rest.includes("--help") || rest.includes("-h")) {
    process.stdout.write(USAGE);
    return EXIT.ok;
  }
  return command(rest);
}

/**
 * Errors are told apart by name, not class: a command loaded from dist/ has
 * its own copy of the classes the bundle has, and the CLI need not load
 * dockerode to recognise its errors.
 */
const named = (error: unknown, name: string): error is Error =>
  error instanceof Error && error.name === name;
const isUsageError = (error: unknown) => named(error, "UsageError");
const isServerUnreachable = (error: unknown) => named(error, "ServerUnreachableError");
const isApiError = (error: unknown): error is LabrunApiError => named(error, "LabrunApiError");
const isDockerUnreachable = (error: unknown) => named(error, "DockerUnreachableError");

/** A setting `labrun agent` cannot use (a seccomp profile that is not one, an unknown runtime). */
const isAgentSettingsError = (error: unknown) => named(error, "AgentSettingsError");

/** Turns any error into one human line and the right exit code; never a stack trace. */
function exitCodeFor(error: unknown): number {
  const say = (message: string) => process.stderr.write(`labrun: ${message}\n`);
  if (isUsageError(error) || isAgentSettingsError(error)) {
    say(error.message);
    return EXIT.usage;
  }
  if (isServerUnreachable(error) || isDockerUnreachable(error)) {
    say(error.message);
    return EXIT.unreachable;
  }
  if (isApiError(error)) {
    if (error.status === 401 || error.status === 403) {
      say(`${error.message} (${error.code}) — check --token / LABRUN_TOKEN`);
      return EXIT.unreachable;
    }
    say(`${error.message} (${error.code})`);
    return error.status < 500 ? EXIT.usage : EXIT.jobFailed;
  }
  say(error instanceof Error ? error.message : String(error));
  if (process.env.LABRUN_DEBUG && error instanceof Error) process.stderr.write(`${error.stack}\n`);
  return EXIT.jobFailed;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    process.exitCode = exitCodeFor(error);
  },
);
