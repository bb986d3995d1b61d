import type { AuditPage } from "../../../protocol/index.js";
import { type AuditRow, auditEntryOf } from "../audit.js";
import type { ListAuditOptions, NewAuditEntry } from "../interfaces.js";
import { decodeCursor, encodeCursor } from "../rows.js";
import { type PgContext, query } from "./database.js";

const INSERT = "INSERT INTO audit (at, actor, action, target, details) VALUES ($1, $2, $3, $4, $5)";
const PAGE = `SELECT seq, at, actor, action, target, details FROM audit
  WHERE seq < $1 ORDER BY seq DESC LIMIT $2`;

/** The audit log of admin actions (as coordinator/store/audit.ts): appended to, read newest first. */
export function prepareAudit({ sql }: PgContext) {
  return {
    /** Appends one admin action. */
    async recordAudit(entry: NewAuditEntry, now: number): Promise<void> {
      await query(sql, INSERT, [
        now,
        entry.actor,
        entry.action,
        entry.target,
        JSON.stringify(entry.details ?? {}),
      ]);
    },
    /** A page of the log, newest first. */
    async listAudit({ limit, cursor }: ListAuditOptions): Promise<AuditPage> {
      const before = cursor === undefined ? Number.MAX_SAFE_INTEGER : decodeCursor(cursor);
      const rows = await query<AuditRow>(sql, PAGE, [before, limit + 1]);
      const shown = rows.slice(0, limit);
      const last = shown.at(-1);
      return {
        entries: shown.map(auditEntryOf),
        ...(rows.length > limit && last ? { nextCursor: encodeCursor(last.seq) } : {}),
      };
    },
  };
}
