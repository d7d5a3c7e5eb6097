import type { Hono } from "hono";
import { html } from "hono/html";
import { type DashDeps, type DashEnv } from "../kit";
import { page } from "../layout";

// Registry credentials (spec §11 "The dashboard"). To be built.

export function credentialPages(app: Hono<DashEnv>, _deps: DashDeps) {
  app.get("/credentials", (c) => page(c, { title: "Registry credentials", body: html`<p>Coming soon.</p>` }));
}
