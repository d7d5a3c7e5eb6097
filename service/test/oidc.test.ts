import { randomBytes, randomUUID } from "node:crypto";
import { readFile, rm } from "node:fs/promises";
import { API_BASE_PATH, MAX_TRUST_LIFETIME_SECONDS } from "@reoclo/protocol";
import { githubClaims, startOidcIssuer, type OidcIssuer } from "@reoclo/testbed/oidc-issuer";
import { DRIVERS } from "@reoclo/testbed/postgres-database";
import { startTestHost, type TestHost } from "@reoclo/testbed/sshd";
import { desc, eq, isNotNull } from "drizzle-orm";
import { generateKeyPair, SignJWT } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { OIDC_REFUSED } from "../src/access/oidc-exchange";
import { ADMIN } from "../src/access/principal";
import { trustPoliciesCreate } from "../src/control/trust-policies";
import { invoke } from "../src/control/verb";
import { auditEvents, automationKeys } from "../src/db/schema";
import { resolveOrg } from "../src/orgs/orgs";
import { SecretBox } from "../src/secrets/secret-box";
import { createTestApp, serveTestApp, type ServedApp, type TestApp } from "./fixtures/app";
import { createTestDatabase, testContext, type TestDatabase } from "./fixtures/db";
import { addTestHost } from "./fixtures/entities";
import { managementBase, seedPerson, verbServices, type TestPerson } from "./fixtures/people";

// Keyless CI (spec §12, issue 18): a CI job's OIDC token, from a real issuer on loopback, exchanged
// for a short-lived automation key on the real service, which then runs a command on a real sshd
// host; the operation and its audit rows carry the claims the issuer signed, marked verified.

const AUDIENCE = "https://reoclo.test";
const b64url = (v: unknown) => Buffer.from(JSON.stringify(v)).toString("base64url");

describe.each(DRIVERS)("keyless CI: OIDC trust on %s", (driver) => {
  let db: TestDatabase;
  let host: TestHost;
  let t: TestApp;
  let served: ServedApp;
  let base: string;
  let api: string;
  let issuer: OidcIssuer;
  let serverId: string;
  let policyId: string;
  let manager: TestPerson;
  let viewer: TestPerson;
  /** The service's clock runs this far ahead of the machine's (key expiry without sleeping). */
  let clockOffsetMs = 0;
  const issuers: OidcIssuer[] = [];

  /** A policy made by reoclo-admin for `iss`, trusting acme/shop's main branch in production. */
  const addPolicy = async (iss: string, extra: Record<string, unknown> = {}) =>
    invoke(trustPoliciesCreate, verbServices(t), ADMIN, {
      name: `policy-${randomBytes(3).toString("hex")}`,
      issuer: iss,
      audience: AUDIENCE,
      conditions: { repository: "acme/shop", ref: "refs/heads/*", environment: "production" },
      operations: ["exec"],
      server_ids: [serverId],
      lifetime_seconds: 60,
      ...extra,
    });

  const goodClaims = (overrides: Record<string, unknown> = {}) =>
    githubClaims({ aud: AUDIENCE, environment: "production", ...overrides });

  const exchange = (token: string, extra: Record<string, unknown> = {}) =>
    fetch(`${base}/oidc/exchange`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ token, ...extra }),
    });

  const withKey = (key: string, path: string, body?: unknown) =>
    fetch(`${base}${path}`, {
      method: body === undefined ? "GET" : "POST",
      headers: { Authorization: `Bearer ${key}`, "Content-Type": "application/json" },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });

  const mintedKeys = async () =>
    (await db.db.select().from(automationKeys).where(isNotNull(automationKeys.trustPolicyId))).length;

  const lastAuditRow = async () =>
    (await db.db.select().from(auditEvents).orderBy(desc(auditEvents.id)).limit(1))[0]!;

  const managementCall = (who: TestPerson, method: string, path: string, body?: unknown) =>
    fetch(`${api}${path}`, {
      method,
      headers: { Cookie: who.cookie, "Content-Type": "application/json" },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });

  const startIssuer = async () => {
    const i = await startOidcIssuer();
    issuers.push(i);
    return i;
  };

  beforeAll(async () => {
    [db, host] = await Promise.all([createTestDatabase(driver), startTestHost()]);
    const secrets = new SecretBox(randomBytes(32));
    t = createTestApp(db, {
      secrets,
      env: { REOCLO_SYNC_WAIT_SECONDS: "10" },
      now: () => new Date(Date.now() + clockOffsetMs),
    });
    served = await serveTestApp(t);
    base = served.base;
    api = managementBase(base);
    const ctx = testContext(db, secrets);
    serverId = (await addTestHost(ctx, host)).id;
    issuer = await startIssuer();
    policyId = (await addPolicy(issuer.issuer)).id;
    const org = await resolveOrg(ctx, undefined);
    manager = await seedPerson(db.db, { orgId: org.id, role: "manager" });
    viewer = await seedPerson(db.db, { orgId: org.id, role: "viewer" });
  });

  afterAll(async () => {
    await served?.close();
    await t?.close();
    await Promise.all([db?.close(), host?.close(), ...issuers.map((i) => i.close())]);
  });

  it("exchanges a good token for a key that runs a command on the host, with the verified claims in the operation and the audit", async () => {
    const token = await issuer.sign(goodClaims());
    const before = Date.now();
    const res = await exchange(token);
    expect(res.status).toBe(200);
    expect(res.headers.get("cache-control")).toBe("no-store");
    const minted = (await res.json()) as { key: string; expires_at: string; policy_id: string };
    expect(minted.key).toMatch(/^rca_[0-9A-Za-z]{36}$/);
    expect(minted.policy_id).toBe(policyId);
    const lifetime = Date.parse(minted.expires_at) - before;
    expect(lifetime).toBeGreaterThan(55_000);
    expect(lifetime).toBeLessThanOrEqual(61_000);

    const exchanged = await lastAuditRow();
    expect(exchanged).toMatchObject({
      action: "key.oidc_exchange",
      outcome: "allowed",
      actor: `trust_policy:${policyId}`,
    });
    expect(exchanged.runContextVerified).toMatchObject({ verified: true, repository: "acme/shop" });

    // The body claims another repository; the verified claims win in the operation.
    const file = `/tmp/oidc-${randomUUID()}`;
    const exec = await withKey(minted.key, "/exec", {
      server_id: serverId,
      command: `echo verified-$((6*7)) | tee ${file}`,
      run_context: { repository: "evil/repo", ref: "refs/heads/evil" },
    });
    expect(exec.status).toBe(200);
    const answer = (await exec.json()) as { operation_id: string; status: string; stdout: string };
    expect(answer).toMatchObject({ status: "completed", stdout: "verified-42\n" });
    // The host is this machine's sshd: the file the command wrote is here.
    expect(await readFile(file, "utf8")).toBe("verified-42\n");
    await rm(file, { force: true });

    const op = (await (await withKey(minted.key, `/operations/${answer.operation_id}`)).json()) as {
      run_context: Record<string, unknown>;
    };
    expect(op.run_context).toMatchObject({
      verified: true,
      issuer: issuer.issuer,
      repository: "acme/shop",
      ref: "refs/heads/main",
      workflow: "deploy",
      environment: "production",
      run_id: "4242",
      sha: "0123456789abcdef0123456789abcdef01234567",
    });

    const [allowed] = await db.db
      .select()
      .from(auditEvents)
      .where(eq(auditEvents.operationId, answer.operation_id))
      .limit(1);
    const row =
      allowed ??
      (
        await db.db
          .select()
          .from(auditEvents)
          .where(eq(auditEvents.path, `${API_BASE_PATH}/exec`))
      )[0]!;
    expect(row.outcome).toBe("allowed");
    expect(row.runContextVerified).toMatchObject({
      verified: true,
      repository: "acme/shop",
      workflow: "deploy",
    });
    expect(row.runContextClaimed).toMatchObject({ repository: "evil/repo" });

    // The dashboard's page of the operation says the same: verified, by whom, and the real repository.
    const page = await fetch(`${new URL(base).origin}/operations/${answer.operation_id}`, {
      headers: { Cookie: viewer.cookie },
    });
    const html = await page.text();
    expect(page.status).toBe(200);
    expect(html).toContain(
      `<span class="status status-active">verified</span> signed by <code>${issuer.issuer}</code>`,
    );
    expect(html).toContain("acme/shop");
    expect(html).not.toContain("evil/repo");

    // Neither the token nor the key is in any audit row.
    const everything = JSON.stringify(await db.db.select().from(auditEvents));
    expect(everything).not.toContain(token);
    expect(everything).not.toContain(minted.key);
  });

  const otherKey = generateKeyPair("RS256", { extractable: true });
  const cases: [string, () => Promise<string>, string][] = [
    [
      "signed with another key under the issuer's kid",
      async () => issuer.sign(goodClaims(), { key: (await otherKey).privateKey }),
      "oidc_bad_signature",
    ],
    [
      "alg none, unsigned",
      () => {
        const now = Math.floor(Date.now() / 1000);
        const payload = { iss: issuer.issuer, iat: now, exp: now + 300, jti: randomUUID(), ...goodClaims() };
        return Promise.resolve(`${b64url({ alg: "none", typ: "JWT" })}.${b64url(payload)}.`);
      },
      "oidc_alg_not_allowed",
    ],
    [
      "HS256 keyed with the issuer's public key",
      async () => {
        const secret = new TextEncoder().encode(JSON.stringify(issuer.publicJwks()[0]));
        const now = Math.floor(Date.now() / 1000);
        return new SignJWT({ ...goodClaims(), iss: issuer.issuer, jti: randomUUID() })
          .setProtectedHeader({ alg: "HS256", kid: issuer.currentKid })
          .setIssuedAt(now)
          .setExpirationTime(now + 300)
          .sign(secret);
      },
      "oidc_alg_not_allowed",
    ],
    [
      "from an issuer no policy trusts",
      async () => (await startIssuer()).sign(goodClaims()),
      "oidc_unknown_issuer",
    ],
    [
      "for another audience",
      () => issuer.sign(goodClaims({ aud: "https://elsewhere.test" })),
      "oidc_wrong_audience",
    ],
    [
      "expired two minutes ago",
      () => {
        const now = Math.floor(Date.now() / 1000);
        return issuer.sign(goodClaims({ iat: now - 600, nbf: now - 600, exp: now - 120 }));
      },
      "oidc_expired",
    ],
    [
      "not valid for five more minutes",
      () => {
        const now = Math.floor(Date.now() / 1000);
        return issuer.sign(goodClaims({ iat: now + 300, nbf: now + 300, exp: now + 900 }));
      },
      "oidc_not_yet_valid",
    ],
    [
      "issued in the future (iat beyond the 60 s skew, no nbf)",
      () => {
        const now = Math.floor(Date.now() / 1000);
        return issuer.sign(goodClaims({ iat: now + 300, nbf: undefined, exp: now + 900 }));
      },
      "oidc_not_yet_valid",
    ],
    ["without a jti", () => issuer.sign(goodClaims({ jti: undefined })), "oidc_missing_claim:jti"],
    [
      "for a tag, outside the policy's refs",
      () => issuer.sign(goodClaims({ ref: "refs/tags/v1", ref_type: "tag" })),
      "oidc_no_policy_matched:ref",
    ],
    [
      "for another environment",
      () => issuer.sign(goodClaims({ environment: "staging" })),
      "oidc_no_policy_matched:environment",
    ],
    [
      "of another repository",
      () => issuer.sign(goodClaims({ repository: "acme/other" })),
      "oidc_no_policy_matched:repository",
    ],
    ["that is not a JWT at all", () => Promise.resolve("not-a-jwt"), "oidc_malformed_token"],
  ];

  it.each(cases)(
    "refuses a token %s: 401 with the one body, audited as %s, no key minted",
    async (_, make, reason) => {
      const token = await make();
      const keysBefore = await mintedKeys();
      const res = await exchange(token);
      expect(res.status).toBe(401);
      const body = (await res.json()) as Record<string, unknown>;
      // One body for every reason: the same code and sentence, and nothing else but the request id.
      expect(Object.keys(body).sort()).toEqual(["detail", "error", "request_id"]);
      expect(body).toMatchObject({ error: "unauthorized", detail: OIDC_REFUSED });
      const row = await lastAuditRow();
      expect(row).toMatchObject({ outcome: "denied", reason, path: `${API_BASE_PATH}/oidc/exchange` });
      expect(JSON.stringify(row)).not.toContain(token);
      expect(await mintedKeys()).toBe(keysBefore);
    },
  );

  it("accepts a token's jti once: the replay is refused", async () => {
    const token = await issuer.sign(goodClaims());
    expect((await exchange(token)).status).toBe(200);
    const keysBefore = await mintedKeys();
    const replay = await exchange(token);
    expect(replay.status).toBe(401);
    expect(((await replay.json()) as { detail: string }).detail).toBe(OIDC_REFUSED);
    expect(await lastAuditRow()).toMatchObject({ outcome: "denied", reason: "oidc_replayed" });
    expect(await mintedKeys()).toBe(keysBefore);
  });

  it("picks up a key rotation without a restart, and refuses a token of the rotated-out key", async () => {
    const rotating = await startIssuer();
    await addPolicy(rotating.issuer);
    const oldKid = rotating.currentKid;
    const oldKey = rotating.privateKeyOf(oldKid)!;
    expect((await exchange(await rotating.sign(goodClaims()))).status).toBe(200);
    expect(rotating.fetches).toEqual({ discovery: 1, jwks: 1 });
    // Cached: a second exchange reads nothing from the issuer.
    expect((await exchange(await rotating.sign(goodClaims()))).status).toBe(200);
    expect(rotating.fetches.jwks).toBe(1);

    await rotating.rotate();
    expect((await exchange(await rotating.sign(goodClaims()))).status).toBe(200);
    expect(rotating.fetches.jwks).toBe(2);

    const stale = await rotating.sign(goodClaims(), { key: oldKey, kid: oldKid });
    expect((await exchange(stale)).status).toBe(401);
    expect(await lastAuditRow()).toMatchObject({ reason: "oidc_unknown_kid" });
  });

  it("answers 503 when the issuer does not answer, and mints nothing", async () => {
    const gone = await startOidcIssuer();
    await addPolicy(gone.issuer);
    const token = await gone.sign(goodClaims());
    await gone.close();
    const keysBefore = await mintedKeys();
    const res = await exchange(token);
    expect(res.status).toBe(503);
    expect(((await res.json()) as { error: string }).error).toBe("oidc_issuer_unavailable");
    expect(await lastAuditRow()).toMatchObject({ outcome: "denied", reason: "oidc_issuer_unavailable" });
    expect(await mintedKeys()).toBe(keysBefore);
  });

  it("lets an exchanged key work until its expiry and not after", async () => {
    const { key } = (await (await exchange(await issuer.sign(goodClaims()))).json()) as { key: string };
    try {
      expect((await withKey(key, "/key")).status).toBe(200);
      clockOffsetMs = 59_000;
      expect((await withKey(key, "/key")).status).toBe(200);
      clockOffsetMs = 61_000;
      expect((await withKey(key, "/key")).status).toBe(401);
      expect(await lastAuditRow()).toMatchObject({ outcome: "denied", reason: "expired_key" });
    } finally {
      clockOffsetMs = 0;
    }
  });

  it("ends an exchanged key at its expiry, and a removed policy's keys, on another instance too", async () => {
    // A second instance of the service on the same database, as behind a load balancer.
    const t2 = createTestApp(db, {
      env: { REOCLO_SYNC_WAIT_SECONDS: "10" },
      now: () => new Date(Date.now() + clockOffsetMs),
    });
    const served2 = await serveTestApp(t2);
    const onSecond = (key: string) =>
      fetch(`${served2.base}/key`, { headers: { Authorization: `Bearer ${key}` } });
    try {
      const { key } = (await (await exchange(await issuer.sign(goodClaims()))).json()) as { key: string };
      expect((await onSecond(key)).status).toBe(200);
      clockOffsetMs = 61_000;
      expect((await onSecond(key)).status).toBe(401);
      expect((await withKey(key, "/key")).status).toBe(401);
      clockOffsetMs = 0;

      const removable = await addPolicy(issuer.issuer, { conditions: { repository: "acme/elsewhere" } });
      const minted = (await (
        await exchange(await issuer.sign(goodClaims({ repository: "acme/elsewhere" })))
      ).json()) as { key: string };
      expect((await onSecond(minted.key)).status).toBe(200);
      const removed = await fetch(`${api}/trust-policies/${removable.id}`, {
        method: "DELETE",
        headers: { Cookie: manager.cookie, Origin: new URL(base).origin },
      });
      expect(removed.status).toBe(200);
      expect((await onSecond(minted.key)).status).toBe(401);
    } finally {
      clockOffsetMs = 0;
      await served2.close();
      await t2.close();
    }
  });

  it("revokes a removed policy's keys at their next request", async () => {
    const removable = await addPolicy(issuer.issuer, { conditions: { repository: "acme/removable" } });
    const res = await exchange(await issuer.sign(goodClaims({ repository: "acme/removable" })));
    expect(res.status).toBe(200);
    const { key, policy_id } = (await res.json()) as { key: string; policy_id: string };
    expect(policy_id).toBe(removable.id);
    expect((await withKey(key, "/key")).status).toBe(200);

    const removed = await managementCall(manager, "DELETE", `/trust-policies/${removable.id}`);
    expect(removed.status).toBe(200);
    expect(await removed.json()).toMatchObject({ id: removable.id, revoked_keys: 1 });
    expect((await withKey(key, "/key")).status).toBe(401);
    expect(await lastAuditRow()).toMatchObject({ reason: "revoked_key" });
    // And it mints no more.
    expect((await exchange(await issuer.sign(goodClaims({ repository: "acme/removable" })))).status).toBe(
      401,
    );
  });

  it("refuses, as ambiguous, a token two policies accept, unless policy_id names one", async () => {
    const second = await addPolicy(issuer.issuer, { conditions: { repository_owner: "acme" } });
    try {
      expect((await exchange(await issuer.sign(goodClaims()))).status).toBe(401);
      expect(await lastAuditRow()).toMatchObject({ reason: "oidc_ambiguous_policy:2" });
      const named = await exchange(await issuer.sign(goodClaims()), { policy_id: second.id });
      expect(named.status).toBe(200);
      expect(((await named.json()) as { policy_id: string }).policy_id).toBe(second.id);
    } finally {
      expect((await managementCall(manager, "DELETE", `/trust-policies/${second.id}`)).status).toBe(200);
    }
  });

  describe("trust policies through the management API", () => {
    const valid = () => ({
      name: `api-${randomBytes(3).toString("hex")}`,
      issuer: "https://token.actions.githubusercontent.com",
      audience: AUDIENCE,
      conditions: { repository: "acme/*" },
      operations: ["exec"],
      server_ids: [serverId],
    });

    it("lets a viewer list them but not create one; a manager creates, changes and lists them", async () => {
      const denied = await managementCall(viewer, "POST", "/trust-policies", valid());
      expect(denied.status).toBe(403);
      const created = await managementCall(manager, "POST", "/trust-policies", valid());
      expect(created.status).toBe(201);
      const policy = (await created.json()) as { id: string; lifetime_seconds: number; created_by: string };
      expect(policy.lifetime_seconds).toBe(900);
      expect(policy.created_by).toBe(`user:${manager.id}`);
      const changed = await managementCall(manager, "PATCH", `/trust-policies/${policy.id}`, {
        lifetime_seconds: 1800,
      });
      expect(changed.status).toBe(200);
      expect(await changed.json()).toMatchObject({ lifetime_seconds: 1800 });
      const listed = await managementCall(viewer, "GET", "/trust-policies");
      expect(listed.status).toBe(200);
      const { items } = (await listed.json()) as { items: { id: string }[] };
      expect(items.map((p) => p.id)).toContain(policy.id);
      expect((await lastAuditRow()).action).toBe("trust_policy.update");
    });

    it.each([
      ["an http issuer that is not loopback", { issuer: "http://token.example.com" }, "issuer"],
      ["no conditions", { conditions: {} }, "conditions"],
      ["a condition that matches everything", { conditions: { repository: "**" } }, "conditions.repository"],
      ["a lifetime above an hour", { lifetime_seconds: MAX_TRUST_LIFETIME_SECONDS + 1 }, "lifetime_seconds"],
      ["no audience while REOCLO_PUBLIC_URL is not set", { audience: undefined }, "audience"],
    ])("refuses a policy with %s (422 naming the field)", async (_, change, field) => {
      const res = await managementCall(manager, "POST", "/trust-policies", { ...valid(), ...change });
      expect(res.status).toBe(422);
      const body = (await res.json()) as { fields: Record<string, string[]> };
      expect(Object.keys(body.fields)).toContain(field);
    });

    it("accepts a loopback http issuer", async () => {
      const res = await managementCall(manager, "POST", "/trust-policies", {
        ...valid(),
        issuer: "http://[::1]:8443",
      });
      expect(res.status).toBe(201);
    });
  });
});
