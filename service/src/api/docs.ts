import { Hono } from "hono";
import type { OpenApiDocument } from "../openapi/document";
import { REFERENCE_PAGE_CSP, renderReferencePage } from "../openapi/reference-page";

// GET /api/openapi.json and GET /api/docs (spec §11): the contract, for anyone. They hold no data,
// so they need no key; the document is built on the first request and kept.

export function docsRoutes(build: () => OpenApiDocument) {
  let document: OpenApiDocument | undefined;
  let page: string | undefined;
  const current = () => (document ??= build());
  return new Hono()
    .get("/openapi.json", (c) => c.json(current()))
    .get("/docs", (c) => {
      page ??= renderReferencePage(current());
      c.header("Content-Security-Policy", REFERENCE_PAGE_CSP);
      c.header("X-Content-Type-Options", "nosniff");
      c.header("Referrer-Policy", "no-referrer");
      return c.html(page);
    });
}
