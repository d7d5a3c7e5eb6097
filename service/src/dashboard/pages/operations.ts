import type { Hono } from "hono";
import { html } from "hono/html";
import { type DashDeps, type DashEnv } from "../kit";
import { page } from "../layout";

// Operations (spec §11 "The dashboard"). To be built.

export function operationPages(app: Hono<DashEnv>, _deps: DashDeps) {
  app.get("/operations", (c) => page(c, { title: "Operations", body: html`<p>Coming soon.</p>` }));
}
