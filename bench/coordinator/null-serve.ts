/**
 * The HTTP ceiling of this machine: a bare node:http server that reads each
 * body and answers `{"ok":true}`, in its own process like the coordinator.
 * Requests per second against it bound what any Node HTTP service (the
 * coordinator included) can answer here, with the bench's client beside it.
 * Prints `{"url","pid"}` on stdout; exits when stdin closes or on SIGTERM.
 */
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";

const server = createServer((req, res) => {
  req.resume();
  req.on("end", () => {
    res.setHeader("content-type", "application/json");
    res.end('{"ok":true}');
  });
});
server.listen(0, "127.0.0.1", () => {
  const { port } = server.address() as AddressInfo;
  process.stdout.write(
    `${JSON.stringify({ url: `http://127.0.0.1:${port}`, pid: process.pid })}\n`,
  );
});
process.on("SIGTERM", () => process.exit(0));
process.stdin.on("end", () => process.exit(0));
process.stdin.resume();
