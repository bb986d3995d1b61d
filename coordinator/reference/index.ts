import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { Hono } from "hono";
import { dashboardAssetsDir } from "../dashboard/index.js";

const swaggerUiDir = () =>
  dirname(createRequire(import.meta.url).resolve("swagger-ui-dist/package.json"));
/** coordinator/reference/public/, found as the dashboard's files are (tsc copies no HTML). */
const ownDir = () => join(dashboardAssetsDir(), "..", "..", "reference", "public");

/** The page's files, by the path they are served at, and where each comes from. */
const ASSETS: Record<string, { dir: () => string; file: string; type: string }> = {
  "/docs": { dir: ownDir, file: "index.html", type: "text/html; charset=utf-8" },
  "/docs/reference.js": {
    dir: ownDir,
    file: "reference.js",
    type: "text/javascript; charset=utf-8",
  },
  "/docs/swagger-ui.css": {
    dir: swaggerUiDir,
    file: "swagger-ui.css",
    type: "text/css; charset=utf-8",
  },
  "/docs/swagger-ui-bundle.js": {
    dir: swaggerUiDir,
    file: "swagger-ui-bundle.js",
    type: "text/javascript; charset=utf-8",
  },
};

/**
 * Only this origin: no CDN, no font or image host, nothing framed. Swagger
 * UI sets element styles from script and draws icons as data: SVGs, hence
 * those two allowances beyond the dashboard's policy.
 */
export const REFERENCE_CSP =
  "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; base-uri 'none'; " +
  "form-action 'self'; frame-ancestors 'none'; object-src 'none'";

const HEADERS = {
  "Content-Security-Policy": REFERENCE_CSP,
  "X-Content-Type-Options": "nosniff",
  "Referrer-Policy": "no-referrer",
  "Cache-Control": "no-cache",
};

/**
 * `GET /docs`: the API reference, Swagger UI (the swagger-ui-dist package)
 * rendering `/openapi.json`, served entirely by the coordinator so it works
 * on a lab network with no internet. Public, like the document. The files
 * (~1.5 MB) are read on the first request, not at start.
 *
 * @example
 * app.route("/", referenceRoutes());
 * await app.request("/docs"); // 200 text/html
 */
export function referenceRoutes() {
  const app = new Hono();
  for (const [path, { dir, file, type }] of Object.entries(ASSETS)) {
    let body: Uint8Array<ArrayBuffer> | undefined;
    app.get(path, (c) => {
      body ??= new Uint8Array(readFileSync(join(dir(), file)));
      return c.body(body, 200, { ...HEADERS, "Content-Type": type });
    });
  }
  return app;
}
