import { z } from "zod";
import { openStore } from "./index.js";
import type { Store, StoreSettings } from "./interfaces.js";

const POSTGRES_SCHEMES = new Set(["postgres:", "postgresql:"]);

/** Whether `location` names a PostgreSQL database (`postgres://…` or `postgresql://…`). */
export function isPostgresUrl(location: string): boolean {
  try {
    return POSTGRES_SCHEMES.has(new URL(location).protocol);
  } catch {
    return false;
  }
}

/**
 * The coordinator's `store` setting (`--store`, `LABRUN_STORE`): a
 * PostgreSQL URL with a host and a database. Left out, the store is the
 * embedded SQLite file in the data dir.
 */
export const StoreUrl = z
  .string()
  .trim()
  .refine(
    (text) => {
      if (!isPostgresUrl(text)) return false;
      const url = new URL(text);
      return url.hostname !== "" && url.pathname.length > 1;
    },
    {
      message:
        "store must be a PostgreSQL URL such as postgres://labrun@db.example:5432/labrun (leave it out for the embedded SQLite store in the data dir)",
    },
  );

/**
 * The store at `location`: PostgreSQL for a `postgres://` URL (several
 * coordinators may share it), else the SQLite store in the data dir
 * `location` (the default, nothing to run).
 *
 * @example
 * const store = await openStoreFrom(config.store ?? config.dataDir, config);
 */
export async function openStoreFrom(location: string, settings: StoreSettings): Promise<Store> {
  if (isPostgresUrl(location)) {
    const { openPostgresStore } = await import("./postgres/index.js");
    try {
      return await openPostgresStore(location, settings);
    } catch (error) {
      // Say which store: a bare ECONNREFUSED names no setting.
      throw new Error(
        `could not open the PostgreSQL store ${describeStore(location)}: ${(error as Error).message}`,
        { cause: error },
      );
    }
  }
  return openStore(location, settings);
}

/**
 * `location` fit for a log line: a PostgreSQL URL without its password
 * (`postgres://labrun:***@db:5432/labrun`), or the SQLite data dir.
 */
export function describeStore(location: string): string {
  if (!isPostgresUrl(location)) return `sqlite ${location}`;
  const url = new URL(location);
  if (url.password !== "") url.password = "***";
  return url.toString();
}
