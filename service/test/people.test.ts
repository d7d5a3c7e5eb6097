import { randomBytes } from "node:crypto";
import { aclPermissions, ALL_PERMISSIONS, PRESET_ACLS, roleAcl, type ErrorEnvelope } from "@reoclo/protocol";
import { DRIVERS } from "@reoclo/testbed/postgres-database";
import { and, asc, eq, inArray } from "drizzle-orm";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { ADMIN } from "../src/access/principal";
import { authMe, usersList } from "../src/control/people";
import { invoke } from "../src/control/verb";
import { openDatabase, type DatabaseHandle } from "../src/db/database";
import { auditEvents, integrationKeys } from "../src/db/schema";
import { generateIntegrationKey } from "../src/keys/key-format";
import { createTestApp, fromPeer, serveTestApp, type ServedApp, type TestApp } from "./fixtures/app";
import { createTestDatabase, dumpAllTables, testContext, type TestDatabase } from "./fixtures/db";
import { seedOrg } from "./fixtures/entities";
import { addPerson, managementBase, signInCookie, verbServices, type Person } from "./fixtures/people";

// Spec §11 "Who": people and roles, sign-in and sessions, through the management API over HTTP.
// The service trusts the loopback proxy, so each test signs in from its own X-Forwarded-For
// address and keeps its own sign-in budget.

const TRUST_LOOPBACK = { REOCLO_TRUSTED_PROXIES: "127.0.0.1/32" };
const USER_AGENT = "people-test/1.0";

let addressCounter = 1;
/** A client address of its own (TEST-NET-2), sent as X-Forwarded-For through the trusted loopback. */
const newAddress = () => `198.51.100.${addressCounter++}`;

interface Instance {
  readonly t: TestApp;
  readonly served: ServedApp;
  /** `http://127.0.0.1:<port>/api` */
  readonly api: string;
  readonly origin: string;
}

describe.each(DRIVERS)("people, roles and sessions on %s", (driver) => {
  let db: TestDatabase;
  let secondDb: DatabaseHandle | undefined;
  let a: Instance;
  /** Another instance on the same PostgreSQL database; on PGlite the same instance. */
  let b: Instance;
  let shiftMs = 0;
  const now = () => new Date(Date.now() + shiftMs);

  const serve = async (t: TestApp): Promise<Instance> => {
    const served = await serveTestApp(t);
    const api = managementBase(served.base);
    return { t, served, api, origin: new URL(api).origin };
  };

  beforeAll(async () => {
    db = await createTestDatabase(driver);
    a = await serve(createTestApp(db, { env: TRUST_LOOPBACK, now }));
    if (driver === "postgres") {
      secondDb = await openDatabase({ databaseUrl: db.url, maxConnections: 4 });
      b = await serve(createTestApp(secondDb, { env: TRUST_LOOPBACK, now }));
    } else b = a;
  });
  afterAll(async () => {
    for (const i of new Set([a, b])) {
      await i?.served.close();
      await i?.t.close();
    }
    await secondDb?.close();
    await db?.close();
  });
  afterEach(() => {
    shiftMs = 0;
  });

  /** A browser of one client address: its session cookie, same-origin writes. */
  const browser = (address = newAddress()) => {
    let cookie: string | undefined;
    const call = (
      on: Instance,
      method: string,
      path: string,
      body?: unknown,
      headers: Record<string, string> = {},
    ) =>
      fetch(`${on.api}${path}`, {
        method,
        headers: {
          "User-Agent": USER_AGENT,
          "X-Forwarded-For": address,
          ...(cookie ? { Cookie: cookie } : {}),
          ...(method === "GET" ? {} : { Origin: on.origin }),
          ...(body === undefined ? {} : { "Content-Type": "application/json" }),
          ...headers,
        },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
    return {
      address,
      call,
      get: (on: Instance, path: string) => call(on, "GET", path),
      async signIn(person: { email: string; password: string }, on = a) {
        cookie = await signInCookie(on.api, person, { "X-Forwarded-For": address, Origin: on.origin });
        return cookie;
      },
      useCookie(c: string) {
        cookie = c;
      },
    };
  };

  /** A person added by reoclo-admin, and a browser signed in as them. */
  const signedIn = async (role: Person["role"], opts: { org?: string } = {}) => {
    const person = await addPerson(a.t, role, opts);
    const signedInBrowser = browser();
    await signedInBrowser.signIn(person);
    return { person, browser: signedInBrowser };
  };

  const auditRows = async (actions: string[]) => {
    await a.t.deps.audit.flush();
    if (b !== a) await b.t.deps.audit.flush();
    return db.db
      .select()
      .from(auditEvents)
      .where(inArray(auditEvents.action, actions))
      .orderBy(asc(auditEvents.id));
  };

  it("reoclo-admin adds the first owner, who signs in and is told who they are", async () => {
    const owner = await addPerson(a.t, "owner", {
      email: `  First.Owner-${randomBytes(3).toString("hex")}@Example.COM `,
    });
    expect(owner.email).toMatch(/^first\.owner-[0-9a-f]{6}@example\.com$/);
    expect(owner.password).toMatch(/^[A-Za-z2-8]{20}$/);

    const address = newAddress();
    const res = await fetch(`${a.api}/auth/login`, {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-Forwarded-For": address, "User-Agent": USER_AGENT },
      // Sign-in takes the email in any case and with spaces around it.
      body: JSON.stringify({ email: ` ${owner.email.toUpperCase()} `, password: owner.password }),
    });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({
      user: { id: owner.id, email: owner.email, role: "owner", must_change_password: true },
    });
    const cookie = res.headers.getSetCookie().find((c) => c.startsWith("reoclo_session="))!;

    const me = await fetch(`${a.api}/auth/me`, { headers: { Cookie: cookie.split(";")[0]! } });
    expect(me.status).toBe(200);
    const org = await invoke(authMe, verbServices(a.t), ADMIN, {});
    expect(await me.json()).toEqual({
      user: { id: owner.id, email: owner.email, role: "owner", must_change_password: true },
      org: org.org,
      permissions: [...ALL_PERMISSIONS],
    });
    expect(org.org.name).toBe("default");

    // The one-time password is stored only as its hash.
    const dump = await dumpAllTables(db);
    expect(dump.text).not.toContain(owner.password);
    const [signInRow] = (await auditRows(["auth.login"])).filter(
      (r) => (r.details as { user_id?: string }).user_id === owner.id,
    );
    expect(signInRow).toMatchObject({
      actor: `user:${owner.id}`,
      outcome: "allowed",
      clientIp: address,
      userAgent: USER_AGENT,
    });
    const [added] = (await auditRows(["user.add"])).filter(
      (r) => (r.details as { user_id?: string }).user_id === owner.id,
    );
    expect(added).toMatchObject({ actor: "admin-cli", details: { email: owner.email, role: "owner" } });
  });

  it("sets the session cookie HttpOnly, SameSite=Strict, Path=/, with the maximum age, Secure only behind https", async () => {
    const person = await addPerson(a.t, "viewer");
    const login = (headers: Record<string, string>, init?: { peer: string }) => {
      const request = new Request(`${a.api}/auth/login`, {
        method: "POST",
        headers: { "Content-Type": "application/json", "X-Forwarded-For": newAddress(), ...headers },
        body: JSON.stringify({ email: person.email, password: person.password }),
      });
      return init ? a.t.app.request(request, undefined, fromPeer(init.peer)) : fetch(request);
    };
    const attributes = (res: Response) => {
      const cookie = res.headers.getSetCookie().find((c) => c.startsWith("reoclo_session="))!;
      const [pair, ...attrs] = cookie.split(";").map((s) => s.trim());
      return { value: pair!.slice("reoclo_session=".length), attrs: attrs.sort() };
    };
    const maxAge = `Max-Age=${a.t.deps.config.sessionMaxHours * 3600}`;

    const plain = attributes(await login({}));
    expect(plain.value).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(plain.attrs).toEqual(["HttpOnly", maxAge, "Path=/", "SameSite=Strict"]);

    // Behind a trusted proxy that terminated https.
    const proxied = attributes(await login({ "X-Forwarded-Proto": "https" }));
    expect(proxied.attrs).toEqual(["HttpOnly", maxAge, "Path=/", "SameSite=Strict", "Secure"]);

    // The same claim from a peer that is not a trusted proxy is not believed.
    const untrusted = attributes(await login({ "X-Forwarded-Proto": "https" }, { peer: "203.0.113.7" }));
    expect(untrusted.attrs).toEqual(["HttpOnly", maxAge, "Path=/", "SameSite=Strict"]);

    // Signing out clears the cookie with the same attributes.
    const viewer = browser();
    await viewer.signIn(person);
    const out = await viewer.call(a, "POST", "/auth/logout", {}, { "X-Forwarded-Proto": "https" });
    expect(out.status).toBe(200);
    expect(await out.json()).toEqual({});
    const cleared = attributes(out);
    expect(cleared.value).toBe("");
    expect(cleared.attrs).toEqual(
      expect.arrayContaining(["HttpOnly", "Max-Age=0", "Path=/", "SameSite=Strict", "Secure"]),
    );
  });

  it("lets an owner add, list, re-role and remove people through the API, each change audited", async () => {
    const { person: owner, browser: ob } = await signedIn("owner");
    const email = `dev-${randomBytes(4).toString("hex")}@example.com`;

    const added = await ob.call(a, "POST", "/users", { email: ` ${email.toUpperCase()}`, role: "developer" });
    expect(added.status).toBe(201);
    const dev = (await added.json()) as Person & Record<string, unknown>;
    expect(dev).toMatchObject({ email, role: "developer", must_change_password: true });
    expect(dev.id).toMatch(/^[0-9a-f-]{36}$/);
    expect(dev.password).toMatch(/^[A-Za-z2-8]{20}$/);

    // The same email again (any spelling) is a conflict; a malformed one a validation error.
    const again = await ob.call(a, "POST", "/users", { email: email.toUpperCase(), role: "viewer" });
    expect(again.status).toBe(409);
    expect(((await again.json()) as ErrorEnvelope).error).toBe("conflict");
    const bad = await ob.call(a, "POST", "/users", { email: "not an email", role: "viewer" });
    expect(bad.status).toBe(422);
    expect(((await bad.json()) as ErrorEnvelope).fields).toHaveProperty("email");
    const badRole = await ob.call(a, "POST", "/users", { email: `x-${email}`, role: "admin" });
    expect(badRole.status).toBe(422);

    const list = await ob.get(a, "/users");
    expect(list.status).toBe(200);
    const { items, next_cursor } = (await list.json()) as {
      items: { id: string; email: string }[];
      next_cursor: null;
    };
    expect(next_cursor).toBeNull();
    expect(items.map((i) => i.id)).toEqual(expect.arrayContaining([owner.id, dev.id]));
    expect(JSON.stringify(items)).not.toContain(dev.password);
    expect(items.every((i) => !("password" in i) && !("password_hash" in i))).toBe(true);

    const devBrowser = browser();
    await devBrowser.signIn(dev);
    expect((await devBrowser.get(a, "/auth/me")).status).toBe(200);

    const patched = await ob.call(a, "PATCH", `/users/${dev.id}`, { role: "manager" });
    expect(patched.status).toBe(200);
    expect(await patched.json()).toMatchObject({ id: dev.id, role: "manager" });
    // The role is read on every request: the developer's session is a manager's at once.
    const me = (await (await devBrowser.get(b, "/auth/me")).json()) as { user: { role: string } };
    expect(me.user.role).toBe("manager");

    const removed = await ob.call(a, "DELETE", `/users/${dev.id}`);
    expect(removed.status).toBe(200);
    expect(await removed.json()).toMatchObject({ id: dev.id, email });
    expect((await ob.call(a, "PATCH", `/users/${dev.id}`, { role: "viewer" })).status).toBe(404);
    expect((await ob.call(a, "DELETE", `/users/not-an-id`)).status).toBe(404);

    const rows = (await auditRows(["user.add", "user.update", "user.remove"])).filter(
      (r) => (r.details as { user_id?: string }).user_id === dev.id,
    );
    expect(rows.map((r) => [r.action, r.actor, r.details])).toEqual([
      ["user.add", `user:${owner.id}`, { user_id: dev.id, email, role: "developer" }],
      [
        "user.update",
        `user:${owner.id}`,
        { user_id: dev.id, email, role: { from: "developer", to: "manager" } },
      ],
      ["user.remove", `user:${owner.id}`, { user_id: dev.id, email, role: "manager" }],
    ]);
  });

  it("lets a viewer read who they are but refuses every write and the people list (403)", async () => {
    const { person: viewer, browser: vb } = await signedIn("viewer");
    const other = await addPerson(a.t, "developer");
    const me = await vb.get(a, "/auth/me");
    expect(me.status).toBe(200);
    expect(((await me.json()) as { permissions: string[] }).permissions).toEqual(
      aclPermissions(roleAcl("viewer")),
    );
    for (const [method, path, body] of [
      ["POST", "/users", { email: `v-${randomBytes(3).toString("hex")}@example.com`, role: "owner" }],
      ["PATCH", `/users/${other.id}`, { role: "owner" }],
      ["PATCH", `/users/${viewer.id}`, { role: "owner" }],
      ["DELETE", `/users/${other.id}`, undefined],
      ["GET", "/users", undefined],
    ] as const) {
      const res = await vb.call(a, method, path, body);
      expect(res.status, `${method} ${path}`).toBe(403);
      const envelope = (await res.json()) as ErrorEnvelope;
      expect(envelope.error).toBe("forbidden");
      expect(envelope.detail).toMatch(/^Your role \(viewer\) cannot .+: it needs owner or above/);
    }
    const list = await invoke(usersList, verbServices(a.t), ADMIN, {});
    expect(list.items.find((u) => u.id === viewer.id)?.role).toBe("viewer");
  });

  it("answers 404 for the people of another organisation", async () => {
    const otherOrg = await seedOrg(testContext(db));
    const stranger = await addPerson(a.t, "developer", { org: otherOrg.name });
    const { browser: ob } = await signedIn("owner");
    expect((await ob.call(a, "PATCH", `/users/${stranger.id}`, { role: "viewer" })).status).toBe(404);
    expect((await ob.call(a, "DELETE", `/users/${stranger.id}`)).status).toBe(404);
    const items = ((await (await ob.get(a, "/users")).json()) as { items: { id: string }[] }).items;
    expect(items.map((i) => i.id)).not.toContain(stranger.id);
    // reoclo-admin names the organisation.
    const theirs = await invoke(usersList, verbServices(a.t), ADMIN, { org: otherOrg.name });
    expect(theirs.items.map((i) => i.id)).toEqual([stranger.id]);
  });

  it("keeps the last owner of an organisation: neither removed nor demoted (409)", async () => {
    const org = await seedOrg(testContext(db));
    const first = await addPerson(a.t, "owner", { org: org.name });
    const fb = browser();
    await fb.signIn(first);
    for (const [method, body] of [
      ["DELETE", undefined],
      ["PATCH", { role: "manager" }],
    ] as const) {
      const res = await fb.call(a, method, `/users/${first.id}`, body);
      expect(res.status).toBe(409);
      const envelope = (await res.json()) as ErrorEnvelope;
      expect(envelope.error).toBe("conflict");
      expect(envelope.detail).toContain("last owner");
    }
    const second = await addPerson(a.t, "owner", { org: org.name });
    const demoted = await fb.call(a, "PATCH", `/users/${first.id}`, { role: "manager" });
    expect(demoted.status).toBe(200);
    // A manager no longer manages people, from the next request on.
    expect((await fb.get(b, "/users")).status).toBe(403);
    const sb = browser();
    await sb.signIn(second);
    expect((await sb.call(a, "DELETE", `/users/${second.id}`)).status).toBe(409);
  });

  it("answers an unknown email and a wrong password with the same body and headers, and audits both", async () => {
    const person = await addPerson(a.t, "developer");
    const unknown = `nobody-${randomBytes(4).toString("hex")}@example.com`;
    const address = newAddress();
    const attempt = (email: string, password: string) =>
      fetch(`${a.api}/auth/login`, {
        method: "POST",
        headers: { "Content-Type": "application/json", "X-Forwarded-For": address, "User-Agent": USER_AGENT },
        body: JSON.stringify({ email, password }),
      });
    const normalise = async (res: Response) => {
      const body = (await res.json()) as ErrorEnvelope;
      const headers = [...res.headers.entries()].filter(([k]) => k !== "date" && k !== "x-request-id");
      return { status: res.status, body: { ...body, request_id: "" }, headers };
    };
    const wrongPassword = await normalise(await attempt(person.email, "not-the-password-1"));
    const noSuchUser = await normalise(await attempt(unknown, "not-the-password-1"));
    expect(wrongPassword.status).toBe(401);
    expect(wrongPassword.body.error).toBe("unauthorized");
    expect(noSuchUser).toEqual(wrongPassword);
    expect(JSON.stringify(noSuchUser)).not.toContain("set-cookie");

    // A removed person is refused alike.
    const removed = await addPerson(a.t, "viewer");
    const { browser: ob } = await signedIn("owner");
    expect((await ob.call(a, "DELETE", `/users/${removed.id}`)).status).toBe(200);
    expect(await normalise(await attempt(removed.email, removed.password))).toEqual(wrongPassword);

    const rows = (await auditRows(["auth.login_failed"])).filter((r) => r.clientIp === address);
    expect(rows.map((r) => [r.outcome, r.userAgent, r.details])).toEqual([
      ["denied", USER_AGENT, { email: person.email, user_id: person.id, reason: "wrong_password" }],
      ["denied", USER_AGENT, { email: unknown, reason: "unknown_email" }],
      ["denied", USER_AGENT, { email: removed.email, reason: "unknown_email" }],
    ]);
    expect(JSON.stringify(rows)).not.toContain("not-the-password-1");
  });

  it("spends the password hash's time on unknown emails too", async () => {
    const person = await addPerson(a.t, "viewer");
    const timed = async (email: string) => {
      const started = performance.now();
      const res = await fetch(`${a.api}/auth/login`, {
        method: "POST",
        headers: { "Content-Type": "application/json", "X-Forwarded-For": newAddress() },
        body: JSON.stringify({ email, password: "wrong-password-x" }),
      });
      expect(res.status).toBe(401);
      return performance.now() - started;
    };
    const known: number[] = [];
    const unknown: number[] = [];
    for (let i = 0; i < 5; i++) {
      known.push(await timed(person.email));
      unknown.push(await timed(`ghost-${i}-${randomBytes(3).toString("hex")}@example.com`));
    }
    const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[2]!;
    // Without the decoy hash an unknown email answers in a few ms, a wrong password in tens.
    expect(median(unknown)).toBeGreaterThan(median(known) * 0.5);
  });

  it("limits sign-in to 30 attempts per 5 minutes per address, across instances, and audits the failures", async () => {
    const person = await addPerson(a.t, "developer");
    const address = newAddress();
    const attempt = (on: Instance, password: string) =>
      fetch(`${on.api}/auth/login`, {
        method: "POST",
        headers: { "Content-Type": "application/json", "X-Forwarded-For": address, "User-Agent": USER_AGENT },
        body: JSON.stringify({ email: person.email, password }),
      });
    for (let i = 1; i <= 30; i++) {
      const res = await attempt(i % 2 ? a : b, `wrong-password-${i}`);
      expect(res.status, `attempt ${i}`).toBe(401);
    }
    const refused = await attempt(a, "wrong-password-31");
    expect(refused.status).toBe(429);
    const retryAfter = Number(refused.headers.get("Retry-After"));
    expect(retryAfter).toBeGreaterThan(0);
    expect(retryAfter).toBeLessThanOrEqual(300);
    const envelope = (await refused.json()) as ErrorEnvelope;
    expect(envelope.error).toBe("rate_limited");
    expect(envelope.detail).toMatch(/retry in \d+ s\.$/);
    // The right password too, from this address, until the window ends.
    expect((await attempt(b, person.password)).status).toBe(429);
    // Another address is not affected.
    await browser().signIn(person);

    const rows = (await auditRows(["auth.login_failed"])).filter((r) => r.clientIp === address);
    expect(rows).toHaveLength(31);
    expect(
      rows.slice(0, 30).every((r) => (r.details as { reason: string }).reason === "wrong_password"),
    ).toBe(true);
    expect(rows[30]).toMatchObject({
      outcome: "denied",
      userAgent: USER_AGENT,
      details: { email: person.email, reason: "rate_limited" },
    });
    expect(JSON.stringify(rows)).not.toContain("wrong-password-");
  }, 120_000); // 32 scrypt hashes, on a machine that may be busy

  it("ends the session at sign-out, on the next request to another instance", async () => {
    const { browser: pb } = await signedIn("developer");
    expect((await pb.get(b, "/auth/me")).status).toBe(200);
    expect((await pb.call(a, "POST", "/auth/logout", {})).status).toBe(200);
    const after = await pb.get(b, "/auth/me");
    expect(after.status).toBe(401);
    expect(((await after.json()) as ErrorEnvelope).error).toBe("unauthorized");
  });

  it("changes a password: the current one is checked, other sessions end, this one goes on", async () => {
    const person = await addPerson(a.t, "developer");
    const here = browser();
    const there = browser();
    await here.signIn(person);
    await there.signIn(person, b);
    const newPassword = `new-${randomBytes(6).toString("hex")}`;

    const short = await here.call(a, "POST", "/auth/change-password", {
      current_password: person.password,
      new_password: "short",
    });
    expect(short.status).toBe(422);
    expect(((await short.json()) as ErrorEnvelope).fields).toEqual({
      new_password: ["must be at least 12 characters"],
    });
    const wrong = await here.call(a, "POST", "/auth/change-password", {
      current_password: "not-the-current-one",
      new_password: newPassword,
    });
    expect(wrong.status).toBe(403);
    expect((await there.get(b, "/auth/me")).status).toBe(200);

    const changed = await here.call(a, "POST", "/auth/change-password", {
      current_password: person.password,
      new_password: newPassword,
    });
    expect(changed.status).toBe(200);
    expect((await there.get(b, "/auth/me")).status).toBe(401);
    const me = await here.get(b, "/auth/me");
    expect(me.status).toBe(200);
    expect(((await me.json()) as { user: { must_change_password: boolean } }).user.must_change_password).toBe(
      false,
    );

    const login = (password: string) =>
      fetch(`${a.api}/auth/login`, {
        method: "POST",
        headers: { "Content-Type": "application/json", "X-Forwarded-For": newAddress() },
        body: JSON.stringify({ email: person.email, password }),
      });
    expect((await login(person.password)).status).toBe(401);
    expect((await login(newPassword)).status).toBe(200);

    const rows = (await auditRows(["user.password.change"])).filter(
      (r) => (r.details as { user_id?: string }).user_id === person.id,
    );
    expect(rows.map((r) => [r.outcome, (r.details as { reason?: string }).reason])).toEqual([
      ["denied", "wrong_current_password"],
      ["allowed", undefined],
    ]);
    expect(JSON.stringify(rows)).not.toContain(newPassword);
  });

  it("ends a session after the idle time and after the maximum age", async () => {
    const { browser: pb } = await signedIn("viewer");
    const idleMs = a.t.deps.config.sessionIdleMinutes * 60_000;
    const maxMs = a.t.deps.config.sessionMaxHours * 3_600_000;

    // Requests within the idle time keep it alive, past what one idle time would allow.
    shiftMs = idleMs - 60_000;
    expect((await pb.get(a, "/auth/me")).status).toBe(200);
    shiftMs += idleMs - 60_000;
    expect((await pb.get(b, "/auth/me")).status).toBe(200);
    shiftMs += idleMs + 60_000;
    expect((await pb.get(a, "/auth/me")).status).toBe(401);

    const { browser: busy } = await signedIn("viewer");
    const start = shiftMs;
    while (shiftMs - start < maxMs - idleMs) {
      shiftMs += idleMs / 2;
      expect((await busy.get(a, "/auth/me")).status).toBe(200);
    }
    // A last request just before the maximum age, so only the age ends it, not idleness.
    shiftMs = start + maxMs - 60_000;
    expect((await busy.get(b, "/auth/me")).status).toBe(200);
    shiftMs = start + maxMs + 1_000;
    expect((await busy.get(a, "/auth/me")).status).toBe(401);
  });

  it("ends every session of a removed person at once, and their sign-in", async () => {
    const { person: owner, browser: ob } = await signedIn("owner");
    const { person: dev, browser: devHere } = await signedIn("developer");
    const devThere = browser();
    await devThere.signIn(dev, b);
    expect((await devHere.get(b, "/auth/me")).status).toBe(200);

    expect((await ob.call(a, "DELETE", `/users/${dev.id}`)).status).toBe(200);
    expect((await devHere.get(b, "/auth/me")).status).toBe(401);
    expect((await devThere.get(a, "/auth/me")).status).toBe(401);
    expect((await ob.get(b, "/auth/me")).status).toBe(200);
    await expect(browser().signIn(dev)).rejects.toThrow(/sign-in failed: 401/);

    // The email is free again: a new person with a new id.
    const again = await ob.call(a, "POST", "/users", { email: dev.email, role: "viewer" });
    expect(again.status).toBe(201);
    expect(((await again.json()) as { id: string }).id).not.toBe(dev.id);
    const [row] = (await auditRows(["user.remove"])).filter(
      (r) => (r.details as { user_id?: string }).user_id === dev.id,
    );
    expect(row?.actor).toBe(`user:${owner.id}`);
  });

  it("refuses cookie-authenticated writes from another site's page (403) and accepts its own", async () => {
    const { browser: ob } = await signedIn("owner");
    const body = { email: `csrf-${randomBytes(4).toString("hex")}@example.com`, role: "viewer" };
    const evil = await ob.call(a, "POST", "/users", body, { Origin: "https://evil.example" });
    expect(evil.status).toBe(403);
    expect(((await evil.json()) as ErrorEnvelope).error).toBe("forbidden");
    const crossSite = await ob.call(a, "POST", "/users", body, { "Sec-Fetch-Site": "cross-site" });
    expect(crossSite.status).toBe(403);
    const list = (await (await ob.get(a, "/users")).json()) as { items: { email: string }[] };
    expect(list.items.map((i) => i.email)).not.toContain(body.email);

    const own = await ob.call(a, "POST", "/users", body, { "Sec-Fetch-Site": "same-origin" });
    expect(own.status).toBe(201);

    // Signing in from another site's page is refused too (login CSRF).
    const person = await addPerson(a.t, "viewer");
    const forged = await fetch(`${a.api}/auth/login`, {
      method: "POST",
      headers: {
        "Content-Type": "application/json",
        "X-Forwarded-For": newAddress(),
        Origin: "https://evil.example",
      },
      body: JSON.stringify({ email: person.email, password: person.password }),
    });
    expect(forged.status).toBe(403);
    expect(forged.headers.getSetCookie()).toEqual([]);
  });

  it("tells an integration key who it is and what it may do (capped by its creator's role)", async () => {
    const dev = await addPerson(a.t, "developer");
    const org = (await invoke(authMe, verbServices(a.t), ADMIN, {})).org;
    const generated = generateIntegrationKey();
    const [row] = await db.db
      .insert(integrationKeys)
      .values({
        orgId: org.id,
        createdBy: dev.id,
        label: "ide",
        keyHash: generated.hash,
        prefix: generated.prefix,
        preset: "full_access",
        permissions: PRESET_ACLS.full_access,
      })
      .returning();
    const me = await fetch(`${b.api}/auth/me`, { headers: { "X-API-Key": generated.key } });
    expect(me.status).toBe(200);
    expect(await me.json()).toEqual({
      integration_key: { id: row!.id, label: "ide", prefix: generated.prefix },
      org,
      permissions: aclPermissions(roleAcl("developer")),
    });
    // Keys have no session to end or password to change.
    const out = await fetch(`${b.api}/auth/logout`, {
      method: "POST",
      headers: { Authorization: `Bearer ${generated.key}` },
    });
    expect(out.status).toBe(400);
    expect(((await out.json()) as ErrorEnvelope).detail).toMatch(/revok/);
    const stillWorks = await db.db
      .select()
      .from(integrationKeys)
      .where(and(eq(integrationKeys.id, row!.id)));
    expect(stillWorks[0]?.revokedAt).toBeNull();
  });

  it("refuses requests without a session (401)", async () => {
    for (const [method, path] of [
      ["GET", "/auth/me"],
      ["POST", "/auth/logout"],
      ["POST", "/auth/change-password"],
      ["GET", "/users"],
      ["POST", "/users"],
    ] as const) {
      const res = await fetch(`${a.api}${path}`, { method, headers: { Cookie: "reoclo_session=nope" } });
      expect(res.status, `${method} ${path}`).toBe(401);
    }
  });
});
