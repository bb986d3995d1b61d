import { describe, expect, it } from "vitest";
import { parseBytes, parseDuration, parseMemoryMb } from "./units.js";

describe("parseDuration", () => {
  it.each([
    ["10s", 10_000],
    ["500ms", 500],
    ["2m", 120_000],
    ["1.5s", 1500],
    ["3", 3000],
    ["7d", 604_800_000],
  ])("reads %s as %d ms", (text, ms) => expect(parseDuration(text)).toBe(ms));

  it.each(["", "soon", "-1s", "10 days"])("rejects %j", (text) =>
    expect(parseDuration(text)).toBeUndefined(),
  );
});

describe("parseMemoryMb", () => {
  it.each([
    ["256m", 256],
    ["1g", 1024],
    ["512MiB", 512],
    ["128", 128],
    ["2048k", 2],
  ])("reads %s as %d MiB", (text, mb) => expect(parseMemoryMb(text)).toBe(mb));

  it.each(["lots", "1t", ""])("rejects %j", (text) => expect(parseMemoryMb(text)).toBeUndefined());
});

describe("parseBytes", () => {
  it.each([
    ["64k", 65_536],
    ["1m", 1_048_576],
    ["8MiB", 8_388_608],
    ["4096", 4096],
    ["100b", 100],
  ])("reads %s as %d bytes", (text, bytes) => expect(parseBytes(text)).toBe(bytes));

  it.each(["much", "1t", "", "-5k"])("rejects %j", (text) =>
    expect(parseBytes(text)).toBeUndefined(),
  );
});
