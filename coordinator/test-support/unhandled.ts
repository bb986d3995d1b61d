/**
 * Runs `body`, then returns the promise rejections left unhandled meanwhile
 * (and in the 50 ms after: Node reports one once the microtasks of the
 * macrotask that rejected it have run). A coordinator dies of any of them.
 * Not part of the build.
 */
export async function unhandledDuring(body: () => Promise<void>): Promise<unknown[]> {
  const unhandled: unknown[] = [];
  const onUnhandled = (reason: unknown) => unhandled.push(reason);
  process.on("unhandledRejection", onUnhandled);
  try {
    await body();
    await new Promise((resolve) => setTimeout(resolve, 50));
  } finally {
    process.off("unhandledRejection", onUnhandled);
  }
  return unhandled;
}
