import { execFileSync } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import * as z from "zod";
import { AGENT_TUNING, agentTuning } from "../agent-flags.js";
import { AGENT_JOIN, parseCommand } from "../args.js";
import { EXIT } from "../errors.js";

export const UNIT_NAME = "labrun-agent.service";

/** What the unit runs: this node binary and this checkout's CLI, by absolute path. */
export interface AgentUnitOptions {
  server: string;
  token: string;
  slots?: number | undefined;
  name?: string | undefined;
  /** More `labrun agent` flags, as given (checked already): `["--max-pids", "512"]`. */
  tuning?: string[];
  node: string;
  cli: string;
  envFile: string;
}

/**
 * The systemd unit and its environment file. The join token lives only in
 * the env file (mode 0600), never in the unit, which anyone may read.
 * Restart=always brings the agent back after a crash; SIGTERM (systemctl
 * stop) drains it gracefully, so TimeoutStopSec leaves room for the agent's
 * 60 s grace.
 *
 * @example
 * const { unit, env } = agentUnit({ server, token, node: process.execPath, cli, envFile });
 */
export function agentUnit(options: AgentUnitOptions): { unit: string; env: string } {
  const args = [
    options.cli,
    "agent",
    ...(options.slots ? ["--slots", String(options.slots)] : []),
    ...(options.name ? ["--name", options.name] : []),
    ...(options.tuning ?? []),
  ];
  const unit = `# Written by \`labrun agent install\`; remove with \`labrun agent uninstall\`.
[Unit]
Description=labrun agent (runs lab jobs in throwaway Docker containers)
Documentation=https://github.com/labrun/labrun#a-cluster-of-lab-machines
After=network-online.target docker.service
Wants=network-online.target docker.service

[Service]
Type=simple
EnvironmentFile=${options.envFile}
ExecStart=${[options.node, ...args].map(quoteArg).join(" ")}
Restart=always
RestartSec=5
KillSignal=SIGTERM
TimeoutStopSec=90

[Install]
WantedBy=multi-user.target
`;
  const env = `# labrun agent settings (mode 0600: the join token is a secret)
LABRUN_SERVER=${options.server}
LABRUN_AGENT_TOKEN=${options.token}
LABRUN_LOG_LEVEL=info
`;
  return { unit, env };
}

/** systemd's quoting for ExecStart arguments: plain when safe, else double-quoted. */
function quoteArg(arg: string): string {
  return /^[A-Za-z0-9_./:=@%+-]+$/.test(arg) ? arg : `"${arg.replace(/(["\\])/g, "\\$1")}"`;
}

const InstallArgs = z.object({
  ...AGENT_JOIN,
  ...AGENT_TUNING.shape,
  slots: z.coerce.number().int().min(1).max(256).optional(),
  name: z
    .string()
    .regex(/^[A-Za-z0-9_.-]{1,64}$/, "--name: letters, digits, _ . - (1–64)")
    .optional(),
  "unit-dir": z.string().min(1).default("/etc/systemd/system"),
  "env-dir": z.string().min(1).default("/etc/labrun"),
  "no-enable": z.boolean(),
  positionals: z.tuple([z.literal("install")]),
});

const UninstallArgs = z.object({
  "unit-dir": z.string().min(1).default("/etc/systemd/system"),
  "env-dir": z.string().min(1).default("/etc/labrun"),
  positionals: z.tuple([z.literal("uninstall")]),
});

/** Whether this machine runs systemd (PID 1), so units can be enabled now. */
function systemdRunning(): boolean {
  return existsSync("/run/systemd/system");
}

function systemctl(...args: string[]): void {
  execFileSync("systemctl", args, { stdio: ["ignore", "ignore", "inherit"] });
}

/**
 * `labrun agent install --server URL --token T [--slots N] [--name NAME]`:
 * writes the unit and its env file, enables and starts it where systemd runs,
 * and says what it did.
 */
export async function install(argv: string[]): Promise<number> {
  const options = {
    server: { type: "string", default: process.env.LABRUN_SERVER },
    token: { type: "string", default: process.env.LABRUN_AGENT_TOKEN },
    slots: { type: "string" },
    name: { type: "string" },
    "unit-dir": { type: "string" },
    "env-dir": { type: "string" },
    "no-enable": { type: "boolean", default: false },
    ...AGENT_TUNING.options,
  } as const;
  const args = parseCommand("agent install", argv, options, InstallArgs);
  agentTuning(args); // range checks, as `labrun agent` makes them: a bad unit never gets written
  // Checked above; the unit gets them as they were written (`--grace 2m`, not ms).
  const raw = parseArgs({ args: argv, options, allowPositionals: true, strict: true }).values;
  const tuning = Object.keys(AGENT_TUNING.options).flatMap((flag) => {
    const value = (raw as Record<string, unknown>)[flag];
    return typeof value === "string" ? [`--${flag}`, value] : [];
  });
  const envFile = join(args["env-dir"], "agent.env");
  const unitFile = join(args["unit-dir"], UNIT_NAME);
  const { unit, env } = agentUnit({
    server: args.server,
    token: args.token,
    slots: args.slots,
    name: args.name,
    tuning,
    node: process.execPath,
    cli: fileURLToPath(new URL("../cli.js", import.meta.url)),
    envFile,
  });
  mkdirSync(args["env-dir"], { recursive: true, mode: 0o700 });
  writeFileSync(envFile, env, { mode: 0o600 });
  chmodSync(envFile, 0o600); // also when the file was there before
  mkdirSync(args["unit-dir"], { recursive: true });
  writeFileSync(unitFile, unit, { mode: 0o644 });
  const say = (line: string) => process.stdout.write(`${line}\n`);
  say(`wrote ${unitFile}`);
  say(`wrote ${envFile} (mode 0600: it holds the join token)`);
  const enable = !args["no-enable"];
  if (enable && systemdRunning()) {
    systemctl("daemon-reload");
    systemctl("enable", "--now", UNIT_NAME);
    say(`enabled and started ${UNIT_NAME}; follow it with: journalctl -u ${UNIT_NAME} -f`);
  } else {
    say(
      enable
        ? "systemd is not running here: start it yourself with"
        : "not enabled (--no-enable); start it with",
    );
    say(`  systemctl daemon-reload && systemctl enable --now ${UNIT_NAME}`);
  }
  return EXIT.ok;
}

/** `labrun agent uninstall`: stops and disables the unit, removes both files. */
export async function uninstall(argv: string[]): Promise<number> {
  const args = parseCommand(
    "agent uninstall",
    argv,
    { "unit-dir": { type: "string" }, "env-dir": { type: "string" } },
    UninstallArgs,
  );
  const unitFile = join(args["unit-dir"], UNIT_NAME);
  const envFile = join(args["env-dir"], "agent.env");
  if (systemdRunning() && existsSync(unitFile)) {
    // Stopping drains the agent: running jobs finish first (up to its grace).
    systemctl("disable", "--now", UNIT_NAME);
  }
  for (const file of [unitFile, envFile]) {
    if (existsSync(file)) {
      rmSync(file);
      process.stdout.write(`removed ${file}\n`);
    }
  }
  if (systemdRunning()) systemctl("daemon-reload");
  return EXIT.ok;
}

/** Reads the env file as the unit would (KEY=value lines). Exported for tests. */
export function readEnvFile(path: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const line of readFileSync(path, "utf8").split("\n")) {
    const match = /^([A-Z_][A-Z0-9_]*)=(.*)$/.exec(line.trim());
    if (match?.[1]) env[match[1]] = match[2] ?? "";
  }
  return env;
}
