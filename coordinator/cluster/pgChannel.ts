import postgres from "postgres";
import type { WakeChannel } from "./clusterNotifier.js";

/** The channel every coordinator on a database LISTENs on. */
export const WAKE_CHANNEL = "labrun_wake";

/**
 * The wake channel on PostgreSQL: NOTIFY through a one-connection pool of
 * its own, LISTEN on the dedicated connection postgres.js keeps for it.
 * When that connection closes (a server restart, a network cut),
 * postgres.js connects again (with its backoff) and LISTENs again by
 * itself, then calls `onListen`; NOTIFYs sent while it was away are lost
 * (PostgreSQL queues them only for sessions that are listening), which is
 * what the coordinators' polling covers.
 *
 * @example
 * const channel = openPgWakeChannel("postgres://labrun@db/labrun");
 * await channel.listen((payload) => apply(payload), () => {});
 * await channel.publish('{"from":"c1","work":1}');
 */
export function openPgWakeChannel(url: string): WakeChannel {
  const sql = postgres(url, {
    max: 1,
    connect_timeout: 10,
    idle_timeout: 60,
    onnotice: () => {},
    connection: { application_name: "labrun-coordinator-wake" },
  });
  return {
    async publish(payload) {
      await sql.notify(WAKE_CHANNEL, payload);
    },
    async listen(onMessage, onListen) {
      await sql.listen(WAKE_CHANNEL, onMessage, onListen);
    },
    close: () => sql.end({ timeout: 5 }),
  };
}
