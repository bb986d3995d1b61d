import { isatty } from "node:tty";
import { isTerminal, type Job } from "../protocol/jobs.js";
import type { LabrunClient } from "./api.js";

const FRAMES = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];

/**
 * Waits for a job like `client.wait`, showing a one-line spinner with its
 * state and elapsed time on stderr (or `stream`) — only when it is a terminal
 * (piped output and scripts see nothing). The line is erased before returning.
 *
 * @example
 * const job = await waitWithProgress(client, id);
 */
export async function waitWithProgress(
  client: LabrunClient,
  id: string,
  given?: NodeJS.WriteStream,
): Promise<Job> {
  // Asked of fd 2 before touching process.stderr: making that stream (a pipe's
  // socket, a file's writer) is work a piped `labrun submit` need not do.
  if (given === undefined && !isatty(2)) return client.wait(id);
  const stream = given ?? process.stderr;
  if (!stream.isTTY) return client.wait(id);
  const started = Date.now();
  let state = "queued";
  let frame = 0;
  const draw = () => {
    const seconds = ((Date.now() - started) / 1000).toFixed(1);
    stream.write(`\r\x1b[2K${FRAMES[frame++ % FRAMES.length]} ${id} ${state} ${seconds}s`);
  };
  const timer = setInterval(draw, 100);
  try {
    // Short long-polls so the state on the line stays fresh.
    for (;;) {
      const job = await client.get(id, 1);
      state = job.waiting ? `${job.state} (${job.waiting.reason})` : job.state;
      if (isTerminal(job.state)) return job;
    }
  } finally {
    clearInterval(timer);
    stream.write("\r\x1b[2K");
  }
}
