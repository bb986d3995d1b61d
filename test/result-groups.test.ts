import { createServer, request, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SLOWDOWN, startTestCluster, type TestCluster } from "./helpers/cluster.js";

/**
 * A pass-through proxy between the agent and the coordinator that counts the
 * agent's result requests and holds each one back a little, so results that
 * finish meanwhile wait behind it: as on a busy coordinator, and what makes
 * the agent send them as a group.
 */
async function resultCountingProxy(target: string, holdMs: number) {
  const upstream = new URL(target);
  const counts = { singles: 0, groups: 0, groupedResults: 0 };
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", async () => {
      const body = Buffer.concat(chunks);
      const path = req.url ?? "/";
      const isGroup = req.method === "POST" && path.endsWith("/results/group");
      const isSingle = req.method === "POST" && path.endsWith("/results");
      if (isGroup) {
        counts.groups++;
        counts.groupedResults += (
          JSON.parse(body.toString()) as { results: unknown[] }
        ).results.length;
      } else if (isSingle) {
        counts.singles++;
      }
      if (isGroup || isSingle) await sleep(holdMs);
      const forward = request(
        {
          host: upstream.hostname,
          port: upstream.port,
          method: req.method,
          path,
          headers: { ...req.headers, host: upstream.host },
        },
        (answer) => {
          res.writeHead(answer.statusCode ?? 502, answer.headers);
          answer.pipe(res);
        },
      );
      forward.on("error", () => res.destroy());
      res.on("close", () => forward.destroy());
      forward.end(body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    counts,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

describe("results in groups, on a real coordinator and agent", () => {
  let cluster: TestCluster;
  let proxy: Awaited<ReturnType<typeof resultCountingProxy>>;

  beforeAll(async () => {
    cluster = await startTestCluster({ agents: [] });
    proxy = await resultCountingProxy(cluster.url, 400);
    await cluster.addAgent(4, { server: proxy.url });
  });

  afterAll(async () => {
    await cluster?.close();
    await proxy?.close();
  });

  it(
    "completes a batch whose results go back in groups, each item once with its value",
    async () => {
      const items = 32;
      const submitted = await fetch(`${cluster.url}/v1/batches`, {
        method: "POST",
        headers: {
          authorization: `Bearer ${cluster.tokens.client}`,
          "content-type": "application/json",
        },
        body: JSON.stringify({
          source: "exports.main = (n) => n * 2",
          inputs: Array.from({ length: items }, (_, index) => index),
        }),
      });
      expect(submitted.status).toBe(201);
      const { id } = (await submitted.json()) as { id: string };

      const deadline = Date.now() + 120_000 * SLOWDOWN;
      let batch = await cluster.client.getBatch(id);
      while (batch.state !== "succeeded" && batch.state !== "failed" && Date.now() < deadline) {
        await sleep(200);
        batch = await cluster.client.getBatch(id);
      }
      expect(batch.state).toBe("succeeded");
      expect(batch.counts.succeeded).toBe(items);

      const stream = await fetch(`${cluster.url}/v1/batches/${id}/results`, {
        headers: { authorization: `Bearer ${cluster.tokens.client}` },
      });
      const lines = (await stream.text())
        .trim()
        .split("\n")
        .map((line) => JSON.parse(line) as { index: number; ok: boolean; result: number });
      expect(lines.map((line) => [line.index, line.ok, line.result])).toEqual(
        Array.from({ length: items }, (_, index) => [index, true, index * 2]),
      );

      // Every result was posted once, and some of them shared a request.
      const { singles, groups, groupedResults } = proxy.counts;
      expect(groups).toBeGreaterThan(0);
      expect(groupedResults).toBeGreaterThanOrEqual(2 * groups);
      expect(singles + groupedResults).toBe(items);
      expect(singles + groups).toBeLessThan(items);
    },
    180_000 * SLOWDOWN,
  );
});
