import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { freePort } from "../../../bench/e2e/processes.js";

const run = promisify(execFile);
const SCRIPT = fileURLToPath(new URL("../../../scripts/ensure-postgres.sh", import.meta.url));
/** The server binaries this machine has (issue 18); ensure-postgres.sh finds the same. */
const BIN = "/usr/lib/postgresql/15/bin";
const PG_USER = "postgres";

/** A PostgreSQL server of one test file's own, which the test may stop and start. */
export interface PrivatePostgres {
  /** `postgres://postgres@127.0.0.1:<port>/<database>` (default: the file's `labrun` database). */
  url(database?: string): string;
  readonly port: number;
  readonly dataDir: string;
  readonly logFile: string;
  /** `pg_ctl stop -m fast`: sessions are ended at once, the server is gone when it resolves. */
  stop(): Promise<void>;
  /** Starts the stopped server again on the same port and data; resolves once it answers. */
  start(): Promise<void>;
  /** `pg_ctl restart -m fast`, waiting until it answers again. */
  restart(): Promise<void>;
  /** Stops the server and deletes its data dir and log. Idempotent. */
  destroy(): Promise<void>;
}

/**
 * Starts a private PostgreSQL for a fault test: scripts/ensure-postgres.sh
 * (initdb as the `postgres` user, 127.0.0.1 and a unix socket only, trust
 * on loopback) pointed at a fresh data dir and a free port, with database
 * `labrun` created. Never the shared server on 55432, which other suites
 * use at the same time: this one may be restarted under the test's feet.
 *
 * @example
 * const pg = await startPrivatePostgres();
 * await pg.restart();
 * await pg.destroy();
 */
export async function startPrivatePostgres(): Promise<PrivatePostgres> {
  const port = await freePort();
  // Not inside a mkdtemp dir: that is root's and 0700, and the server runs as `postgres`.
  const dataDir = join(tmpdir(), `labrun-pg-${randomBytes(4).toString("hex")}`);
  const logFile = `${dataDir}.log`;
  const env = {
    ...process.env,
    LABRUN_PG_DATA: dataDir,
    LABRUN_PG_PORT: String(port),
    LABRUN_PG_LOG: logFile,
    LABRUN_PG_PIDFILE: `${dataDir}.pid`,
  };
  const script = (...args: string[]) =>
    run("bash", [SCRIPT, ...args], { env, timeout: 120_000, encoding: "utf8" });
  const pgCtl = (...args: string[]) =>
    run("runuser", ["-u", PG_USER, "--", `${BIN}/pg_ctl`, "-D", dataDir, ...args], {
      timeout: 90_000,
      encoding: "utf8",
    });
  // As scripts/ensure-postgres.sh starts it: loopback and the socket in the data dir only.
  const serverOptions = `-c listen_addresses=127.0.0.1 -p ${port} -c unix_socket_directories=${dataDir}`;
  const cleanup = () => {
    for (const path of [dataDir, logFile, `${dataDir}.pid`, `${dataDir}.lock`]) {
      rmSync(path, { recursive: true, force: true });
    }
  };

  try {
    await script("--create-db", "labrun");
  } catch (error) {
    cleanup();
    throw new Error(`the private PostgreSQL did not start: ${(error as Error).message}`);
  }
  let destroyed = false;
  return {
    url: (database = "labrun") => `postgres://${PG_USER}@127.0.0.1:${port}/${database}`,
    port,
    dataDir,
    logFile,
    stop: async () => void (await pgCtl("stop", "-m", "fast", "-w", "-t", "60")),
    // The port and addresses again: a plain `pg_ctl start` forgets the first start's (only restart reads postmaster.opts).
    start: async () =>
      void (await pgCtl("start", "-w", "-t", "60", "-l", logFile, "-o", serverOptions)),
    restart: async () =>
      void (await pgCtl("restart", "-m", "fast", "-w", "-t", "60", "-l", logFile)),
    async destroy() {
      if (destroyed) return;
      destroyed = true;
      await script("--stop").catch(() => {});
      cleanup();
    },
  };
}
