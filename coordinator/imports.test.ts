import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");

/** The coordinator's and the protocol's own modules (tests and test support aside). */
function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return entry.name === "test-support" ? [] : sources(path);
    return entry.name.endsWith(".ts") && !entry.name.endsWith(".test.ts") ? [path] : [];
  });
}

/** Relative imports and re-exports of a module, `import type` included, as file paths. */
function importsOf(file: string): string[] {
  const text = readFileSync(file, "utf8");
  return [...text.matchAll(/(?:^|\n)\s*(?:import|export)[^;]*?\sfrom\s+"(\.[^"]+)"/g)].map(
    ([, target]) => resolve(dirname(file), (target ?? "").replace(/\.js$/, ".ts")),
  );
}

/** One import circle, as module paths from the root, or undefined. */
function findCircle(graph: Map<string, string[]>): string[] | undefined {
  const state = new Map<string, "open" | "done">();
  const stack: string[] = [];
  const visit = (node: string): string[] | undefined => {
    if (state.get(node) === "done") return undefined;
    if (state.get(node) === "open") return [...stack.slice(stack.indexOf(node)), node];
    state.set(node, "open");
    stack.push(node);
    for (const next of graph.get(node) ?? []) {
      const circle = visit(next);
      if (circle) return circle;
    }
    stack.pop();
    state.set(node, "done");
    return undefined;
  };
  for (const node of graph.keys()) {
    const circle = visit(node);
    if (circle) return circle.map((path) => relative(ROOT, path));
  }
  return undefined;
}

describe("the coordinator's modules", () => {
  it("import one another without a circle, type imports included", () => {
    const files = [...sources(join(ROOT, "coordinator")), ...sources(join(ROOT, "protocol"))];
    const graph = new Map(files.map((file) => [file, importsOf(file)]));
    expect(graph.get(join(ROOT, "coordinator", "app.ts"))?.length).toBeGreaterThan(5);
    expect(findCircle(graph)).toBeUndefined();
  });

  it("would see the circle app.ts ⇄ routes had before routeTypes.ts", () => {
    const app = join(ROOT, "coordinator", "app.ts");
    const jobs = join(ROOT, "coordinator", "routes", "jobs.ts");
    expect(
      findCircle(
        new Map([
          [app, [jobs]],
          [jobs, [app]],
        ]),
      ),
    ).toEqual(["coordinator/app.ts", "coordinator/routes/jobs.ts", "coordinator/app.ts"]);
  });
});
