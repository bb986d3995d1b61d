import type { AuditAction, AuditEntry, AuditPage } from "../../protocol/index.js";
import type { StoreContext } from "./database.js";
import type { ListAuditOptions, NewAuditEntry } from "./interfaces.js";
import { decodeCursor, encodeCursor } from "./rows.js";

/** An audit row as both stores read it. */
export interface AuditRow {
  seq: number;
  at: number;
  actor: string;
  action: AuditAction;
  target: string;
  details: string;
}

/** An audit row as the API shows it. */
export const auditEntryOf = (row: AuditRow): AuditEntry => ({
  at: new Date(row.at).toISOString(),
  actor: row.actor,
  action: row.action,
  target: row.target,
  details: JSON.parse(row.details) as Record<string, unknown>,
});

/** The audit log of admin actions: appended to, read newest first. */
export function prepareAudit({ db }: StoreContext) {
  const insert = db.prepare(
    "INSERT INTO audit (at, actor, action, target, details) VALUES (@at, @actor, @action, @target, @details)",
  );
  const page = db.prepare<[number, number], AuditRow>(
    "SELECT seq, at, actor, action, target, details FROM audit WHERE seq < ? ORDER BY seq DESC LIMIT ?",
  );
  return {
    /** Appends one admin action. */
    recordAudit(entry: NewAuditEntry, now: number): void {
      insert.run({ ...entry, details: JSON.stringify(entry.details ?? {}), at: now });
    },
    /** A page of the log, newest first. */
    listAudit({ limit, cursor }: ListAuditOptions): AuditPage {
      const before = cursor === undefined ? Number.MAX_SAFE_INTEGER : decodeCursor(cursor);
      const rows = page.all(before, limit + 1);
      const shown = rows.slice(0, limit);
      const last = shown.at(-1);
      return {
        entries: shown.map(auditEntryOf),
        ...(rows.length > limit && last ? { nextCursor: encodeCursor(last.seq) } : {}),
      };
    },
  };
}
