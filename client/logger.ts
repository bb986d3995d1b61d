import pino, { type Logger } from "pino";

/**
 * The process logger for `labrun coordinator|agent|up`: JSON lines by default
 * (for journald and log shippers), pretty when a person watches a terminal.
 */
export function createLogger(level = process.env.LABRUN_LOG_LEVEL ?? "info"): Logger {
  if (process.stdout.isTTY) {
    return pino({ level, transport: { target: "pino-pretty", options: { colorize: true } } });
  }
  // Asynchronous writes: a slow log consumer must not stall the job path;
  // pino flushes what is buffered when the process exits.
  return pino({ level }, pino.destination({ dest: 1, sync: false }));
}
