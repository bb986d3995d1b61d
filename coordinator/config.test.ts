import { describe, expect, it } from "vitest";
import { parseCoordinatorConfig } from "./config.js";

describe("the store setting", () => {
  it("is left out for the SQLite store in the data dir", () => {
    expect(parseCoordinatorConfig({ dataDir: "/d" }).store).toBeUndefined();
  });

  it("takes a PostgreSQL URL", () => {
    expect(
      parseCoordinatorConfig({ dataDir: "/d", store: "postgres://labrun@db:5432/labrun" }).store,
    ).toBe("postgres://labrun@db:5432/labrun");
  });

  it("stops the start with a clear message for anything else", () => {
    expect(() => parseCoordinatorConfig({ dataDir: "/d", store: "sqlite:/d/labrun.db" })).toThrow(
      /invalid coordinator settings:[\s\S]*store must be a PostgreSQL URL/,
    );
  });
});
