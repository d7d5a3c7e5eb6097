// The run action with no api_key, end to end (issue 18): a trust policy on a real service (made
// through the management API by a manager), the runner's ID token endpoint handing out tokens
// signed by the test bed's loopback issuer, the bundled action run as the runner runs it, the
// service's real exchange, a command on the real sshd host, and the audit rows of the issued key
// carrying the verified claims.
import { randomBytes } from "node:crypto";
import { existsSync, readFileSync, rmSync } from "node:fs";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import {
  auditEvents,
  managementBase,
  resolveOrg,
  seedPerson,
  startExecEnv,
  type ExecEnv,
} from "@reoclo/service/testing";
import { githubClaims, startOidcIssuer, type OidcIssuer } from "@reoclo/testbed/oidc-issuer";
import { actionDir, startIdTokenService, Workspace, type IdTokenService } from "@reoclo/testbed/runner";
import { and, eq } from "drizzle-orm";

let env: ExecEnv;
let issuer: OidcIssuer;
const closers: (() => Promise<void>)[] = [];
const workspaces: Workspace[] = [];
const files: string[] = [];

beforeAll(async () => {
  [env, issuer] = await Promise.all([startExecEnv(), startOidcIssuer()]);
});
afterAll(async () => {
  await Promise.all([env?.close(), issuer?.close()]);
});
afterEach(async () => {
  for (const w of workspaces.splice(0)) w.remove();
  for (const f of files.splice(0)) rmSync(f, { force: true });
  await Promise.all(closers.splice(0).map((c) => c()));
});

const origin = () => new URL(env.base).origin;

/** A trust policy of the service's organisation, made through the management API by a manager. */
async function addTrustPolicy(conditions: Record<string, string>, over: Record<string, unknown> = {}) {
  const org = await resolveOrg(env.ctx, undefined);
  const manager = await seedPerson(env.db.db, { orgId: org.id, role: "manager" });
  const res = await fetch(`${managementBase(env.base)}/trust-policies`, {
    method: "POST",
    headers: { "Content-Type": "application/json", Cookie: manager.cookie, Origin: origin() },
    body: JSON.stringify({
      name: `acme-web-${randomBytes(3).toString("hex")}`,
      issuer: issuer.issuer, // loopback http issuers are accepted (spec §12)
      audience: origin(),
      conditions,
      operations: ["exec"],
      server_ids: [env.serverId],
      lifetime_seconds: 900,
      ...over,
    }),
  });
  expect(res.status, await res.clone().text()).toBe(201);
  return ((await res.json()) as { id: string }).id;
}

async function idTokens(claims: Record<string, unknown> = {}): Promise<IdTokenService> {
  const tokens = await startIdTokenService((aud) =>
    issuer.sign(githubClaims({ repository: "acme/web", ...(aud ? { aud } : {}), ...claims })),
  );
  closers.push(() => tokens.close());
  return tokens;
}

const workspace = (tokens: IdTokenService) => {
  const w = new Workspace(actionDir("run"), "bundle", { idTokens: tokens });
  workspaces.push(w);
  return w;
};

describe("the run action with no api_key, trusted through OIDC", () => {
  it("runs the command on the host with the key the service issued, and the audit row shows the verified claims", async () => {
    const policyId = await addTrustPolicy({ repository: "acme/web", ref: "refs/heads/main" });
    const tokens = await idTokens();
    const marker = `/tmp/reoclo-oidc-e2e-${randomBytes(4).toString("hex")}`;
    files.push(marker);
    const w = workspace(tokens);
    const main = w.start("main", {
      server_id: env.serverId,
      command: `echo keyless > ${marker}; echo done`,
      api_url: origin(),
    });
    expect(await main.exited).toBe(0);
    expect(tokens.audiences).toEqual([origin()]);
    expect(existsSync(marker) && readFileSync(marker, "utf8")).toBe("keyless\n");
    const log = main.log();
    expect(log).toMatch(
      new RegExp(`\\[reoclo\\] Authenticated with OIDC: policy ${policyId}, key expires \\S+`),
    );
    const token = tokens.issued[0]!;
    // The token and the key appear only in the lines that mask them.
    const withToken = log.split("\n").filter((l) => l.includes(token));
    expect(withToken.length).toBeGreaterThan(0);
    expect(withToken.every((l) => l === `::add-mask::${token}`)).toBe(true);
    const withKey = log.split("\n").filter((l) => /rca_[0-9A-Za-z]{20,}/.test(l));
    expect(withKey.length).toBeGreaterThan(0);
    expect(withKey.every((l) => /^::add-mask::rca_[0-9A-Za-z]+$/.test(l))).toBe(true);

    await env.t.deps.audit.flush();
    const rows = await env.db.db
      .select()
      .from(auditEvents)
      .where(eq(auditEvents.operationId, w.outputs().operation_id!));
    expect(rows.length).toBeGreaterThan(0);
    for (const row of rows)
      expect(row.runContextVerified).toMatchObject({
        repository: "acme/web",
        ref: "refs/heads/main",
        workflow_ref: "acme/web/.github/workflows/deploy.yml@refs/heads/main",
      });
  });

  it("is refused for another repository's token, with the trust-policy sentence, and nothing runs", async () => {
    await addTrustPolicy({ repository: "acme/web" });
    const tokens = await idTokens({ repository: "evil/fork" });
    const w = workspace(tokens);
    const main = w.start("main", { server_id: env.serverId, command: "echo never", api_url: origin() });
    expect(await main.exited).toBe(1);
    expect(main.log()).toContain(`::error::The service at ${origin()} refused the OIDC token:`);
    expect(main.log()).toContain("Check the trust policy for this repository");
    expect(w.state().operation_id).toBeUndefined();
    // The refusal's audit row says which claim failed.
    await env.t.deps.audit.flush();
    const refusals = await env.db.db
      .select()
      .from(auditEvents)
      .where(
        and(eq(auditEvents.outcome, "denied"), eq(auditEvents.path, "/api/automation/v1/oidc/exchange")),
      );
    expect(refusals.map((r) => r.reason)).toContain("oidc_no_policy_matched:repository");
  });

  it("is refused for a token of another audience (the audience input)", async () => {
    await addTrustPolicy({ repository: "acme/web" });
    const tokens = await idTokens();
    const w = workspace(tokens);
    const main = w.start("main", {
      server_id: env.serverId,
      command: "echo never",
      api_url: origin(),
      audience: "https://somewhere-else.example.com",
    });
    expect(await main.exited).toBe(1);
    expect(tokens.audiences).toEqual(["https://somewhere-else.example.com"]);
    expect(main.log()).toContain('audience "https://somewhere-else.example.com"');
  });
});
