import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { AllServersFailedError, FailoverHttp, rotateServers, ServerList } from "./servers.js";

/** Real HTTP servers on loopback, each answering with its own status and name. */
const servers: Server[] = [];
async function serve(
  status: number,
  name: string,
  hits: string[] = [],
): Promise<{ url: string; server: Server }> {
  const server = createServer((request, response) => {
    hits.push(`${name} ${request.method} ${request.url}`);
    response.writeHead(status, { "content-type": "application/json" });
    response.end(JSON.stringify({ name }));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  servers.push(server);
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server };
}

/** A port that refuses: a server bound, then closed. */
async function deadUrl(): Promise<string> {
  const { url, server } = await serve(200, "dead");
  await new Promise((resolve) => server.close(resolve));
  return url;
}

/** A server that accepts connections and never answers (as a stopped process). */
async function silentUrl(): Promise<string> {
  const server = createServer(() => {});
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  servers.push(server);
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

afterEach(async () => {
  for (const server of servers.splice(0)) {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
});

describe("ServerList", () => {
  it("takes one URL or several, normalised, in order", () => {
    expect(ServerList.parse("http://a:1/")).toEqual(["http://a:1"]);
    expect(ServerList.parse(" http://a:1 , https://b:2//")).toEqual(["http://a:1", "https://b:2"]);
  });

  it("refuses a list with any bad entry, and an empty one", () => {
    expect(ServerList.safeParse("http://a:1,not a url").success).toBe(false);
    expect(ServerList.safeParse("ftp://a:1").success).toBe(false);
    expect(ServerList.safeParse(",").success).toBe(false);
  });

  it("rotates the first server to the end", () => {
    expect(rotateServers("http://a,http://b,http://c")).toBe("http://b,http://c,http://a");
    expect(rotateServers("http://a")).toBe("http://a");
  });
});

describe("FailoverHttp", () => {
  it("moves past a server that refuses, and then sticks to the one that answered", async () => {
    const hits: string[] = [];
    const dead = await deadUrl();
    const live = await serve(200, "live", hits);
    const http = new FailoverHttp([dead, live.url]);
    const first = await http.request("/x", { method: "GET" });
    expect(first.server).toBe(live.url);
    expect(JSON.parse(first.answer.text)).toEqual({ name: "live" });
    expect(http.current).toBe(live.url);
    await http.request("/y", { method: "GET" });
    expect(hits).toEqual(["live GET /x", "live GET /y"]);
    http.close();
  });

  it("tries every server once per request, also with many requests failing over at once", async () => {
    // Each failing request used to move a shared index by one: two at once
    // moved it past the live server and back, so the second tried the dead
    // one twice and never the live one (the kill -9 fault test's lost submits).
    const hits: string[] = [];
    const dead = await deadUrl();
    const live = await serve(200, "live", hits);
    const http = new FailoverHttp([dead, live.url]);
    const answers = await Promise.all(
      Array.from({ length: 8 }, (_, n) => http.request(`/${n}`, { method: "GET" })),
    );
    expect(answers.map(({ server }) => server)).toEqual(Array(8).fill(live.url));
    expect(hits).toHaveLength(8);
    expect(http.current).toBe(live.url);
    http.close();
  });

  it("moves past a 5xx, but takes a 4xx as the answer", async () => {
    const hits: string[] = [];
    const failing = await serve(503, "failing", hits);
    const refusing = await serve(404, "refusing", hits);
    const http = new FailoverHttp([failing.url, refusing.url]);
    const { answer, server } = await http.request("/z", { method: "POST", body: "{}" });
    expect(answer.status).toBe(404);
    expect(server).toBe(refusing.url);
    expect(hits).toEqual(["failing POST /z", "refusing POST /z"]);
    http.close();
  });

  it("answers with the last 5xx when every server answered one", async () => {
    const a = await serve(502, "a");
    const b = await serve(503, "b");
    const http = new FailoverHttp([a.url, b.url]);
    const { answer } = await http.request("/", { method: "GET" });
    expect(answer.status).toBe(503);
    http.close();
  });

  it("fails with every server named when none can be reached", async () => {
    const http = new FailoverHttp([await deadUrl(), await deadUrl()]);
    const failure = await http.request("/", { method: "GET" }).catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(AllServersFailedError);
    expect((failure as AllServersFailedError).servers).toHaveLength(2);
    expect(((failure as AllServersFailedError).cause as { code: string }).code).toBe(
      "ECONNREFUSED",
    );
    http.close();
  });

  it("takes a silent server for dead after timeoutMs when there is another", async () => {
    const silent = await silentUrl();
    const live = await serve(200, "live");
    const http = new FailoverHttp([silent, live.url]);
    const { server } = await http.request("/", { method: "GET", timeoutMs: 200 });
    expect(server).toBe(live.url);
    http.close();
  });

  it("with one server, waits on a silent one instead of timing out", async () => {
    const http = new FailoverHttp([await silentUrl()]);
    const pending = http.request("/", { method: "GET", timeoutMs: 50 });
    const outcome = await Promise.race([
      pending.then(
        () => "answered",
        () => "failed",
      ),
      new Promise((resolve) => setTimeout(() => resolve("still waiting"), 400)),
    ]);
    expect(outcome).toBe("still waiting");
    http.close();
    await pending.catch(() => undefined);
  });

  it("does not fail over a request its caller aborted", async () => {
    const hits: string[] = [];
    const silent = await silentUrl();
    const live = await serve(200, "live", hits);
    const http = new FailoverHttp([silent, live.url]);
    const controller = new AbortController();
    const pending = http.request("/", { method: "GET", signal: controller.signal });
    setTimeout(() => controller.abort(), 50);
    await expect(pending).rejects.toMatchObject({ name: "AbortError" });
    expect(hits).toEqual([]);
    http.close();
  });
});
