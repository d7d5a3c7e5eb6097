import type { Hono } from "hono";
import { html } from "hono/html";
import { type DashDeps, type DashEnv } from "../kit";
import { page } from "../layout";

// Applications (spec §11 "The dashboard"). To be built.

export function applicationPages(app: Hono<DashEnv>, _deps: DashDeps) {
  app.get("/applications", (c) => page(c, { title: "Applications", body: html`<p>Coming soon.</p>` }));
}
