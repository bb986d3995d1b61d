#!/usr/bin/env node
// Part of `npm install` (postinstall): patches two faults of postgres.js
// 3.4.9 that crash the process when PostgreSQL restarts under it. Each is
// a race; each killed coordinators in runs of test/faults/pg-restart.test.ts.
//
// 1. The write scheduler (porsager/postgres#1154, #1208; fixes proposed
//    upstream in #1168, #1209, none released). Small writes wait for a
//    setImmediate; when the socket closes first, the connection's teardown
//    cancels that immediate but keeps the variable and the buffered bytes,
//    and a later write runs `nextWrite` on a null socket: an uncaught
//    TypeError from a timer, which no try/catch of the caller sees. The
//    patch (the upstream PRs' guard): teardown drops the timer and the
//    buffered bytes of the dead socket, and `nextWrite` without a socket
//    fails the connection's queries with CONNECTION_CLOSED (which the pool
//    retries on a new connection, and the coordinator answers 503) instead
//    of throwing.
// 2. The array-types fetch, the first statement of every new connection
//    (porsager/postgres#1192, #1205, #1223; open). `ReadyForQuery` starts
//    the async `fetchArrayTypes()` and drops its promise: when that
//    statement fails (a connection reset as the server goes down, a
//    cancel), the rejection is unhandled and ends the process. The query
//    that opened the connection has the error already (it is failed with
//    it, and the pool connects again), so the patch only handles the
//    dropped promise. coordinator/store/postgres/connection-cut.test.ts
//    resets a connection at that statement.
//
// Each edit is applied once (a file that has an edit's result keeps it); a
// postgres.js that no longer has the code an edit patches is left alone
// with a warning (then drop that edit).
import { existsSync, readFileSync, writeFileSync } from "node:fs";

const MARK = "/* labrun: nextWrite guard (scripts/patch-postgres.mjs) */";
const TYPES_MARK =
  "/* labrun: the types fetch's rejection is the opening query's (scripts/patch-postgres.mjs) */";
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
  [
    "        return fetchArrayTypes()\n",
    `        return fetchArrayTypes().catch(() => {}) ${TYPES_MARK}\n`,
  ],
];

for (const file of files) {
  const url = new URL(file, root);
  if (!existsSync(url)) continue;
  const original = readFileSync(url, "utf8");
  let text = original;
  for (const [from, to] of EDITS) {
    if (text.includes(to)) continue;
    if (!text.includes(from)) {
      process.stderr.write(
        `patch-postgres: ${file} has changed; an edit does not apply (see the script)\n`,
      );
      continue;
    }
    text = text.split(from).join(to);
  }
  if (text !== original) writeFileSync(url, text);
}
