// Signing in to the dashboard (spec §11 "Who") over real HTTP, on PGlite (what `npm start` uses)
// and PostgreSQL: the sign-in page sets the management API's session cookie, a wrong password gets
// the one sentence, a person an owner added with a one-time password must choose their own before
// any other page, and signing out ends the session.
import { randomBytes } from "node:crypto";
import { DRIVERS } from "@reoclo/testbed/postgres-database";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestApp, serveTestApp, type ServedApp, type TestApp } from "./fixtures/app";
import { createTestDatabase, type TestDatabase } from "./fixtures/db";
import { addPerson, type Person } from "./fixtures/people";

describe.each(DRIVERS)("dashboard: signing in, a one-time password, signing out (%s)", (driver) => {
  let db: TestDatabase;
  let t: TestApp;
  let served: ServedApp;
  let origin: string;
  let person: Person;

  beforeAll(async () => {
    db = await createTestDatabase(driver);
    t = createTestApp(db);
    served = await serveTestApp(t);
    origin = new URL(served.base).origin;
    // Made as an owner or reoclo-admin makes people: with a one-time password.
    person = await addPerson(t, "developer");
  });

  afterAll(async () => {
    await served?.close();
    await t?.close();
    await db?.close();
  });

  const form = (fields: Record<string, string>, cookie?: string) => ({
    method: "POST",
    redirect: "manual" as const,
    headers: {
      "Content-Type": "application/x-www-form-urlencoded",
      Origin: origin,
      ...(cookie ? { Cookie: cookie } : {}),
    },
    body: new URLSearchParams(fields),
  });
  const get = (path: string, cookie: string) =>
    fetch(`${origin}${path}`, { headers: { Cookie: cookie }, redirect: "manual" });
  const tokenIn = (html: string) => /name="_csrf" value="([^"]+)"/.exec(html)?.[1] ?? "";

  it("sends a visitor to sign in, and answers a wrong password with the one sentence and no cookie", async () => {
    const home = await fetch(`${origin}/operations?status=running`, { redirect: "manual" });
    expect(home.status).toBe(303);
    expect(home.headers.get("location")).toBe(
      `/sign-in?next=${encodeURIComponent("/operations?status=running")}`,
    );
    const wrong = await fetch(`${origin}/sign-in`, form({ email: person.email, password: "not-it" }));
    const unknown = await fetch(
      `${origin}/sign-in`,
      form({ email: `nobody-${randomBytes(3).toString("hex")}@example.com`, password: "not-it" }),
    );
    expect(wrong.status).toBe(401);
    expect(unknown.status).toBe(401);
    expect(wrong.headers.getSetCookie()).toEqual([]);
    const sentence = (html: string) => /<div role="alert"[^>]*>\s*<p>([^<]*)<\/p>/.exec(html)?.[1];
    const [a, b] = [sentence(await wrong.text()), sentence(await unknown.text())];
    expect(a).toBeTruthy();
    expect(a).toBe(b);
  });

  it("makes a person with a one-time password choose their own before any other page, then lets them in", async () => {
    const signedIn = await fetch(
      `${origin}/sign-in`,
      form({ email: person.email, password: person.password, next: "/servers" }),
    );
    expect(signedIn.status).toBe(303);
    expect(signedIn.headers.get("location")).toBe("/account?first=1");
    const cookie = signedIn.headers.getSetCookie().find((c) => c.startsWith("reoclo_session="))!;
    expect(cookie).toMatch(/HttpOnly/i);
    expect(cookie).toMatch(/SameSite=Strict/i);
    const session = cookie.split(";")[0]!;

    // Every other page leads back to the password form.
    for (const path of ["/servers", "/keys", "/operations"]) {
      const res = await get(path, session);
      expect(res.status, path).toBe(303);
      expect(res.headers.get("location"), path).toBe("/account?first=1");
    }
    const account = await get("/account?first=1", session);
    expect(account.status).toBe(200);
    const html = await account.text();
    expect(html).toContain("one-time password");

    const newPassword = `mine-${randomBytes(9).toString("base64url")}`;
    const changed = await fetch(
      `${origin}/account/password`,
      form({ _csrf: tokenIn(html), current_password: person.password, new_password: newPassword }, session),
    );
    expect(changed.status).toBe(303);
    const servers = await get("/servers", session);
    expect(servers.status).toBe(200);

    // Signing out ends the session: the cookie no longer opens a page.
    const out = await fetch(`${origin}/sign-out`, form({ _csrf: tokenIn(await servers.text()) }, session));
    expect(out.status).toBe(303);
    const after = await get("/servers", session);
    expect(after.status).toBe(303);
    expect(after.headers.get("location")).toMatch(/^\/sign-in/);

    // The new password works; the one-time one no longer does.
    const again = await fetch(`${origin}/sign-in`, form({ email: person.email, password: newPassword }));
    expect(again.status).toBe(303);
    expect(again.headers.get("location")).toBe("/");
    const old = await fetch(`${origin}/sign-in`, form({ email: person.email, password: person.password }));
    expect(old.status).toBe(401);
  });
});
