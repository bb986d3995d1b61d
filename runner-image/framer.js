// labrun's framer: PID 1 of a container that runs a batch's items one after
// another (the request says `reuse: true`). It never runs program code. It
// holds each item's nonce, hands the item (without the nonce) to the item
// host (item-host.js, a process of its own) over the host's stdin, takes the
// host's reply from a pipe of its own (fd 3 of the host), cleans up after the
// item and only then frames the envelope with that item's nonce:
//
//   stderr: <nonce>                      (the item's stderr is complete)
//   stdout: \n<nonce>K|R<envelope><nonce> (K: send the next item; R: throw me away)
//   stderr: LABRUN_RUNNER_READY\n        (once a host is up for the next item)
//
// Between two items: every process but this one and a host fit for another
// item is SIGKILLed (kill(-1) from PID 1 reaches them all, the host too, when
// anything else is alive), /tmp is emptied, and a host that reports anything
// changed or left running is replaced by a new process.
"use strict";

const fs = require("node:fs");
const os = require("node:os");
const path = require("node:path");
const { spawn } = require("node:child_process");
const { lineSplitter } = require("./contract.js");

const NONCE = /^[A-Za-z0-9]{16,128}$/;
const READY = "LABRUN_RUNNER_READY\n";
/** Zombies left by items, past which the container asks to be thrown away (each holds a pids slot). */
const MAX_ZOMBIES = 8;
const HOST_SCRIPT = path.join(__dirname, "item-host.js");
const sleepCell = new Int32Array(new SharedArrayBuffer(4));

/** Writes all of `text` to `fd`, looping over partial writes and EAGAIN. */
function writeAll(fd, text) {
  const bytes = Buffer.from(text, "utf8");
  let offset = 0;
  while (offset < bytes.length) {
    try {
      offset += fs.writeSync(fd, bytes, offset, bytes.length - offset);
    } catch (error) {
      if (error?.code !== "EAGAIN") throw error;
      Atomics.wait(sleepCell, 0, 0, 1);
    }
  }
}

function failure(code, message) {
  return JSON.stringify({ ok: false, error: { code, message } });
}

/** Gives up the container: no frame, the agent sees the exit and decides. */
function giveUp(message, code = 70) {
  try {
    writeAll(2, `labrun runner: ${message}; giving up the container\n`);
  } catch {
    // stderr gone too: the exit says enough.
  }
  process.reallyExit(code);
}

/** One item host: a process, its reply lines, and its end. */
function startHost() {
  const child = spawn(process.execPath, [HOST_SCRIPT], {
    stdio: ["pipe", "inherit", "inherit", "pipe"],
    env: {},
    cwd: os.tmpdir(),
  });
  const host = { child, replies: [], waiting: null, exited: null, pid: child.pid };
  host.gone = new Promise((resolve) => {
    child.once("exit", (code, signal) => {
      host.exited = { code, signal };
      host.waiting?.(null);
      resolve();
    });
  });
  child.once("error", () => {
    host.exited ??= { code: null, signal: "spawn" };
    host.waiting?.(null);
  });
  child.stdio[3].setEncoding("utf8");
  // A reply carries the item's envelope: its result, up to megabytes.
  child.stdio[3].on(
    "data",
    lineSplitter((line) => {
      host.replies.push(line);
      host.waiting?.(host.replies.shift());
    }),
  );
  child.stdin.on("error", () => {
    // The host died: its exit is what counts.
  });
  return host;
}

/** The host's next reply line, or null once it has ended. */
function nextReply(host) {
  if (host.replies.length > 0) return Promise.resolve(host.replies.shift());
  if (host.exited) return Promise.resolve(null);
  return new Promise((resolve) => {
    host.waiting = (line) => {
      host.waiting = null;
      resolve(line);
    };
  });
}

/** A host that said it is up; null when it died booting (the pids or memory limit). */
async function bootHost() {
  const host = startHost();
  const line = await nextReply(host);
  if (line === null) return null;
  try {
    if (JSON.parse(line).ready === true) return host;
  } catch {
    // Not its ready line.
  }
  return null;
}

/** The pids in this PID namespace but 1 (this one), as [alive, zombies]. */
function otherProcesses() {
  const alive = [];
  let zombies = 0;
  for (const name of fs.readdirSync("/proc")) {
    if (!/^[0-9]+$/.test(name) || name === "1") continue;
    let stat = "";
    try {
      stat = fs.readFileSync(`/proc/${name}/stat`, "latin1");
    } catch {
      continue; // gone meanwhile
    }
    const state = stat[stat.lastIndexOf(")") + 2];
    if (state === "Z" || state === "X") zombies += 1;
    else alive.push(Number(name));
  }
  return { alive, zombies };
}

/** SIGKILLs every other process, repeated until none is alive (a fork bomb races it). */
function killAll() {
  for (let round = 0; round < 1000; round++) {
    try {
      process.kill(-1, "SIGKILL");
    } catch {
      // ESRCH: nobody else.
    }
    if (otherProcesses().alive.length === 0) return;
    Atomics.wait(sleepCell, 0, 0, 1);
  }
  giveUp("processes survived SIGKILL");
}

/** /tmp as it was when the container started: empty. */
function emptyTmp() {
  const tmp = os.tmpdir();
  for (const name of fs.readdirSync(tmp)) {
    const entry = path.join(tmp, name);
    try {
      fs.rmSync(entry, { recursive: true, force: true });
    } catch {
      // A directory the item made unwritable: its owner (this uid) opens it up again.
      makeWritable(entry);
      fs.rmSync(entry, { recursive: true, force: true });
    }
  }
}

function makeWritable(entry) {
  const stat = fs.lstatSync(entry);
  if (!stat.isDirectory()) return;
  fs.chmodSync(entry, 0o700);
  for (const name of fs.readdirSync(entry)) makeWritable(path.join(entry, name));
}

/** The envelope text of a host's reply, checked: JSON of an envelope object, or null. */
function envelopeOf(reply) {
  try {
    const parsed = JSON.parse(reply);
    if (typeof parsed?.envelope !== "string") return null;
    const envelope = JSON.parse(parsed.envelope);
    if (envelope === null || typeof envelope !== "object" || typeof envelope.ok !== "boolean") {
      return null;
    }
    return { text: parsed.envelope, clean: parsed.clean === true };
  } catch {
    return null;
  }
}

/** Reads request lines from stdin, one at a time; null at its end. */
function requestReader() {
  let ended = false;
  const lines = [];
  let waiting = null;
  process.stdin.setEncoding("utf8");
  process.stdin.on(
    "data",
    lineSplitter((line) => {
      lines.push(line);
      if (waiting) waiting(lines.shift());
    }),
  );
  process.stdin.on("end", () => {
    ended = true;
    waiting?.(null);
  });
  return () => {
    if (lines.length > 0) return Promise.resolve(lines.shift());
    if (ended) return Promise.resolve(null);
    return new Promise((resolve) => {
      waiting = (line) => {
        waiting = null;
        resolve(line);
      };
    });
  };
}

/**
 * Runs the container's items until stdin ends. `first` is the first request,
 * read by runner.js (its nonce already taken out), and `firstNonce` its nonce.
 */
async function serve(first, firstNonce) {
  const nextRequest = requestReader();
  let request = first;
  let nonce = firstNonce;
  let host = await bootHost();
  // The agent starts the first item's clock here, once its host is up.
  if (host !== null) writeAll(2, READY);
  for (;;) {
    if (host === null) giveUp("the item host did not start");
    let envelope;
    let keepHost = true;
    if (request.problem) {
      envelope = failure("SANDBOX_ERROR", `the runner's request is malformed: ${request.problem}`);
    } else {
      host.child.stdin.write(
        `${JSON.stringify({ source: request.source, filename: request.filename, input: request.input ?? null })}\n`,
      );
      const reply = await nextReply(host);
      if (reply === null) {
        const { code, signal } = host.exited ?? {};
        // SIGKILL from inside is the kernel's OOM killer far more often than
        // the program itself: the agent asks Docker which, from the exit.
        if (signal === "SIGKILL") giveUp("the item host was killed", 137);
        envelope = failure(
          "RUNTIME_ERROR",
          `the program ended (${signal ? `signal ${signal}` : `exit code ${code}`}) before main returned a result`,
        );
        keepHost = false;
      } else {
        const checked = envelopeOf(reply);
        envelope =
          checked?.text ?? failure("RUNTIME_ERROR", "the item host sent a malformed reply");
        keepHost = checked?.clean === true;
      }
    }
    // Clean up before the frame: nothing of the item may write after it.
    const { alive } = otherProcesses();
    if (alive.some((pid) => pid !== host.pid)) keepHost = false;
    if (!keepHost) {
      killAll();
      await host.gone;
    }
    try {
      emptyTmp();
    } catch (error) {
      giveUp(`could not empty /tmp (${error?.message})`);
    }
    const retire = otherProcesses().zombies > MAX_ZOMBIES;
    try {
      writeAll(2, nonce);
    } catch {
      // stderr closed: the agent waits for the exit instead.
    }
    writeAll(1, `\n${nonce}${retire ? "R" : "K"}${envelope}${nonce}`);
    if (retire) giveUp("too many zombies left", 0);
    if (!keepHost) host = await bootHost();
    if (host === null) giveUp("the item host did not start");
    writeAll(2, READY);

    const line = await nextRequest();
    // The agent is done with this container.
    if (line === null || line === "") process.reallyExit(0);
    ({ request, nonce } = parseRequest(line));
  }
}

/** The next request: its nonce taken out, or what is wrong with it. */
function parseRequest(text) {
  let request = null;
  try {
    request = JSON.parse(text);
  } catch {
    // Answered below, if a nonce can be found.
  }
  const isObject = request !== null && typeof request === "object" && !Array.isArray(request);
  let nonce = "";
  if (isObject && typeof request.nonce === "string" && NONCE.test(request.nonce)) {
    nonce = request.nonce;
  } else {
    const found = /"nonce"\s*:\s*"([A-Za-z0-9]{16,128})"/.exec(text);
    if (!found) giveUp("a request on stdin has no valid nonce");
    nonce = found[1];
  }
  if (!isObject) return { request: { problem: "it is not a JSON object" }, nonce };
  // The host checks the rest, as runner.js does.
  return {
    request: { source: request.source, filename: request.filename, input: request.input },
    nonce,
  };
}

module.exports = { serve };
