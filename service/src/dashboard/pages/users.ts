import type { Hono } from "hono";
import { html } from "hono/html";
import { type DashDeps, type DashEnv } from "../kit";
import { page } from "../layout";

// Users (spec §11 "The dashboard"). To be built.

export function userPages(app: Hono<DashEnv>, _deps: DashDeps) {
  app.get("/users", (c) => page(c, { title: "Users", body: html`<p>Coming soon.</p>` }));
}
