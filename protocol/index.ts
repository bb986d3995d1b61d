/**
 * labrun's wire protocol: every shape that crosses a process boundary, declared
 * once with zod. Coordinator, agent and client import from here; nobody
 * re-declares a shape.
 *
 * Glossary
 * - job: one program + input submitted by a client; runs at least once, and its
 *   record reaches exactly one terminal state.
 * - node / agent: one lab machine running `labrun agent`; it pulls work.
 * - slot: room for one concurrently running job on a node.
 * - lease: a job handed to one agent for a bounded time (`leaseId`); renewed by
 *   heartbeats, it expires when they stop and the job is queued again.
 * - outcome: what a finished job produced: a result, or an error with a code.
 * - drain: a node state in which it takes no new leases but finishes its jobs.
 */

export * from "./addresses.js";
export * from "./admin.js";
export * from "./agents.js";
export * from "./batches.js";
export * from "./errors.js";
export * from "./jobs.js";
export * from "./json-depth.js";
export * from "./limits.js";
export * from "./programs.js";
export * from "./runtimes.js";
export * from "./users.js";
