import { describe, expect, it } from "vitest";
import { ApiError } from "../errors.js";
import { isStoreUnavailable } from "./unavailable.js";

describe("isStoreUnavailable", () => {
  it("is true for a database that is down, restarting, or lost its socket", () => {
    for (const code of ["ECONNREFUSED", "CONNECTION_CLOSED", "57P01", "57P03", "08006", "53300"]) {
      expect(isStoreUnavailable(Object.assign(new Error("x"), { code })), code).toBe(true);
    }
  });

  it("is false for errors of the request or of the program", () => {
    for (const error of [
      new ApiError("NOT_FOUND", "no such job"),
      Object.assign(new Error("unique_violation"), { code: "23505" }),
      new TypeError("undefined is not a function"),
      undefined,
      "text",
    ]) {
      expect(isStoreUnavailable(error)).toBe(false);
    }
  });
});
