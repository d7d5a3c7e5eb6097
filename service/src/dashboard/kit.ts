import { createHmac, timingSafeEqual } from "node:crypto";
import type { Context } from "hono";
import { getCookie } from "hono/cookie";
import { html } from "hono/html";
import type { HtmlEscapedString } from "hono/utils/html";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import type { z } from "zod";
import type { ManagementEnv } from "../access/management";
import { allows, type UserPrincipal } from "../access/principal";
import { invoke, type Verb } from "../control/verb";
import { ServiceError } from "../errors";
import { SESSION_COOKIE } from "../people/sessions";
import { clientFacts, type ManagementDeps } from "../api/management/router";

// What every page of the dashboard shares: the signed-in person, calling a verb as them (the same
// `invoke` and permission check as the management API), asking whether they may (the verb's own
// `need`, never a rule of the page's), the form token, and the page around the content.

export type DashEnv = ManagementEnv;
export type DashContext = Context<DashEnv>;
export type Markup = HtmlEscapedString | Promise<HtmlEscapedString>;

export type DashDeps = ManagementDeps;

/** The signed-in person (the dashboard's middleware has found them, or redirected to sign-in). */
export const person = (c: DashContext): UserPrincipal => c.get("caller").principal as UserPrincipal;

/** Runs a verb as the signed-in person: its one permission check, its schema, its audit actor. */
export function run<S extends z.ZodType, O>(
  c: DashContext,
  deps: DashDeps,
  verb: Verb<S, O>,
  input: Record<string, unknown>,
): Promise<O> {
  const caller = c.get("caller");
  return invoke(verb, deps.svc, caller.principal, input, clientFacts(c, caller, deps));
}

/** True when the signed-in person may run the verb: what decides whether a button is shown. */
export function can(c: DashContext, verb: Verb<z.ZodType, unknown>): boolean {
  return verb.need === null || allows(c.get("caller").principal, verb.need);
}

// Forms: every write of the dashboard carries a token derived from the session's secret token (an
// HMAC, so no table and every instance agrees); a page of another site can neither read it nor
// compute it. The Origin check comes first (checkSameOrigin); this is the second lock.

const CSRF_FIELD = "_csrf";

export function csrfToken(c: Context): string {
  const token = getCookie(c, SESSION_COOKIE) ?? "";
  return createHmac("sha256", token).update("reoclo dashboard form").digest("base64url");
}

export const csrfField = (c: Context) =>
  html`<input type="hidden" name="${CSRF_FIELD}" value="${csrfToken(c)}" />`;

export function csrfValid(c: Context, sent: unknown): boolean {
  if (typeof sent !== "string") return false;
  const want = Buffer.from(csrfToken(c));
  const got = Buffer.from(sent);
  return want.length === got.length && timingSafeEqual(want, got);
}

export type FormValues = Record<string, string | string[]>;

/** The posted form's fields (a repeated name becomes a list), without the form token. */
export async function formValues(c: DashContext): Promise<FormValues> {
  const body = await c.req.parseBody({ all: true });
  // No prototype: a field named `__proto__` or `constructor` is a field, never Object's own.
  const out: FormValues = Object.create(null) as FormValues;
  for (const [name, value] of Object.entries(body)) {
    if (name === CSRF_FIELD) continue;
    const list = (Array.isArray(value) ? value : [value]).filter((v): v is string => typeof v === "string");
    out[name] = list.length === 1 && !name.endsWith("[]") ? list[0]! : list;
  }
  return out;
}

/** One field as text ("" when absent); a list field's values. */
export const text = (f: FormValues, name: string): string => {
  const v = Object.hasOwn(f, name) ? f[name] : undefined;
  return typeof v === "string" ? v : (v?.[0] ?? "");
};
export const list = (f: FormValues, name: string): string[] => {
  const own = (key: string) => (Object.hasOwn(f, key) ? f[key] : undefined);
  const v = own(name) ?? own(`${name}[]`);
  return v === undefined ? [] : typeof v === "string" ? [v] : v;
};
/** A text field, or undefined when left empty (so the verb's default applies). */
export const optional = (f: FormValues, name: string): string | undefined =>
  text(f, name).trim() || undefined;
/** A number field, or undefined when left empty; a non-number is passed on for the schema to refuse. */
export const optionalNumber = (f: FormValues, name: string): number | string | undefined => {
  const v = text(f, name).trim();
  if (!v) return undefined;
  const n = Number(v);
  return Number.isFinite(n) ? n : v;
};

/** After a write: back to a page, with one of its own notices named (never text from the request). */
export const redirectWith = (c: DashContext, path: string, notice?: string) =>
  c.redirect(
    notice ? `${path}${path.includes("?") ? "&" : "?"}done=${encodeURIComponent(notice)}` : path,
    303,
  );

/** The notice a page's redirect named, from that page's own sentences. */
export const noticeFrom = (c: DashContext, notices: Record<string, string>): string | undefined => {
  const done = c.req.query("done");
  return done !== undefined && Object.hasOwn(notices, done) ? notices[done] : undefined;
};

/** The error of a failed verb as a page shows it: its sentence, and which fields were wrong. */
export function errorText(err: unknown): ServiceError {
  if (err instanceof ServiceError) return err;
  throw err;
}

/** The HTTP status of a page that shows a refused write again. */
export const statusOf = (err: ServiceError) => err.status as ContentfulStatusCode;

/** Formats a time for a table: ISO in UTC to the minute, with the exact value in a title. */
export function when(value: string | Date | null | undefined, empty = "never"): Markup {
  if (!value) return html`<span class="muted">${empty}</span>`;
  const d = typeof value === "string" ? new Date(value) : value;
  const iso = d.toISOString();
  return html`<time datetime="${iso}" title="${iso}">${iso.slice(0, 16).replace("T", " ")} UTC</time>`;
}

/** The first 8 characters of an id: enough to tell rows apart in a table. */
export const shortId = (id: string) => id.slice(0, 8);

/** A duration as people read it: "850 ms", "1.2 s", "3 min 4 s", "2 h 5 min". */
export function duration(ms: number): string {
  if (ms < 1000) return `${ms} ms`;
  const s = Math.round(ms / 100) / 10;
  if (s < 60) return `${s} s`;
  const whole = Math.round(ms / 1000);
  if (whole < 3600) return `${Math.floor(whole / 60)} min ${whole % 60} s`;
  return `${Math.floor(whole / 3600)} h ${Math.floor((whole % 3600) / 60)} min`;
}
