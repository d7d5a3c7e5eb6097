import { ALL_PERMISSIONS, aclPermissions, roleAcl, roleSchema } from "@reoclo/protocol";
import { z } from "zod";
import { authBudgetKey, parseIp } from "../access/client-ip";
import { effectiveAcl, need, type UserPrincipal } from "../access/principal";
import { recordChange, type ChangeAction } from "../audit/changes";
import { ServiceError } from "../errors";
import { resolveOrg } from "../orgs/orgs";
import {
  addUser,
  changePassword,
  emailSchema,
  getUser,
  listUsers,
  PASSWORD_MAX_CHARS,
  PASSWORD_MIN_CHARS,
  removeUser,
  signIn,
  signOut,
  updateUserRole,
  type RequestClient,
} from "../people/users";
import { defineVerb, type VerbCall } from "./verb";

// People, roles, sign-in and sessions (spec §11 "Who"). Owners manage people; anyone signed in
// may see who they are, sign out and change their password; signing in is the one public verb.

const clientOf = (call: VerbCall): RequestClient => ({
  ip: call.client.clientIp,
  userAgent: call.client.userAgent,
  requestId: call.client.requestId,
});

/**
 * Counts a password attempt of the client's address (its /64 for IPv6) against the sign-in
 * limit; past it, 429 with Retry-After. The first refusal of a window is audited, the rest are not
 * (a flood must not become a flood of rows).
 */
async function countPasswordAttempt(call: VerbCall, action: ChangeAction, email?: string): Promise<void> {
  const limiter = call.svc.signIn;
  if (!limiter)
    throw new ServiceError("service_unavailable", "Signing in works only through the service's HTTP API.");
  const address = authBudgetKey(parseIp(call.client.clientIp)) ?? "unknown";
  const decision = await limiter.attempt(address);
  if (decision.allowed) return;
  if (decision.attempt === limiter.attempts + 1)
    await recordChange(call.ctx, call.ctx.db, {
      action,
      outcome: "denied",
      details: { ...(email === undefined ? {} : { email }), reason: "rate_limited" },
      client: clientOf(call),
    });
  throw new ServiceError(
    "rate_limited",
    `Too many password attempts from this address: ${limiter.attempts} per ${limiter.windowSeconds / 60} minutes; retry in ${decision.retryAfterSeconds} s.`,
    undefined,
    decision.retryAfterSeconds,
  );
}

/** The signed-in person, or a sentence saying that only people (not keys) do this. */
function signedInUser(call: VerbCall, what: string): UserPrincipal {
  if (call.principal.kind === "user") return call.principal;
  throw new ServiceError(
    "bad_request",
    `Only a person signed in to the dashboard can ${what}; ${
      call.principal.kind === "integration_key"
        ? "an integration key is ended by revoking it (POST /api/integration-keys/{id}/revoke)"
        : "reoclo-admin has no session or password"
    }.`,
  );
}

export const authLogin = defineVerb({
  name: "auth.login",
  need: null,
  public: true,
  what: "sign in",
  input: z.object({
    email: z.string().max(320),
    password: z.string().min(1).max(PASSWORD_MAX_CHARS),
  }),
  async run(call, input) {
    await countPasswordAttempt(call, "auth.login_failed", input.email.trim().toLowerCase());
    return signIn(call.ctx, input, clientOf(call));
  },
});

export const authLogout = defineVerb({
  name: "auth.logout",
  need: null,
  what: "sign out",
  input: z.object({}),
  async run(call) {
    const user = signedInUser(call, "sign out");
    await signOut(
      call.ctx,
      { orgId: user.orgId, userId: user.userId, sessionId: user.sessionId },
      clientOf(call),
    );
    return {};
  },
});

export const authMe = defineVerb({
  name: "auth.me",
  need: null,
  what: "see who you are",
  input: z.object({}),
  async run(call) {
    const p = call.principal;
    const org = await resolveOrg(call.ctx, call.org);
    const orgView = { id: org.id, name: org.name };
    switch (p.kind) {
      case "user": {
        const u = await getUser(call.ctx, p.orgId, p.userId);
        return {
          user: { id: u.id, email: u.email, role: u.role, must_change_password: u.must_change_password },
          org: orgView,
          permissions: aclPermissions(roleAcl(u.role)),
        };
      }
      case "integration_key": {
        // What the key may do now: its ACL, capped by its creator's current role.
        const acl = effectiveAcl(p);
        return {
          integration_key: { id: p.keyId, label: p.label, prefix: p.prefix },
          org: orgView,
          permissions: aclPermissions(acl),
        };
      }
      case "admin":
        return { admin: { name: "reoclo-admin" }, org: orgView, permissions: [...ALL_PERMISSIONS] };
      case "anonymous":
        throw new ServiceError("unauthorized", "Sign in first.");
    }
  },
});

export const authChangePassword = defineVerb({
  name: "auth.change_password",
  need: null,
  what: "change your password",
  input: z.object({
    current_password: z.string().min(1).max(PASSWORD_MAX_CHARS),
    new_password: z
      .string()
      .min(PASSWORD_MIN_CHARS, `must be at least ${PASSWORD_MIN_CHARS} characters`)
      .max(PASSWORD_MAX_CHARS),
  }),
  async run(call, input) {
    const user = signedInUser(call, "change a password");
    // Checking the current password is a guess too: a stolen session must not make it cheaper.
    await countPasswordAttempt(call, "user.password.change");
    await changePassword(
      call.ctx,
      {
        userId: user.userId,
        sessionId: user.sessionId,
        current: input.current_password,
        next: input.new_password,
      },
      clientOf(call),
    );
    return {};
  },
});

export const usersList = defineVerb({
  name: "users.list",
  need: need("users:read"),
  what: "list the organisation's people",
  input: z.object({}),
  async run(call) {
    return { items: await listUsers(call.ctx, call.org), next_cursor: null };
  },
});

export const usersAdd = defineVerb({
  name: "users.add",
  need: need("users:write"),
  what: "add people",
  input: z.object({ email: emailSchema, role: roleSchema }),
  run: (call, input) => addUser(call.ctx, { org: call.org, ...input }),
});

export const usersUpdate = defineVerb({
  name: "users.update",
  need: need("users:write"),
  what: "change people's roles",
  input: z.object({ id: z.string(), role: roleSchema }),
  run: (call, input) => updateUserRole(call.ctx, { org: call.org, ...input }),
});

export const usersRemove = defineVerb({
  name: "users.remove",
  need: need("users:write"),
  what: "remove people",
  input: z.object({ id: z.string() }),
  run: (call, input) => removeUser(call.ctx, { org: call.org, ...input }),
});

export const PEOPLE_VERBS = [
  authLogin,
  authLogout,
  authMe,
  authChangePassword,
  usersList,
  usersAdd,
  usersUpdate,
  usersRemove,
] as const;
