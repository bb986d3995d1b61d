import { vi } from "vitest";
import { usePostgresDatabase } from "../../test-support/postgres.js";
import { describeStoreSuite } from "../suite/index.js";

// The whole store suite on the PostgreSQL store (a fresh schema per test);
// PostgreSQL's own checks (query plans, schema version, raw rows) are in
// postgres-only.test.ts, several coordinators at once in concurrency.test.ts.
const pg = usePostgresDatabase();
// Real transactions on a shared 2-core machine: more time than a unit test's 5 s.
vi.setConfig({ testTimeout: 30_000, hookTimeout: 30_000 });

describeStoreSuite("postgres", pg.openUnderTest);
