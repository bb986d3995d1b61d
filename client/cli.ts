/**
 * The `labrun` command (entry: wiring only). Exit codes: 0 success, 1 the job
 * failed, 2 usage error, 3 server or Docker unreachable, or unauthorised.
 */
import { readFileSync } from "node:fs";
import { DockerUnreachableError } from "../agent/docker.js";
import { LabrunApiError, ServerUnreachableError } from "./api.js";
import { image } from "./commands/image.js";
import { cancel, jobs, logs, status, submit, wait } from "./commands/jobs.js";
import { nodes } from "./commands/nodes.js";
import { agent, coordinator, up } from "./commands/serve.js";
import { EXIT, UsageError } from "./errors.js";

const COMMANDS: Record<string, (argv: string[]) => Promise<number>> = {
  submit,
  status,
  wait,
  cancel,
  logs,
  jobs,
  nodes,
  up,
  coordinator,
  agent,
  image,
};

const USAGE = `labrun — run JavaScript programs in throwaway containers on a lab's machines

Usage:
  labrun up [--port 7878] [--host 127.0.0.1] [--data-dir DIR] [--slots N]
  labrun submit FILE [--input JSON | --input-file F] [--timeout 10s] [--memory 256m]
                     [--cpus N] [--detach] [--json]
  labrun status|wait|cancel|logs ID [--json]
  labrun jobs [--state S] [--limit N] [--json]
  labrun nodes [--json]
  labrun coordinator [--port 7878] [--host 127.0.0.1] [--data-dir DIR]
  labrun agent --server URL --token JOIN_TOKEN [--slots N] [--name NAME] [--runtime R]
  labrun image build

Every command that talks to a coordinator takes --server URL and --token T
(else LABRUN_SERVER / LABRUN_TOKEN / LABRUN_ADMIN_TOKEN, else the config file
that \`labrun up\` writes). Exit codes: 0 ok, 1 job failed, 2 usage error,
3 server or Docker unreachable, or unauthorised.
`;

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8"));
  return String(pkg.version);
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
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

/** Turns any error into one human line and the right exit code; never a stack trace. */
function exitCodeFor(error: unknown): number {
  const say = (message: string) => process.stderr.write(`labrun: ${message}\n`);
  if (error instanceof UsageError) {
    say(error.message);
    return EXIT.usage;
  }
  if (error instanceof ServerUnreachableError || error instanceof DockerUnreachableError) {
    say(error.message);
    return EXIT.unreachable;
  }
  if (error instanceof LabrunApiError) {
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
