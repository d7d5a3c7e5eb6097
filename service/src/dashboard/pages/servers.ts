import type { Hono } from "hono";
import { html } from "hono/html";
import { type DashDeps, type DashEnv } from "../kit";
import { page } from "../layout";

// Servers (spec §11 "The dashboard"). To be built.

export function serverPages(app: Hono<DashEnv>, _deps: DashDeps) {
  app.get("/servers", (c) => page(c, { title: "Servers", body: html`<p>Coming soon.</p>` }));
}
