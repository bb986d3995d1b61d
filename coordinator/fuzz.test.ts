import fc from "fast-check";
import pino from "pino";
import { afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import type { z } from "zod";
import {
  API_ERROR_STATUS,
  ApiErrorBody,
  HeartbeatRequest,
  LeaseRequest,
  MAX_INPUT_BYTES,
  MAX_JSON_DEPTH,
  MAX_PROGRAM_BYTES,
  nestsDeeperThan,
  OUTCOME_ERROR_CODES,
  type Outcome,
  RegisterAgentRequest,
  ResultRequest,
  SubmitJobRequest,
} from "../protocol/index.js";
import { createApp } from "./app.js";
import { BODY_LIMITS } from "./bodyLimits.js";
import { Notifier } from "./notifier.js";
import { openTempCoordinator } from "./test-support/temp-coordinator.js";

// A longer search (FUZZ_RUNS) must not trip the default 5 s per test.
vi.setConfig({ testTimeout: 600_000 });
beforeAll(() => {
  const { FUZZ_SEED, FUZZ_RUNS } = process.env;
  fc.configureGlobal({
    numRuns: FUZZ_RUNS ? Number(FUZZ_RUNS) : 150,
    ...(FUZZ_SEED ? { seed: Number(FUZZ_SEED) } : {}),
  });
});

// ---------------------------------------------------------------------------
// The world: one coordinator over a temp data dir, as app.test.ts builds it.
// ---------------------------------------------------------------------------

interface Sent {
  method: string;
  path: string;
  headers: Record<string, string>;
  body?: string | Uint8Array;
}
interface Answer {
  status: number;
  text: string;
}
interface Agent {
  id: string;
  token: string;
}

const PROGRAM = "exports.main = (input) => input";
const OK_OUTCOME: Outcome = { ok: true, result: 1, logs: "", stats: { durationMs: 1 } };
const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function openWorld() {
  const { config, store, tokens, close } = openTempCoordinator("fuzz");
  cleanups.push(close);
  const notifier = new Notifier();
  const app = createApp({
    store,
    notifier,
    tokens,
    config,
    logger: pino({ level: "silent" }),
  });

  const send = async ({ method, path, headers, body }: Sent): Promise<Answer> => {
    const response = await app.fetch(
      new Request(`http://localhost${path}`, {
        method,
        headers,
        ...(body === undefined ? {} : { body }),
        // A long-poll the generators failed to keep short ends here, not in a test timeout.
        signal: AbortSignal.timeout(5_000),
      }),
    );
    return { status: response.status, text: await response.text() };
  };
  const json = async (method: string, path: string, token: string, body?: unknown) => {
    const answer = await send({
      method,
      path,
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    // biome-ignore lint/suspicious/noExplicitAny: setup reads known answers field by field
    return { status: answer.status, body: (answer.text ? JSON.parse(answer.text) : {}) as any };
  };
  const register = async (name: string): Promise<Agent> => {
    const { status, body } = await json("POST", "/v1/agents/register", tokens.agent, {
      name,
      hostname: "fuzz-host",
      slots: 256,
      version: "fuzz",
    });
    expect(status).toBe(200);
    return { id: body.agentId, token: body.token };
  };
  const submit = async () => {
    const { status, body } = await json("POST", "/v1/jobs", tokens.client, { source: PROGRAM });
    expect(status).toBe(201);
    return body.id as string;
  };
  /** LeaseIds handed out by freshLease: results for them are taken. */
  const leases = new Set<string>();
  let lastLeasedJob: string | undefined;
  /** A job leased to `agent` right now: its current leaseId. */
  const freshLease = async (agent: Agent) => {
    // The previous run's job, if its result was refused, would hold a slot for good.
    if (lastLeasedJob) await json("POST", `/v1/jobs/${lastLeasedJob}/cancel`, tokens.client);
    await submit();
    const { status, body } = await json("POST", `/v1/agents/${agent.id}/lease`, agent.token, {
      free: 1,
      waitMs: 0,
    });
    expect(status).toBe(200);
    expect(body.jobs).toHaveLength(1);
    const leaseId = body.jobs[0].leaseId as string;
    lastLeasedJob = body.jobs[0].id;
    leases.add(leaseId);
    return leaseId;
  };

  const agent = await register("fuzz-agent");
  const other = await register("other-agent");
  const removed = await register("removed-agent");
  expect((await json("DELETE", `/v1/admin/nodes/${removed.id}`, tokens.admin)).status).toBe(204);
  const queuedJob = await submit();
  const cancelledJob = await submit();
  expect((await json("POST", `/v1/jobs/${cancelledJob}/cancel`, tokens.client)).status).toBe(200);

  return {
    send,
    json,
    tokens,
    agent,
    other,
    removed,
    queuedJob,
    cancelledJob,
    freshLease,
    leases,
    lastLeasedJob: () => lastLeasedJob,
  };
}
type World = Awaited<ReturnType<typeof openWorld>>;

// ---------------------------------------------------------------------------
// The invariant every answer keeps.
// ---------------------------------------------------------------------------

/** Text that would give away the server's insides: stack frames, its own files. */
const LEAKS = [
  /\n\s+at /,
  /\bat [\w$.<>]+ \(/,
  /[\w-]+\.(?:ts|js|mjs|cjs):\d+:\d+/,
  /node_modules/,
  /file:\/\//,
  new RegExp(process.cwd().replace(/[.*+?^${}()|[\]\\]/g, "\\$&")),
];

function sentText(sent: Sent): string {
  const body = typeof sent.body === "string" ? sent.body : "";
  let path = sent.path;
  try {
    path = decodeURIComponent(sent.path);
  } catch {}
  return `${path}\n${Object.values(sent.headers).join("\n")}\n${body}`;
}

/** Never 5xx; a 4xx is the protocol's error body, with a code that fits its status. */
function expectSound(answer: Answer, sent: Sent): void {
  const where = `${sent.method} ${sent.path.slice(0, 120)} → ${answer.status} ${answer.text.slice(0, 300)}`;
  if (answer.status >= 500) throw new Error(`server error: ${where}`);
  if (answer.status < 400 || sent.method === "HEAD") return;
  let json: unknown;
  try {
    json = JSON.parse(answer.text);
  } catch {
    throw new Error(`error body is not JSON: ${where}`);
  }
  const parsed = ApiErrorBody.safeParse(json);
  if (!parsed.success) throw new Error(`error body is not {error: {code, message}}: ${where}`);
  if (API_ERROR_STATUS[parsed.data.error.code] !== answer.status) {
    throw new Error(`code ${parsed.data.error.code} does not fit status: ${where}`);
  }
  const echoed = sentText(sent);
  for (const leak of LEAKS) {
    if (leak.test(answer.text) && !leak.test(echoed)) throw new Error(`${leak} leaked: ${where}`);
  }
}

// ---------------------------------------------------------------------------
// Generators.
// ---------------------------------------------------------------------------

/**
 * JSON nested `depth` levels deep is written straight into the body text (a
 * value that deep would overflow JSON.stringify in the test itself): the
 * generators put this marker string where it goes.
 */
const DEEP = "\u0000deep:";
const deep = fc
  .tuple(fc.constantFrom(8, 200, 600, 1_500, 5_000, 40_000), fc.constantFrom("a", "o"))
  .map(([depth, kind]) => `${DEEP}${depth}:${kind}`);
const DEEP_IN_TEXT = /"\\u0000deep:(\d+):([ao])"/g;

/** A generated value as body text, the deep markers expanded. */
function toText(value: unknown): string {
  const text = JSON.stringify(value) ?? "null";
  return text.replace(DEEP_IN_TEXT, (_, depth: string, kind: string) => {
    const n = Number(depth);
    return kind === "a"
      ? `${"[".repeat(n)}${"]".repeat(n)}`
      : `${'{"a":'.repeat(n)}1${"}".repeat(n)}`;
  });
}

/** How deep a parsed JSON value nests (arrays and objects), without recursion. */
function depthOf(value: unknown): number {
  let max = 0;
  const stack: [unknown, number][] = [[value, 0]];
  for (let item = stack.pop(); item; item = stack.pop()) {
    const [node, depth] = item;
    if (typeof node !== "object" || node === null) continue;
    max = Math.max(max, depth + 1);
    for (const child of Object.values(node)) stack.push([child, depth + 1]);
  }
  return max;
}

const extremeString = fc.oneof(
  fc.constantFrom(
    "",
    " ",
    "\u0000",
    "NaN",
    "Infinity",
    "-1",
    "1e309",
    "0x1F",
    "null",
    "true",
    "[]",
    "{}",
    "__proto__",
    "constructor",
    "../../etc/passwd",
    "%00%ff",
    "\ud800",
    "\udfff\ud800",
    "𝒜🙂‍↔️",
    "\u202eevil",
    "\\",
    '"',
    "' OR 1=1 --",
    "x".repeat(70_000),
    "é".repeat(40_000),
  ),
  fc.string({ unit: "binary", maxLength: 100 }),
  fc.string({ maxLength: 30 }),
);
const extremeNumber = fc.oneof(
  fc.constantFrom(
    0,
    -0,
    -1,
    1,
    0.5,
    -0.5,
    15,
    16,
    99,
    100,
    256,
    257,
    2 ** 31,
    2 ** 53 + 2,
    Number.MAX_SAFE_INTEGER,
    1e308,
    -1e308,
    Number.MIN_VALUE,
    Number.NaN,
    Number.POSITIVE_INFINITY,
  ),
  fc.integer(),
  fc.double(),
);
/** Anything a field might wrongly hold. */
const extremeValue: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 4, arbitrary: extremeString },
  { weight: 4, arbitrary: extremeNumber },
  fc.boolean(),
  fc.constant(null),
  fc.constantFrom([], {}, [null], [[]], { "": {} }),
  fc.array(fc.jsonValue({ maxDepth: 2 }), { maxLength: 3 }),
  fc.dictionary(fc.string({ maxLength: 8 }), fc.jsonValue({ maxDepth: 1 }), { maxKeys: 3 }),
  deep,
);

type Fields = Record<string, fc.Arbitrary<unknown>>;

/**
 * Bodies built from a schema's fields: all valid, or each field valid,
 * extreme or missing, maybe extra keys; or not an object at all.
 */
function bodiesOf(fields: Fields): fc.Arbitrary<unknown> {
  const keys = Object.keys(fields);
  const valid = fc.record(fields);
  const mutated = fc
    .tuple(
      fc.record(
        Object.fromEntries(
          Object.entries(fields).map(([key, arbitrary]) => [
            key,
            fc.oneof({ weight: 2, arbitrary }, { weight: 1, arbitrary: extremeValue }),
          ]),
        ),
        { requiredKeys: [] },
      ),
      fc.option(
        fc.dictionary(
          fc.oneof(fc.string({ maxLength: 10 }), fc.constantFrom(...keys, "__proto__")),
          extremeValue,
          { maxKeys: 2 },
        ),
        { freq: 3 },
      ),
    )
    .map(([body, extra]) => ({ ...body, ...extra }));
  return fc.oneof(
    { weight: 3, arbitrary: valid },
    { weight: 6, arbitrary: mutated },
    { weight: 1, arbitrary: extremeValue },
    { weight: 1, arbitrary: fc.array(valid, { minLength: 1, maxLength: 2 }) },
  );
}

const labels = (max: number) =>
  fc.dictionary(fc.string({ maxLength: 64 }), fc.string({ maxLength: 256 }), { maxKeys: max });
const jsonInput = fc.oneof(fc.jsonValue({ maxDepth: 4 }), deep);

const submitBodies = bodiesOf({
  source: fc.oneof(fc.constant(PROGRAM), fc.string({ unit: "binary", minLength: 1 })),
  filename: fc.stringMatching(/^[A-Za-z0-9_-]{1,60}\.(c|m)?js$/),
  input: jsonInput,
  limits: fc.record(
    {
      timeoutMs: fc.integer({ min: 100, max: 3_600_000 }),
      memoryMb: fc.integer({ min: 16, max: 65_536 }),
      cpus: fc.double({ min: 0.05, max: 64, noNaN: true }),
    },
    { requiredKeys: [] },
  ),
  labels: labels(32),
});
const registerBodies = bodiesOf({
  name: fc.stringMatching(/^[A-Za-z0-9_.-]{1,64}$/),
  hostname: fc.string({ minLength: 1, maxLength: 255 }),
  slots: fc.integer({ min: 1, max: 256 }),
  version: fc.string({ minLength: 1, maxLength: 64 }),
  labels: labels(8),
});
const leaseBodies = bodiesOf({
  free: fc.integer({ min: 0, max: 256 }),
  waitMs: fc.integer({ min: 0, max: 5 }),
});
const heartbeatBodies = bodiesOf({
  running: fc.array(fc.string({ maxLength: 64 }), { maxLength: 40 }),
  // Optional agent stats: valid samples, or anything in their place.
  stats: fc.oneof(
    fc.record(
      {
        containerStartMs: fc.array(fc.double({ min: 0, max: 1e6, noNaN: true }), {
          maxLength: 20,
        }),
        warmRuns: fc.nat(),
        coldRuns: fc.nat(),
        future: extremeValue,
      },
      { requiredKeys: [] },
    ),
    extremeValue,
  ),
});
const stats = fc.record(
  {
    durationMs: fc.double({ min: 0, noNaN: true, noDefaultInfinity: true }),
    exitCode: fc.option(fc.integer()),
    logBytes: fc.nat(),
    logsTruncated: fc.boolean(),
    extra: fc.oneof(fc.jsonValue({ maxDepth: 2 }), deep),
  },
  { requiredKeys: ["durationMs"] },
);
const outcomes = fc.oneof(
  fc.record({
    ok: fc.constant(true),
    result: jsonInput,
    logs: fc.string({ unit: "binary", maxLength: 200 }),
    stats,
  }),
  fc.record({
    ok: fc.constant(false),
    error: fc.record(
      {
        code: fc.constantFrom(...OUTCOME_ERROR_CODES),
        message: fc.string(),
        detail: fc.string(),
      },
      { requiredKeys: ["code", "message"] },
    ),
    logs: fc.string({ maxLength: 200 }),
    stats,
  }),
);
/** `leaseId: null` stands for the agent's current lease, taken just before sending. */
const resultBodies = bodiesOf({
  leaseId: fc.oneof(fc.constant(null), fc.string({ maxLength: 64 })),
  outcome: outcomes,
});

/** Header values the Fetch API lets through (no NUL, CR or LF; Latin-1). */
const headerValue = fc.string({
  unit: fc.oneof(
    fc.integer({ min: 0x20, max: 0x7e }).map((code) => String.fromCharCode(code)),
    fc.integer({ min: 0x80, max: 0xff }).map((code) => String.fromCharCode(code)),
    fc.constant("\t"),
  ),
  maxLength: 80,
});
const contentTypes = fc.oneof(
  fc.constantFrom(
    undefined,
    "application/json",
    "application/json; charset=utf-8",
    "APPLICATION/JSON",
    "application/problem+json",
    "application/json-patch",
    "text/plain",
    "text/json",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=xyz",
    "application/octet-stream",
    "",
    ";",
    "application/",
  ),
  headerValue,
);
/** Raw request bodies: JSON of any shape, text, bytes, deep nesting. */
const rawBodies: fc.Arbitrary<string | Uint8Array> = fc.oneof(
  fc.json({ maxDepth: 4 }),
  fc.string({ unit: "binary", maxLength: 300 }),
  fc.uint8Array({ maxLength: 300 }),
  deep.map((marker) => toText(marker)),
  fc.constantFrom(
    "",
    " ",
    "{",
    "}",
    "[",
    "nul",
    "{}",
    "[]",
    "null",
    '"x"',
    "1e999",
    "-",
    "\ufeff{}",
  ),
);

/** Path parameters of odd shape: long, percent-encoded (well or badly), traversal. */
const pathSegments = fc.oneof(
  fc.string({ maxLength: 40 }).map(encodeURIComponent),
  fc.string({ unit: "binary", maxLength: 40 }).map((text) => {
    try {
      return encodeURIComponent(text);
    } catch {
      return "%ED%A0%80"; // a lone surrogate cannot be encoded; send its bytes anyway
    }
  }),
  fc.stringMatching(/^[A-Za-z0-9_-]{1,80}$/),
  fc.constantFrom(
    "%",
    "%zz",
    "%E0%A4%A",
    "%00",
    "%2F",
    "..",
    "%2e%2e",
    "j_",
    "a_",
    "__proto__",
    "x".repeat(8_000),
    "%41".repeat(2_000),
    "%C0%AF",
    ";",
    "@",
  ),
);
const queryValues = fc.oneof(
  extremeString.map((text) => (text.length > 300 ? text.slice(0, 300) : text)),
  extremeNumber.map(String),
  fc.constantFrom("queued", "cancelled", "1", "0", "500", "501", "60", "0.001", "czEw", "s1"),
);
/** Query strings: known keys with extreme values, repeated keys, bad encoding. */
const queryStrings = fc
  .array(
    fc.tuple(
      fc.oneof(
        fc.constantFrom("state", "limit", "cursor", "wait", "user", "all"),
        fc.string({ maxLength: 8 }),
      ),
      queryValues,
      fc.boolean(),
    ),
    { maxLength: 5 },
  )
  .chain((pairs) =>
    fc.oneof(
      fc.constant(
        pairs
          .map(([key, value, raw]) => {
            const encode = (text: string) => {
              try {
                return raw ? text.replace(/[#&\s]/g, "") : encodeURIComponent(text);
              } catch {
                return "%ED%A0%80";
              }
            };
            return `${encode(key)}=${encode(value)}`;
          })
          .join("&"),
      ),
      fc.constantFrom("", "&", "=", "%", "limit", "limit=%zz", "wait=%", "state[]=queued", "?"),
    ),
  );

// ---------------------------------------------------------------------------
// The routes.
// ---------------------------------------------------------------------------

type TokenKind = "client" | "admin" | "join" | "agent" | "otherAgent";

interface Route {
  name: string;
  method: string;
  /** Path with `:id` where the parameter goes. */
  path: string;
  /** Who may call it; undefined: anyone. */
  allowed?: TokenKind[];
  /** A parameter value that makes a valid request. */
  param?: (world: World) => string;
  /** A valid body (POST routes). */
  body?: (world: World) => Promise<unknown> | unknown;
  /** What a valid, authorised request answers. */
  expected: number;
}

const CLIENT: TokenKind[] = ["client", "admin"];
const ROUTES: Route[] = [
  { name: "health", method: "GET", path: "/healthz", expected: 200 },
  { name: "ready", method: "GET", path: "/readyz", expected: 200 },
  {
    name: "submit",
    method: "POST",
    path: "/v1/jobs",
    allowed: CLIENT,
    body: () => ({ source: PROGRAM, input: { a: 1 } }),
    expected: 201,
  },
  { name: "list", method: "GET", path: "/v1/jobs", allowed: CLIENT, expected: 200 },
  { name: "whoami", method: "GET", path: "/v1/whoami", allowed: CLIENT, expected: 200 },
  {
    name: "get",
    method: "GET",
    path: "/v1/jobs/:id",
    allowed: CLIENT,
    param: (world) => world.cancelledJob,
    expected: 200,
  },
  {
    name: "cancel",
    method: "POST",
    path: "/v1/jobs/:id/cancel",
    allowed: CLIENT,
    param: (world) => world.cancelledJob,
    expected: 200,
  },
  {
    name: "register",
    method: "POST",
    path: "/v1/agents/register",
    allowed: ["join"],
    body: () => ({ name: "n", hostname: "h", slots: 1, version: "v" }),
    expected: 200,
  },
  {
    name: "lease",
    method: "POST",
    path: "/v1/agents/:id/lease",
    allowed: ["agent"],
    param: (world) => world.agent.id,
    body: () => ({ free: 0, waitMs: 0 }),
    expected: 200,
  },
  {
    name: "heartbeat",
    method: "POST",
    path: "/v1/agents/:id/heartbeat",
    allowed: ["agent"],
    param: (world) => world.agent.id,
    body: () => ({ running: ["l_unknown"] }),
    expected: 200,
  },
  {
    name: "results",
    method: "POST",
    path: "/v1/agents/:id/results",
    allowed: ["agent"],
    param: (world) => world.agent.id,
    body: async (world) => ({ leaseId: await world.freshLease(world.agent), outcome: OK_OUTCOME }),
    expected: 200,
  },
  { name: "nodes", method: "GET", path: "/v1/admin/nodes", allowed: ["admin"], expected: 200 },
  { name: "stats", method: "GET", path: "/v1/admin/stats", allowed: ["admin"], expected: 200 },
  { name: "metrics", method: "GET", path: "/metrics", allowed: ["admin"], expected: 200 },
  { name: "openapi", method: "GET", path: "/openapi.json", expected: 200 },
  {
    name: "drain",
    method: "POST",
    path: "/v1/admin/nodes/:id/drain",
    allowed: ["admin"],
    param: (world) => world.other.id,
    expected: 200,
  },
  {
    name: "resume",
    method: "POST",
    path: "/v1/admin/nodes/:id/resume",
    allowed: ["admin"],
    param: (world) => world.other.id,
    expected: 200,
  },
  {
    // Removing a real node would take it away from later runs; an unknown one is 404.
    name: "delete node",
    method: "DELETE",
    path: "/v1/admin/nodes/:id",
    allowed: ["admin"],
    param: () => "a_unknown",
    expected: 404,
  },
];

const pathOf = (route: Route, param: string) => route.path.replace(":id", param);
const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

/** The headers of a caller that may use the route. */
function authorised(world: World, route: Route): Record<string, string> {
  const kind = route.allowed?.[0];
  if (kind === undefined) return {};
  const tokens: Record<TokenKind, string> = {
    client: world.tokens.client,
    admin: world.tokens.admin,
    join: world.tokens.agent,
    agent: world.agent.token,
    otherAgent: world.other.token,
  };
  return bearer(tokens[kind]);
}

/** A valid request to the route, with its path parameter and body. */
async function validRequest(world: World, route: Route): Promise<Sent> {
  const body = route.body ? await route.body(world) : undefined;
  return {
    method: route.method,
    path: pathOf(route, route.param?.(world) ?? ""),
    headers: {
      ...authorised(world, route),
      ...(body === undefined ? {} : { "content-type": "application/json" }),
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  };
}

// ---------------------------------------------------------------------------
// Properties.
// ---------------------------------------------------------------------------

/** Server view of a body: what JSON.parse makes of the text, or undefined if it is not JSON. */
function parsedBody(text: string): { value: unknown } | undefined {
  try {
    return { value: JSON.parse(text) };
  } catch {
    return undefined;
  }
}

interface SchemaCase {
  route: string;
  bodies: fc.Arbitrary<unknown>;
  schema: z.ZodType;
  limit: number;
  /** Makes a generated body sendable (a real lease, a short long-poll). */
  prepare?: (body: unknown, world: World) => Promise<unknown>;
  /** The answer to a schema-valid body, when it is not the route's usual one. */
  validStatus?: (body: unknown, world: World) => number;
  /** Bodies valid by the schema that the route refuses anyway, and how. */
  refuses?: (body: unknown) => number | undefined;
}

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === "object" && value !== null && !Array.isArray(value);

const SCHEMA_CASES: SchemaCase[] = [
  {
    route: "submit",
    bodies: submitBodies,
    schema: SubmitJobRequest,
    limit: BODY_LIMITS.submit(MAX_PROGRAM_BYTES, MAX_INPUT_BYTES),
    refuses: (body) => {
      if (!isObject(body)) return undefined;
      const { source, input } = body;
      if (typeof source === "string" && Buffer.byteLength(source) > MAX_PROGRAM_BYTES) return 413;
      if (input !== undefined && Buffer.byteLength(JSON.stringify(input)) > MAX_INPUT_BYTES) {
        return 413;
      }
      return undefined;
    },
  },
  {
    route: "register",
    bodies: registerBodies,
    schema: RegisterAgentRequest,
    limit: BODY_LIMITS.small,
  },
  {
    route: "lease",
    bodies: leaseBodies,
    schema: LeaseRequest,
    limit: BODY_LIMITS.small,
    // An extreme value may be a valid long wait (waitMs: 60000, or none: 20 s); keep it short.
    prepare: async (body) => {
      if (!isObject(body) || !LeaseRequest.safeParse(body).success) return body;
      const waitMs = body.waitMs ?? 20_000;
      return typeof waitMs === "number" && waitMs > 5 ? { ...body, waitMs: 0 } : body;
    },
  },
  {
    route: "heartbeat",
    bodies: heartbeatBodies,
    schema: HeartbeatRequest,
    limit: BODY_LIMITS.small,
  },
  {
    route: "results",
    bodies: resultBodies,
    schema: ResultRequest,
    limit: BODY_LIMITS.result,
    prepare: async (body, world) =>
      isObject(body) && body.leaseId === null
        ? { ...body, leaseId: await world.freshLease(world.agent) }
        : body,
    // A made-up lease is refused as stale; the agent's current one is taken.
    validStatus: (body, world) =>
      isObject(body) && typeof body.leaseId === "string" && world.leases.has(body.leaseId)
        ? 200
        : 409,
  },
];

/** The answer the route owes a body: exact when the body is valid, else 400 or 413. */
function expectedFor(
  testCase: SchemaCase,
  route: Route,
  world: World,
  text: string,
): number | number[] {
  if (Buffer.byteLength(text) > testCase.limit) return 413;
  const parsed = parsedBody(text);
  if (!parsed) return 400;
  // Deeper than the coordinator reads: refused before any schema recursion.
  if (depthOf(parsed.value) > MAX_JSON_DEPTH) return 400;
  const refused = testCase.refuses?.(parsed.value);
  if (refused !== undefined) return refused;
  if (!testCase.schema.safeParse(parsed.value).success) return 400;
  return testCase.validStatus?.(parsed.value, world) ?? route.expected;
}

function routeNamed(name: string): Route {
  const route = ROUTES.find((candidate) => candidate.name === name);
  if (!route) throw new Error(`no route ${name}`);
  return route;
}

describe("schema-shaped bodies with extreme values", () => {
  for (const testCase of SCHEMA_CASES) {
    it(`${testCase.route}: answers valid bodies as usual, others 400/413, never 5xx`, async () => {
      const world = await openWorld();
      const route = routeNamed(testCase.route);
      await fc.assert(
        fc.asyncProperty(testCase.bodies, async (generated) => {
          const body = testCase.prepare ? await testCase.prepare(generated, world) : generated;
          const text = toText(body);
          const sent: Sent = {
            method: route.method,
            path: pathOf(route, route.param?.(world) ?? ""),
            headers: { ...authorised(world, route), "content-type": "application/json" },
            body: text,
          };
          const answer = await world.send(sent);
          expectSound(answer, sent);
          const expected = expectedFor(testCase, route, world, text);
          expect([expected].flat(), answer.text.slice(0, 300)).toContain(answer.status);
        }),
      );
    });
  }
});

const BODY_ROUTES = ROUTES.filter((route) => route.method === "POST");
/** Routes that read their body (the others take none and ignore one). */
const READS_BODY = new Set(SCHEMA_CASES.map((testCase) => testCase.route));
const limitOf = (route: Route) =>
  SCHEMA_CASES.find((testCase) => testCase.route === route.name)?.limit ?? BODY_LIMITS.small;
const isJsonType = (contentType: string) =>
  /^application\/(?:[a-z0-9.+-]+\+)?json$/i.test(contentType.split(";")[0]?.trim() ?? "");

describe("arbitrary bodies and content types", () => {
  for (const route of BODY_ROUTES) {
    it(`${route.name}: never 5xx; a body that says it is not JSON is 415`, async () => {
      const world = await openWorld();
      await fc.assert(
        fc.asyncProperty(rawBodies, contentTypes, async (body, contentType) => {
          const sent: Sent = {
            method: route.method,
            path: pathOf(route, route.param?.(world) ?? ""),
            headers: {
              ...authorised(world, route),
              ...(contentType === undefined ? {} : { "content-type": contentType }),
            },
            body,
          };
          const answer = await world.send(sent);
          expectSound(answer, sent);
          const size = typeof body === "string" ? Buffer.byteLength(body) : body.byteLength;
          const notJson = contentType !== undefined && !isJsonType(contentType);
          // The size is checked first: an oversized body is 413 whatever it claims to be.
          if (READS_BODY.has(route.name) && notJson && size <= limitOf(route)) {
            expect(answer.status).toBe(415);
          }
        }),
      );
    });
  }
});

describe("path parameters", () => {
  for (const route of ROUTES.filter((candidate) => candidate.param)) {
    it(`${route.name}: odd ids are 4xx, never 5xx`, async () => {
      const world = await openWorld();
      await fc.assert(
        fc.asyncProperty(pathSegments, async (segment) => {
          const valid = await validRequest(world, route);
          const sent: Sent = { ...valid, path: pathOf(route, segment) };
          const answer = await world.send(sent);
          expectSound(answer, sent);
        }),
      );
    });
  }

  it("unknown paths and methods under every prefix are 404 JSON, never 5xx", async () => {
    const world = await openWorld();
    const prefixes = [
      "",
      "/v1",
      "/v1/jobs",
      "/v1/agents",
      "/v1/admin",
      "/v1/admin/nodes",
      "/v1/admin/stats",
      "/v1/whoami",
      "/metrics",
      "/openapi.json",
    ];
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...prefixes),
        fc.array(pathSegments, { maxLength: 3 }),
        fc.constantFrom("GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD"),
        async (prefix, segments, method) => {
          const sent: Sent = {
            method,
            path: `${prefix}/${segments.join("/")}`,
            headers: bearer(world.tokens.admin),
          };
          expectSound(await world.send(sent), sent);
        },
      ),
    );
  });
});

describe("query strings", () => {
  for (const route of ROUTES.filter((candidate) => candidate.method === "GET")) {
    it(`${route.name}: any query is answered 2xx or 400, never 5xx`, async () => {
      const world = await openWorld();
      await fc.assert(
        fc.asyncProperty(queryStrings, async (query) => {
          const valid = await validRequest(world, route);
          const sent: Sent = { ...valid, path: `${valid.path}?${query}` };
          const answer = await world.send(sent);
          expectSound(answer, sent);
          // A user asking to list another's work (user=, all=) is refused: 403.
          const othersWork = /(^|&)(user|all)=/.test(query) ? [403] : [];
          expect([route.expected, 400, ...othersWork]).toContain(answer.status);
        }),
      );
    });
  }

  it("long-polls a queued job for a tiny wait and answers it as it is", async () => {
    const world = await openWorld();
    await fc.assert(
      fc.asyncProperty(fc.double({ min: 0, max: 0.02, noNaN: true }), async (wait) => {
        const sent: Sent = {
          method: "GET",
          path: `/v1/jobs/${world.queuedJob}?wait=${wait}`,
          headers: bearer(world.tokens.client),
        };
        const answer = await world.send(sent);
        expect(answer.status).toBe(200);
        expect(JSON.parse(answer.text).state).toBe("queued");
      }),
      { numRuns: 20 },
    );
  });
});

type Credential = TokenKind | "none" | "removedAgent" | "unknown" | "malformed";

describe("tokens", () => {
  const credentials = fc.oneof(
    fc.constantFrom<Credential>(
      "none",
      "client",
      "admin",
      "join",
      "agent",
      "otherAgent",
      "removedAgent",
    ),
    fc.tuple(fc.constantFrom<Credential>("unknown", "malformed"), headerValue),
  );

  /** The header for a credential, and the answer a route owes it. */
  function credential(world: World, route: Route, which: Credential | [Credential, string]) {
    const [kind, noise] = Array.isArray(which) ? which : [which, ""];
    const known: Record<string, string> = {
      client: world.tokens.client,
      admin: world.tokens.admin,
      join: world.tokens.agent,
      agent: world.agent.token,
      otherAgent: world.other.token,
      removedAgent: world.removed.token,
    };
    const headers: Record<string, string> =
      kind === "none"
        ? {}
        : kind === "unknown"
          ? bearer(`${world.tokens.client}${noise.replace(/[^A-Za-z0-9]/g, "") || "x"}`)
          : kind === "malformed"
            ? { authorization: noise }
            : bearer(known[kind] ?? "");
    const allowed = route.allowed;
    const status =
      allowed === undefined
        ? route.expected
        : !(kind in known) || kind === "removedAgent"
          ? 401
          : allowed.includes(kind as TokenKind)
            ? route.expected
            : 403;
    return { headers, status };
  }

  for (const route of ROUTES) {
    it(`${route.name}: missing or bad tokens are 401, other roles 403, the right one passes`, async () => {
      const world = await openWorld();
      await fc.assert(
        fc.asyncProperty(credentials, async (which) => {
          const valid = await validRequest(world, route);
          const { headers, status } = credential(world, route, which);
          const { authorization: _, ...rest } = valid.headers;
          const sent: Sent = { ...valid, headers: { ...rest, ...headers } };
          const answer = await world.send(sent);
          expectSound(answer, sent);
          expect(answer.status, answer.text.slice(0, 200)).toBe(status);
        }),
        { numRuns: 60 },
      );
    });
  }
});

describe("the invariant itself", () => {
  const sent: Sent = { method: "POST", path: "/v1/jobs", headers: {}, body: "{}" };
  const error = (message: string) =>
    JSON.stringify({ error: { code: "VALIDATION_ERROR", message } });

  it("flags a 5xx, a stack frame, a server path, a body of another shape, a code of another status", () => {
    const answers: Answer[] = [
      { status: 500, text: JSON.stringify({ error: { code: "INTERNAL", message: "x" } }) },
      { status: 400, text: error("boom\n    at parse (validate.ts:12:3)") },
      { status: 400, text: error(`cannot open ${process.cwd()}/data`) },
      { status: 400, text: error("in node_modules/hono/dist/index.js") },
      { status: 400, text: "Bad Request" },
      { status: 400, text: JSON.stringify({ message: "x" }) },
      { status: 404, text: error("x") },
    ];
    for (const answer of answers) expect(() => expectSound(answer, sent), answer.text).toThrow();
  });

  it("lets an error echo what the request itself said", () => {
    const echoing: Sent = { ...sent, body: '{"node_modules":1}' };
    const answer = { status: 400, text: error('Unrecognized key: "node_modules"') };
    expect(() => expectSound(answer, echoing)).not.toThrow();
  });
});

describe("regressions found by fuzzing", () => {
  /** `[[…]]` nested `depth` levels. */
  const nested = (depth: number) => `${"[".repeat(depth)}${"]".repeat(depth)}`;
  const post = (world: World, path: string, token: string, body: string) =>
    world.send({
      method: "POST",
      path,
      headers: { ...bearer(token), "content-type": "application/json" },
      body,
    });
  const outcomeWith = (result: string, stats = '{"durationMs":1}') =>
    `{"ok":true,"result":${result},"logs":"","stats":${stats}}`;

  it("answers 400, not 500, to a job input nested 5000 levels deep", async () => {
    const world = await openWorld();
    const answer = await post(
      world,
      "/v1/jobs",
      world.tokens.client,
      `{"source":"x","input":${nested(5_000)}}`,
    );
    expectSound(answer, { method: "POST", path: "/v1/jobs", headers: {} });
    expect(answer.status).toBe(400);
    expect(JSON.parse(answer.text).error.message).toMatch(/deeper than 512/);
  });

  it("answers 400, not 500, to a result nested 5000 levels deep", async () => {
    const world = await openWorld();
    const path = `/v1/agents/${world.agent.id}/results`;
    const leaseId = await world.freshLease(world.agent);
    const body = `{"leaseId":"${leaseId}","outcome":${outcomeWith(nested(5_000))}}`;
    const answer = await post(world, path, world.agent.token, body);
    expectSound(answer, { method: "POST", path, headers: {} });
    expect(answer.status).toBe(400);
  });

  it("answers 400, not 500, to deep run stats on a current lease (passthrough keys)", async () => {
    const world = await openWorld();
    const path = `/v1/agents/${world.agent.id}/results`;
    const leaseId = await world.freshLease(world.agent);
    const stats = `{"durationMs":1,"extra":${nested(5_000)}}`;
    const body = `{"leaseId":"${leaseId}","outcome":${outcomeWith("1", stats)}}`;
    const answer = await post(world, path, world.agent.token, body);
    expect(answer.status).toBe(400);
  });

  it("takes JSON exactly MAX_JSON_DEPTH deep end to end, and refuses one level more", async () => {
    const world = await openWorld();
    // The body's own object is one level.
    const input = nested(MAX_JSON_DEPTH - 1);
    const submitted = await post(
      world,
      "/v1/jobs",
      world.tokens.client,
      `{"source":"x","input":${input}}`,
    );
    expect(submitted.status).toBe(201);
    const deeper = `{"source":"x","input":[${input}]}`;
    expect((await post(world, "/v1/jobs", world.tokens.client, deeper)).status).toBe(400);

    const path = `/v1/agents/${world.agent.id}/results`;
    const leaseId = await world.freshLease(world.agent);
    // leaseId object, outcome, result: three levels around the result.
    const result = nested(MAX_JSON_DEPTH - 2);
    const body = `{"leaseId":"${leaseId}","outcome":${outcomeWith(result)}}`;
    expect((await post(world, path, world.agent.token, body)).status).toBe(200);
    const job = await world.json("GET", `/v1/jobs/${world.lastLeasedJob()}`, world.tokens.client);
    expect(job.status).toBe(200);
    expect(job.body.state).toBe("succeeded");
  });

  it("reads nesting only outside strings: brackets and escaped quotes in text do not count", () => {
    const text = JSON.stringify({ a: '[[[[\\"{{{{', b: [[1]] });
    expect(nestsDeeperThan(text, 3)).toBe(false);
    expect(nestsDeeperThan(text, 2)).toBe(true);
  });
});
