import * as z from "zod";

/**
 * Users (DESIGN.md §8): each person has a token of their own, sees only
 * their own jobs and batches, and shares the lab's slots by fair share.
 * The shared client token of tokens.json is the user `default`.
 */

/** The user the shared client token of tokens.json acts as (and who owns every job from before users). */
export const DEFAULT_USER = "default";

/** A user's name: a letter, then letters, digits, `_ . -` (it appears in paths and tables). */
export const UserName = z
  .string()
  .regex(/^[A-Za-z][A-Za-z0-9_.-]{0,63}$/, "a letter, then up to 63 letters, digits, _ . -");
export type UserName = z.infer<typeof UserName>;

const Quota = z.number().int().min(0).max(10_000_000);

/** `POST /v1/admin/users` body. */
export const AddUserRequest = z
  .object({
    name: UserName,
    /** Most of their jobs leased or running at once (absent: the lab's default, else no bound). */
    maxRunning: Quota.optional(),
    /** Most of their jobs queued at once; a submit past it is 429 QUOTA_EXCEEDED. */
    maxQueued: Quota.optional(),
    /** Their share of the slots against others' (fair share divides usage by it). Default 1. */
    weight: z.number().positive().max(1_000_000).optional(),
  })
  .strict();
export type AddUserRequest = z.infer<typeof AddUserRequest>;

/** A user's token: shown once, at add and at rotate; the coordinator keeps only its hash. */
export const UserToken = z.object({ name: UserName, token: z.string() });
export type UserToken = z.infer<typeof UserToken>;

/** One user as `GET /v1/admin/users` lists them. */
export const UserInfo = z.object({
  name: z.string(),
  createdAt: z.string(),
  /** Their jobs leased or running now, and queued now. */
  running: z.number().int().nonnegative(),
  queued: z.number().int().nonnegative(),
  /** Container-seconds run, decayed with the fair-share half-life (running jobs count so far). */
  usage: z.number().nonnegative(),
  /** usage ÷ weight: the lowest goes first in the lease. */
  priority: z.number().nonnegative(),
  /** Their part of all users' usage (0…1; 0 when nobody has used anything). */
  share: z.number().min(0).max(1),
  weight: z.number().positive(),
  /** Their quotas as in force (their own, else the lab's default; absent: no bound). */
  maxRunning: z.number().int().nonnegative().optional(),
  maxQueued: z.number().int().nonnegative().optional(),
});
export type UserInfo = z.infer<typeof UserInfo>;

export const UserList = z.object({ users: z.array(UserInfo) });
export type UserList = z.infer<typeof UserList>;

/** `DELETE /v1/admin/users/:name` answer: their queued jobs were cancelled, running ones finish. */
export const RemoveUserResponse = z.object({
  name: z.string(),
  cancelled: z.number().int().nonnegative(),
  running: z.number().int().nonnegative(),
});
export type RemoveUserResponse = z.infer<typeof RemoveUserResponse>;

/**
 * `GET /v1/jobs` and `GET /v1/batches` filters: a user lists their own (and
 * is refused `all` or another's name); the admin token lists everyone's, or
 * one user's with `user` (`all=true` says "everyone" explicitly).
 */
export const OWNER_FILTER = {
  user: UserName.optional(),
  all: z
    .enum(["true", "false", "1", "0"])
    .transform((text) => text === "true" || text === "1")
    .optional(),
};

/** What the audit log records. */
export const AuditAction = z.enum([
  "user.add",
  "user.rm",
  "user.rotate",
  "node.drain",
  "node.resume",
  "node.rm",
]);
export type AuditAction = z.infer<typeof AuditAction>;

/** One admin action: who did what to what, and when. */
export const AuditEntry = z.object({
  at: z.string(),
  /** Who: the token's holder (`admin` for the admin token). */
  actor: z.string(),
  action: AuditAction,
  /** A user's name, a node's id. */
  target: z.string(),
  /** What else the action said (quotas, a node's name, jobs cancelled). */
  details: z.record(z.string(), z.unknown()),
});
export type AuditEntry = z.infer<typeof AuditEntry>;

export const AuditPage = z.object({
  entries: z.array(AuditEntry),
  nextCursor: z.string().optional(),
});
export type AuditPage = z.infer<typeof AuditPage>;

/** `GET /v1/admin/audit` query: newest first. */
export const ListAuditQuery = z.object({
  limit: z.coerce.number().int().min(1).max(500).default(50),
  cursor: z.string().max(200).optional(),
});
export type ListAuditQuery = z.input<typeof ListAuditQuery>;

/** The details of a 429 QUOTA_EXCEEDED. */
export const QuotaDetails = z.object({
  user: z.string(),
  maxQueued: z.number().int(),
  queued: z.number().int(),
  submitted: z.number().int(),
});
export type QuotaDetails = z.infer<typeof QuotaDetails>;

/**
 * `GET /v1/whoami`: whom the token belongs to. A user's own token (or the
 * shared client token, user `default`): `{role: "client", user}`; the admin
 * token: `{role: "admin"}` (it submits as `default` and sees everyone's work).
 */
export const WhoAmI = z.discriminatedUnion("role", [
  z.object({ role: z.literal("client"), user: z.string() }),
  z.object({ role: z.literal("admin") }),
]);
export type WhoAmI = z.infer<typeof WhoAmI>;
