import type { Hono } from "hono";
import { html } from "hono/html";
import { type DashDeps, type DashEnv } from "../kit";
import { page } from "../layout";

// Audit log (spec §11 "The dashboard"). To be built.

export function auditPages(app: Hono<DashEnv>, _deps: DashDeps) {
  app.get("/audit", (c) => page(c, { title: "Audit log", body: html`<p>Coming soon.</p>` }));
}
