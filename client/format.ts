import type { AuditEntry, Job, NodeInfo, UserInfo } from "../protocol/index.js";

/** One line about a job, for people. */
export function jobLine(job: Job): string {
  const duration = job.outcome ? `${job.outcome.stats.durationMs} ms` : "";
  const error =
    job.outcome && !job.outcome.ok ? `${job.outcome.error.code}: ${job.outcome.error.message}` : "";
  const waiting = job.waiting
    ? `waiting (#${job.waiting.position}, ${job.waiting.reason}): ${job.waiting.message}`
    : "";
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
    ["ID", "OWNER", "STATE", "NODE", "CREATED", "DURATION", "ERROR"],
    ...jobs.map((job) => [
      job.id,
      job.owner ?? "-",
      job.state,
      job.node ?? "-",
      job.createdAt,
      job.outcome ? `${job.outcome.stats.durationMs} ms` : "-",
      job.outcome && !job.outcome.ok ? job.outcome.error.code : "",
    ]),
  ]);
}

const quota = (value: number | undefined) => (value === undefined ? "-" : String(value));

export function usersTable(users: UserInfo[]): string {
  return table([
    [
      "NAME",
      "CREATED",
      "RUNNING",
      "QUEUED",
      "USAGE (s)",
      "SHARE",
      "WEIGHT",
      "MAX RUN",
      "MAX QUEUED",
    ],
    ...users.map((user) => [
      user.name,
      user.createdAt,
      String(user.running),
      String(user.queued),
      user.usage.toFixed(1),
      `${(user.share * 100).toFixed(0)}%`,
      String(user.weight),
      quota(user.maxRunning),
      quota(user.maxQueued),
    ]),
  ]);
}

export function auditTable(entries: AuditEntry[]): string {
  return table([
    ["AT", "WHO", "ACTION", "TARGET", "DETAILS"],
    ...entries.map((entry) => [
      entry.at,
      entry.actor,
      entry.action,
      entry.target,
      Object.keys(entry.details).length > 0 ? JSON.stringify(entry.details) : "",
    ]),
  ]);
}
