import { DEFAULT_USER } from "../protocol/index.js";
import { ApiError, notFound } from "./errors.js";
import type { Caller } from "./routeTypes.js";

/**
 * Who may see whose jobs and batches (DESIGN.md §8): a user their own, the
 * admin token all. Another user's job is refused exactly as a missing one
 * (same 404, same message), so its id tells nothing (OWASP API1).
 */

/** The user a submit is owned by: the caller's own, `default` for the admin token. */
export function actingUser(caller: Caller): string {
  return caller.role === "client" ? caller.user : DEFAULT_USER;
}

/**
 * Throws the NOT_FOUND a missing `what` gets unless the caller may see work
 * of `owner` (undefined: there is none).
 *
 * @example
 * visibleOr404(c.get("caller"), store.jobOwner(id), `job ${id}`);
 */
export function visibleOr404(caller: Caller, owner: string | undefined, what: string): void {
  if (owner === undefined) throw notFound(what);
  if (caller.role === "admin") return;
  if (caller.role !== "client" || caller.user !== owner) throw notFound(what);
}

/**
 * Whose work a list shows: a user their own (`user` may name only them);
 * the admin token everyone's, or one user's with `user`.
 */
export function listedOwner(
  caller: Caller,
  filter: { user?: string | undefined; all?: boolean | undefined },
): string | undefined {
  if (caller.role === "admin") return filter.all ? undefined : filter.user;
  const own = actingUser(caller);
  if (filter.all || (filter.user !== undefined && filter.user !== own)) {
    throw new ApiError(
      "FORBIDDEN",
      "only the admin token lists other users' work (user=…, all=true); a user lists their own",
    );
  }
  return own;
}
