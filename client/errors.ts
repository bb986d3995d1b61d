/** Exit codes of the `labrun` CLI (DESIGN.md §3). */
export const EXIT = {
  ok: 0,
  jobFailed: 1,
  usage: 2,
  unreachable: 3,
} as const;

/** Bad command line or input: exit 2 with a one-line message. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}
