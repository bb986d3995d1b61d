/**
 * `node dist/bench/users-capacity.main.js [--users 50] [--queued-per-user 2000]
 * [--window-ms 5000]`: runs the fair-share bookkeeping bench alone and
 * prints its result as JSON on stdout.
 */
import { parseArgs } from "node:util";
import { benchUsersCapacity } from "./users-capacity.js";

const { values } = parseArgs({
  options: {
    users: { type: "string" },
    "queued-per-user": { type: "string" },
    "window-ms": { type: "string" },
  },
});
const number = (text: string | undefined) => (text === undefined ? undefined : Number(text));
const result = await benchUsersCapacity({
  ...(values.users ? { users: number(values.users) } : {}),
  ...(values["queued-per-user"] ? { queuedPerUser: number(values["queued-per-user"]) } : {}),
  ...(values["window-ms"] ? { windowMs: number(values["window-ms"]) } : {}),
});
process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
