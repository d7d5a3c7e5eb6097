import type { Hono } from "hono";
import { html } from "hono/html";
import { type DashDeps, type DashEnv } from "../kit";
import { page } from "../layout";

// API Keys (spec §11 "The dashboard"). To be built.

export function keyPages(app: Hono<DashEnv>, _deps: DashDeps) {
  app.get("/keys", (c) => page(c, { title: "API Keys", body: html`<p>Coming soon.</p>` }));
}
