import * as z from "zod";
import { LabrunApiError, LabrunClient } from "../api.js";
import { CONNECTION_OPTIONS, parseCommand, serverFlag } from "../args.js";
import { EXIT } from "../errors.js";
import { resolveConnection } from "../settings.js";

/** One check: ok, a warning (works, but worth knowing), or a failure with its fix. */
export interface Check {
  name: string;
  status: "ok" | "warn" | "fail";
  detail: string;
}

const DoctorArgs = z.object({
  server: serverFlag().optional(),
  token: z.string().min(1).optional(),
  json: z.boolean(),
  positionals: z.tuple([], { message: "takes no positional arguments" }),
});

/** Clocks further apart than this make job times and "last heartbeat" misleading. */
const MAX_SKEW_MS = 2_000;

/**
 * `labrun doctor`: is this machine ready to run or submit jobs? Checks the
 * Docker engine and the runner image (for an agent here), the coordinator,
 * the tokens and the clock, and says how to fix what is wrong. Exit 0 when
 * nothing failed, 3 otherwise.
 */
export async function doctor(argv: string[]): Promise<number> {
  const args = parseCommand("doctor", argv, CONNECTION_OPTIONS, DoctorArgs);
  const checks = [...(await dockerChecks()), ...(await serverChecks(args))];
  if (args.json) {
    process.stdout.write(`${JSON.stringify({ checks }, null, 2)}\n`);
  } else {
    const mark = { ok: "ok  ", warn: "warn", fail: "FAIL" } as const;
    for (const check of checks) {
      process.stdout.write(`${mark[check.status]}  ${check.name.padEnd(13)} ${check.detail}\n`);
    }
  }
  return checks.some((check) => check.status === "fail") ? EXIT.unreachable : EXIT.ok;
}

async function dockerChecks(): Promise<Check[]> {
  // Loaded here only: the other commands must not pay for dockerode.
  const [{ connectDocker, dockerAddress }, { runnerImageTag }, python] = await Promise.all([
    import("../../agent/docker.js"),
    import("../../agent/sandbox/image.js"),
    import("../../agent/sandbox/python-image.js"),
  ]);
  let docker: Awaited<ReturnType<typeof connectDocker>>;
  try {
    docker = await connectDocker();
  } catch (error) {
    return [{ name: "docker", status: "fail", detail: (error as Error).message }];
  }
  const version = (await docker.version().catch(() => ({}))) as { Version?: string };
  const checks: Check[] = [
    {
      name: "docker",
      status: "ok",
      detail: `Docker ${version.Version ?? "?"} answers at ${dockerAddress()}`,
    },
  ];
  const tag = runnerImageTag();
  try {
    await docker.getImage(tag).inspect();
    checks.push({ name: "runner image", status: "ok", detail: `${tag} is built` });
  } catch {
    checks.push({
      name: "runner image",
      status: "warn",
      detail: `${tag} is not built yet — an agent builds it on its first start (~5 s), or run \`labrun image build\``,
    });
  }
  checks.push(await pythonImageCheck(docker, python));
  return checks;
}

/** The python runner image of this machine's python3, or why agents here offer node only. */
async function pythonImageCheck(
  docker: { getImage(tag: string): { inspect(): Promise<unknown> } },
  python: typeof import("../../agent/sandbox/python-image.js"),
): Promise<Check> {
  const name = "python image";
  let info: ReturnType<typeof python.describePythonFor>;
  try {
    info = python.describePythonFor(undefined);
  } catch (error) {
    return {
      name,
      status: "warn",
      detail: `no usable python3 (${(error as Error).message}): agents here offer the node runtime only`,
    };
  }
  const tag = python.pythonImageTag(info);
  try {
    await docker.getImage(tag).inspect();
    return { name, status: "ok", detail: `${tag} is built from ${info.executable}` };
  } catch {
    return {
      name,
      status: "warn",
      detail: `${tag} (from ${info.executable}) is not built yet — an agent builds it on its first start (~20 s), or run \`labrun image build --runtime python\``,
    };
  }
}

async function serverChecks(flags: {
  server?: string | undefined;
  token?: string | undefined;
}): Promise<Check[]> {
  let client: LabrunClient;
  let missingToken: Check | null = null;
  try {
    client = new LabrunClient(resolveConnection(flags, "client"));
  } catch (error) {
    // No token: the coordinator can still be checked (/healthz needs none).
    missingToken = { name: "client token", status: "fail", detail: (error as Error).message };
    client = new LabrunClient({ ...resolveConnection({ ...flags, token: "-" }, "client") });
  }
  let health: Awaited<ReturnType<LabrunClient["health"]>>;
  try {
    health = await client.health();
  } catch (error) {
    const unreachable: Check = {
      name: "coordinator",
      status: "fail",
      detail: (error as Error).message,
    };
    return missingToken ? [unreachable, missingToken] : [unreachable];
  }
  const checks: Check[] = [
    {
      name: "coordinator",
      status: health.ok ? "ok" : "fail",
      detail: health.ok
        ? `${client.server} answers`
        : `${client.server} answers /healthz with an error — see its logs`,
    },
  ];
  if (health.serverDate) {
    // The Date header has a 1 s resolution; only larger gaps mean anything.
    const skew = Math.abs(health.serverDate.getTime() - Date.now());
    checks.push(
      skew > MAX_SKEW_MS
        ? {
            name: "clock",
            status: "warn",
            detail: `this machine's clock is ${(skew / 1000).toFixed(1)} s off the coordinator's — enable NTP (timedatectl set-ntp true)`,
          }
        : { name: "clock", status: "ok", detail: "in step with the coordinator" },
    );
  }
  checks.push(missingToken ?? (await tokenCheck("client token", () => client.list({ limit: 1 }))));

  let admin: LabrunClient | null = null;
  try {
    admin = new LabrunClient(resolveConnection({ server: flags.server }, "admin"));
  } catch {
    checks.push({
      name: "admin token",
      status: "warn",
      detail: "none configured (only `labrun nodes` needs it: set LABRUN_ADMIN_TOKEN)",
    });
  }
  if (admin) {
    const nodesClient = admin;
    const check = await tokenCheck("admin token", () => nodesClient.nodes());
    checks.push(check);
    if (check.status === "ok") {
      const ready = (await nodesClient.nodes()).filter((node) => node.state === "ready");
      checks.push(
        ready.length > 0
          ? {
              name: "nodes",
              status: "ok",
              detail: `${ready.length} ready, ${ready.reduce((sum, node) => sum + node.slots, 0)} slots`,
            }
          : {
              name: "nodes",
              status: "warn",
              detail:
                "no node is ready: jobs will wait — start one with `labrun agent --server URL --token JOIN_TOKEN`",
            },
      );
    }
  }
  return checks;
}

async function tokenCheck(name: string, call: () => Promise<unknown>): Promise<Check> {
  try {
    await call();
    return { name, status: "ok", detail: "accepted" };
  } catch (error) {
    if (error instanceof LabrunApiError && (error.status === 401 || error.status === 403)) {
      return {
        name,
        status: "fail",
        detail: `refused (${error.code}) — check --token / env / config`,
      };
    }
    return { name, status: "fail", detail: (error as Error).message };
  }
}
