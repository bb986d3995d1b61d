#!/usr/bin/env node
// Part of `npm install` (postinstall): patches postgres.js 3.4.9's write
// scheduler, which crashes the process when PostgreSQL restarts under it
// (porsager/postgres#1154, #1208; fixes proposed upstream in #1168, #1209,
// none released). Small writes wait for a setImmediate; when the socket
// closes first, the connection's teardown cancels that immediate but keeps
// the variable and the buffered bytes, and a later write runs `nextWrite`
// on a null socket: an uncaught TypeError from a timer, which no
// try/catch of the caller sees. It killed both coordinators in a run of
// test/faults/pg-restart.test.ts (it is a race: not every run meets it).
//
// The patch (the upstream PRs' guard): teardown drops the timer and the
// buffered bytes of the dead socket, and `nextWrite` without a socket
// fails the connection's queries with CONNECTION_CLOSED (which the pool
// retries on a new connection, and the coordinator answers 503) instead
// of throwing. Idempotent; a postgres.js that no longer has the code it
// patches is left alone with a warning (then drop this script).
import { existsSync, readFileSync, writeFileSync } from "node:fs";

const MARK = "/* labrun: nextWrite guard (scripts/patch-postgres.mjs) */";
const root = new URL("../node_modules/postgres/", import.meta.url);
const files = ["src/connection.js", "cjs/src/connection.js", "cf/src/connection.js"];

const EDITS = [
  [
    "  function nextWrite(fn) {\n    const x = socket.write(chunk, fn)",
    `  function nextWrite(fn) {\n    ${MARK}\n    if (!socket) {\n      nextWriteTimer !== null && clearImmediate(nextWriteTimer)\n      chunk = nextWriteTimer = null\n      error(Errors.connection('CONNECTION_CLOSED', options))\n      return false\n    }\n    const x = socket.write(chunk, fn)`,
  ],
  // terminate() and closed(): the immediate is cancelled, so forget it and its bytes.
  [
    "    clearImmediate(nextWriteTimer)\n",
    "    clearImmediate(nextWriteTimer)\n    chunk = nextWriteTimer = null\n",
  ],
];

for (const file of files) {
  const url = new URL(file, root);
  if (!existsSync(url)) continue;
  let text = readFileSync(url, "utf8");
  if (text.includes(MARK)) continue;
  if (!EDITS.every(([from]) => text.includes(from))) {
    process.stderr.write(`patch-postgres: ${file} has changed; not patched (see the script)\n`);
    continue;
  }
  for (const [from, to] of EDITS) text = text.split(from).join(to);
  writeFileSync(url, text);
}
