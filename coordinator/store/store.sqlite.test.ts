import { openSqliteUnderTest } from "../test-support/store-fixtures.js";
import { describeStoreSuite } from "./suite/index.js";

// The whole store suite on the SQLite store; SQLite's own checks (raw rows,
// query plans, pragmas) are in sqlite-only.test.ts.
describeStoreSuite("sqlite", openSqliteUnderTest);
