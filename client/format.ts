import type { Job, NodeInfo } from "../protocol/index.js";

/** One line about a job, for people. */
export function jobLine(job: Job): string {
  const duration = job.outcome ? `${job.outcome.stats.durationMs} ms` : "";
  const error =
    job.outcome && !job.outcome.ok ? `${job.outcome.error.code}: ${job.outcome.error.message}` : "";
  const waiting = job.waiting ? `waiting: ${job.waiting.reason}` : "";
  return [job.id, job.state.padEnd(9), job.node ?? "-", duration, error, waiting]
    .filter((part) => part !== "")
    .join("  ");
}

/** A plain aligned table (first row is the header). */
export function table(rows: string[][]): string {
  const widths = rows[0]?.map((_, column) =>
    Math.max(...rows.map((row) => (row[column] ?? "").length)),
  );
  return rows
    .map((row) =>
      row
        .map((cell, column) => cell.padEnd(widths?.[column] ?? 0))
        .join("  ")
        .trimEnd(),
    )
    .join("\n");
}

export function nodesTable(nodes: NodeInfo[]): string {
  const header = [
    "NAME",
    "STATE",
    "SLOTS",
    "RUNNING",
    "DONE",
    "FAILED",
    "LAST HEARTBEAT",
    "VERSION",
  ];
  return table([
    header,
    ...nodes.map((node) => [
      node.name,
      node.state,
      String(node.slots),
      String(node.running),
      String(node.jobsDone),
      String(node.jobsFailed),
      node.lastHeartbeatAt,
      node.version,
    ]),
  ]);
}

export function jobsTable(jobs: Job[]): string {
  return table([
    ["ID", "STATE", "NODE", "CREATED", "DURATION", "ERROR"],
    ...jobs.map((job) => [
      job.id,
      job.state,
      job.node ?? "-",
      job.createdAt,
      job.outcome ? `${job.outcome.stats.durationMs} ms` : "-",
      job.outcome && !job.outcome.ok ? job.outcome.error.code : "",
    ]),
  ]);
}
