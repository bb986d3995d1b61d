import { createRequire } from "node:module";
import { Worker } from "node:worker_threads";
import type Database from "better-sqlite3";

/** How often the checkpointer copies the WAL into the database file. */
export const CHECKPOINT_INTERVAL_MS = 200;

/**
 * WAL frames (pages) past which the coordinator's own connection checkpoints
 * too: 16 × SQLite's default autocheckpoint (1,000), ~64 MB of 4 KiB pages.
 */
export const WAL_BOUND_FRAMES = 16_000;

/**
 * A WAL of fewer frames than this is left alone: SQLite's own
 * autocheckpoint point. A checkpoint that copies the whole WAL makes the next
 * commit start it over, and SQLite syncs the WAL's new header then (also with
 * synchronous NORMAL): one fsync on the next job's submit, 0.5–1 ms here,
 * more under load. Checkpointing a few pages every 200 ms put that fsync on
 * nearly every job of a quiet cluster.
 */
export const CHECKPOINT_MIN_FRAMES = 1_000;

/** SQLite's default `wal_autocheckpoint`, put back if the checkpointer dies. */
const AUTOCHECKPOINT_PAGES = 1_000;

// The worker's code, as text (`eval`): vitest runs the store from its .ts
// sources, where a worker file of its own would have no .js to load.
const WORKER = `
const { closeSync, openSync, readSync } = require("node:fs");
const { endianness } = require("node:os");
const { parentPort, workerData } = require("node:worker_threads");
const Database = require(workerData.driver);
const db = new Database(workerData.file, { fileMustExist: true });
db.pragma("busy_timeout = 1000");
db.pragma("synchronous = NORMAL");
// The frames in the WAL not yet copied into the database: the WAL-index
// header's mxFrame (offset 16 of the -shm file) less the checkpoint's
// nBackfill (offset 96), both in the host's byte order (the WAL-index
// format, sqlite.org/walformat.html). Read without a lock: it only decides
// when to checkpoint.
const index = Buffer.alloc(100);
const u32 = endianness() === "LE" ? (at) => index.readUInt32LE(at) : (at) => index.readUInt32BE(at);
let shm = -1;
function framesToCopy() {
  try {
    if (shm === -1) shm = openSync(workerData.file + "-shm", "r");
    if (readSync(shm, index, 0, 100, 0) < 100) return 0;
    return u32(16) - u32(96);
  } catch {
    return workerData.minFrames;
  }
}
let timer;
function tick() {
  if (framesToCopy() >= workerData.minFrames) {
    const [row] = db.pragma("wal_checkpoint(PASSIVE)");
    if (row.log >= workerData.boundFrames) parentPort.postMessage(row);
  }
  timer = setTimeout(tick, workerData.intervalMs);
}
parentPort.on("message", () => {
  clearTimeout(timer);
  if (shm !== -1) closeSync(shm);
  db.close();
  parentPort.close();
});
timer = setTimeout(tick, workerData.intervalMs);
`;

/** What a checkpoint reports (SQLite's `PRAGMA wal_checkpoint` row). */
interface CheckpointRow {
  busy: number;
  log: number;
  checkpointed: number;
}

export interface Checkpointer {
  /**
   * Stops the worker; its connection closes (the last one to close removes
   * the WAL). Settles once the thread has exited, so nothing of it writes in
   * the data folder after that (a caller may then delete the folder).
   */
  stop(): Promise<void>;
}

/**
 * Moves WAL checkpoints off the request path. SQLite checkpoints inside the
 * commit that takes the WAL past 1,000 pages: that commit copies the pages
 * into the database file and fsyncs the WAL and the file, 5–15 ms on this
 * machine's disk (strace), on whatever verb happened to commit then (a
 * lease's p99). Here a worker thread's own connection looks every
 * `intervalMs` and, once the WAL holds `minFrames`, runs a PASSIVE
 * checkpoint beside the coordinator's writes (WAL lets a
 * checkpoint run while a writer appends), and the coordinator's connection
 * no longer checkpoints in its commits. Durability is unchanged: commits
 * still go to the WAL with synchronous NORMAL, and a checkpoint still syncs
 * the WAL before it copies and the file after.
 *
 * Under writes that never pause, a checkpoint never catches up with the
 * writer, and SQLite starts the WAL over only once all of it is copied: past
 * `boundFrames` the coordinator's connection checkpoints the rest itself
 * (the frames the worker has not copied yet, then its next write starts the
 * WAL over), so the WAL stays bounded. If the worker fails, the connection
 * checkpoints in its commits again, as SQLite does by default.
 *
 * @example
 * const checkpointer = startCheckpointer(db);
 * // … on close:
 * const stopped = checkpointer.stop();
 * db.close();
 * await stopped;
 */
export function startCheckpointer(
  db: Database.Database,
  {
    intervalMs = CHECKPOINT_INTERVAL_MS,
    boundFrames = WAL_BOUND_FRAMES,
    minFrames = CHECKPOINT_MIN_FRAMES,
  } = {},
): Checkpointer {
  const worker = new Worker(WORKER, {
    eval: true,
    workerData: {
      driver: createRequire(import.meta.url).resolve("better-sqlite3"),
      file: db.name,
      intervalMs,
      boundFrames,
      minFrames,
    },
  });
  db.pragma("wal_autocheckpoint = 0");
  const checkpointInline = () => {
    if (db.open) db.pragma(`wal_autocheckpoint = ${AUTOCHECKPOINT_PAGES}`);
  };
  worker.on("message", (row: CheckpointRow) => {
    // Between requests (an event of the loop), never inside a verb's transaction.
    if (db.open && !db.inTransaction && row.log >= boundFrames) {
      db.pragma("wal_checkpoint(PASSIVE)");
    }
  });
  worker.on("error", checkpointInline);
  let stopped = false;
  const exited = new Promise<void>((resolve) => {
    worker.on("exit", () => {
      if (!stopped) checkpointInline();
      resolve();
    });
  });
  // The checkpointer never keeps the process alive on its own. After the
  // listeners: a "message" listener refs the worker's port again.
  worker.unref();
  return {
    stop() {
      stopped = true;
      // Ref'd again until it has exited: a process whose last work is
      // awaiting this would otherwise run out of events first and end with
      // the await unsettled.
      worker.ref();
      worker.postMessage("stop");
      return exited;
    },
  };
}
