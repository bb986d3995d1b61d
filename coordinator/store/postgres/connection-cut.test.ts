import { connect, createServer, type Server } from "node:net";
import { afterEach, expect, it } from "vitest";
import { usePostgresDatabase } from "../../test-support/postgres.js";
import { unhandledDuring } from "../../test-support/unhandled.js";
import { openPool, query } from "./database.js";

/**
 * postgres.js (3.4.9) as `npm install` patches it (scripts/patch-postgres.mjs)
 * and the store's pool uses it: a connection that is cut while it starts.
 */
const pg = usePostgresDatabase();
const servers: Server[] = [];
afterEach(() => {
  for (const server of servers.splice(0)) server.close();
});

/**
 * A loopback proxy to the server of `url` that resets the first connection
 * (a TCP RST, what the client reads as ECONNRESET, as when PostgreSQL
 * restarts) at the moment it sends the driver's array-types query, the
 * first statement of every new connection. Later connections pass.
 */
async function resetAtTypesQuery(url: string) {
  const target = new URL(url);
  const counts = { resets: 0 };
  const server = createServer((client) => {
    const upstream = connect(Number(target.port), target.hostname);
    upstream.on("error", () => client.destroy());
    client.on("error", () => upstream.destroy());
    upstream.pipe(client);
    client.on("data", (chunk) => {
      if (counts.resets === 0 && chunk.includes("pg_catalog.pg_type")) {
        counts.resets++;
        upstream.destroy();
        client.resetAndDestroy();
        return;
      }
      upstream.write(chunk);
    });
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  if (address === null || typeof address === "string") throw new Error("no proxy port");
  const proxied = new URL(url);
  proxied.port = String(address.port);
  return { url: proxied.toString(), counts };
}

// postgres.js drops the promise of its array-types fetch (porsager/postgres
// #1192, #1205): the reset rejected it unhandled, which killed a coordinator
// in a CI run of test/faults/pg-restart.test.ts. The query that opened the
// connection fails with the reset (the coordinator answers it 503).
it("takes a reset during the array-types fetch: the opening query fails, nothing is unhandled, the next runs", async () => {
  const proxy = await resetAtTypesQuery(pg.url());
  const sql = openPool(proxy.url, { max: 1 });
  try {
    const unhandled = await unhandledDuring(async () => {
      await expect(query(sql, "SELECT 1 AS one")).rejects.toMatchObject({ code: "ECONNRESET" });
    });
    expect(unhandled).toEqual([]);
    expect(proxy.counts.resets).toBe(1);
    expect(await query(sql, "SELECT 2 AS two")).toEqual([{ two: 2 }]);
  } finally {
    await sql.end({ timeout: 1 });
  }
}, 20_000);
