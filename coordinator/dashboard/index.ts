import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { Hono } from "hono";

/**
 * The page's files, by the path they are served at. The page holds no data:
 * it asks for the admin token and reads everything from the JSON API.
 */
const ASSETS = {
  "/": { file: "index.html", type: "text/html; charset=utf-8" },
  "/dashboard/app.js": { file: "app.js", type: "text/javascript; charset=utf-8" },
  "/dashboard/style.css": { file: "style.css", type: "text/css; charset=utf-8" },
  "/dashboard/icon.svg": { file: "icon.svg", type: "image/svg+xml" },
} as const;

/**
 * Only this origin's own files, no inline script or style, no framing: the
 * token in sessionStorage is only reachable by the page's own script.
 */
export const DASHBOARD_CSP =
  "default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'; object-src 'none'";

const HEADERS = {
  "Content-Security-Policy": DASHBOARD_CSP,
  "X-Content-Type-Options": "nosniff",
  "Referrer-Policy": "no-referrer",
  // Small files, read once at start: revalidating each load keeps an upgraded page current.
  "Cache-Control": "no-cache",
};

/**
 * `coordinator/dashboard/public/`. tsc does not copy non-TS files to dist/,
 * so from dist/coordinator/dashboard/ this walks up to the labrun package
 * root and takes the source folder.
 */
export function dashboardAssetsDir(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  const beside = join(here, "public");
  if (existsSync(beside)) return beside;
  for (let dir = here; ; ) {
    const candidate = join(dir, "coordinator", "dashboard", "public");
    if (existsSync(join(dir, "package.json")) && existsSync(candidate)) return candidate;
    const parent = dirname(dir);
    if (parent === dir) {
      throw new Error(
        `cannot find the dashboard files (coordinator/dashboard/public) above ${here}`,
      );
    }
    dir = parent;
  }
}

/**
 * The dashboard (DESIGN.md §3: at `/`): a static page, its script and style,
 * read once when the app is built. Public, like any login page; the data it
 * shows comes from the admin API with the token the user enters.
 *
 * @example
 * app.route("/", dashboardRoutes());
 * await app.request("/"); // 200 text/html
 */
export function dashboardRoutes(assetsDir: string = dashboardAssetsDir()) {
  const app = new Hono();
  for (const [path, { file, type }] of Object.entries(ASSETS)) {
    const body = readFileSync(join(assetsDir, file));
    app.get(path, (c) => c.body(body, 200, { ...HEADERS, "Content-Type": type }));
  }
  return app;
}
