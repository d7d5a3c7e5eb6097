import { isUuid, type Role } from "@reoclo/protocol";
import { and, asc, eq, isNull } from "drizzle-orm";
import { z } from "zod";
import { recordChange } from "../audit/changes";
import type { ServiceContext } from "../context";
import type { Database } from "../db/database";
import { users } from "../db/schema";
import { ServiceError } from "../errors";
import { resolveOrg } from "../orgs/orgs";
import { decoyHash, hashPassword, oneTimePassword, verifyPassword } from "./passwords";
import { createSession, revokeSession, revokeUserSessions } from "./sessions";

// People of an organisation (spec §11 "Who"): added by an owner (or by reoclo-admin, the
// bootstrap path) with a one-time password of which only the scrypt hash is kept; removal is a
// soft delete that ends their sessions at once. Every organisation keeps at least one owner.

/** Emails are stored trimmed and lower-cased: one person, one spelling. */
export const emailSchema = z
  .string()
  .trim()
  .toLowerCase()
  .max(254, "must be at most 254 characters")
  .pipe(z.email({ error: "must be an email address" }));

/** Longer passwords cost scrypt nothing more but bound what a request may send. */
export const PASSWORD_MAX_CHARS = 1024;
export const PASSWORD_MIN_CHARS = 12;

type UserRow = typeof users.$inferSelect;

export interface UserView {
  id: string;
  email: string;
  role: Role;
  must_change_password: boolean;
  created_at: string;
}

const view = (u: UserRow): UserView => ({
  id: u.id,
  email: u.email,
  role: u.role,
  must_change_password: u.mustChangePassword,
  created_at: u.createdAt.toISOString(),
});

/** Where a request came from, for the audit rows of sign-ins and sign-outs. */
export interface RequestClient {
  readonly ip?: string | undefined;
  readonly userAgent?: string | undefined;
  readonly requestId?: string | undefined;
}

const notFound = () => new ServiceError("not_found", "User not found in this organisation.");

export async function listUsers(ctx: ServiceContext, orgNameOrId: string | undefined): Promise<UserView[]> {
  const org = await resolveOrg(ctx, orgNameOrId);
  const rows = await ctx.db
    .select()
    .from(users)
    .where(and(eq(users.orgId, org.id), isNull(users.removedAt)))
    .orderBy(asc(users.email));
  return rows.map(view);
}

/** One live person of the organisation, or 404. */
export async function getUser(ctx: ServiceContext, orgId: string, id: string): Promise<UserView> {
  if (!isUuid(id)) throw notFound();
  const [row] = await ctx.db
    .select()
    .from(users)
    .where(and(eq(users.id, id), eq(users.orgId, orgId), isNull(users.removedAt)))
    .limit(1);
  if (!row) throw notFound();
  return view(row);
}

/** Adds a person with a one-time password: the answer is the only place it ever appears. */
export async function addUser(
  ctx: ServiceContext,
  input: { org: string | undefined; email: string; role: Role },
): Promise<UserView & { password: string }> {
  const org = await resolveOrg(ctx, input.org);
  const password = oneTimePassword();
  const passwordHash = await hashPassword(password);
  return ctx.db.transaction(async (tx) => {
    // Emails are unique among people not removed, across organisations: sign-in names no org.
    const [row] = await tx
      .insert(users)
      .values({ orgId: org.id, email: input.email, role: input.role, passwordHash, mustChangePassword: true })
      .onConflictDoNothing()
      .returning();
    if (!row)
      throw new ServiceError("conflict", `Someone with the email ${input.email} already has an account.`);
    await recordChange(ctx, tx, {
      action: "user.add",
      orgId: org.id,
      details: { user_id: row.id, email: row.email, role: row.role },
    });
    return { ...view(row), password };
  });
}

/**
 * Locks the organisation's owners, in id order so that two concurrent changes queue rather than
 * deadlock, then the person changed: the last owner check then sees what the other committed.
 */
async function lockForOwnerChange(tx: Database, orgId: string, id: string) {
  const owners = await tx
    .select({ id: users.id })
    .from(users)
    .where(and(eq(users.orgId, orgId), eq(users.role, "owner"), isNull(users.removedAt)))
    .orderBy(asc(users.id))
    .for("update");
  const [target] = await tx
    .select()
    .from(users)
    .where(and(eq(users.id, id), eq(users.orgId, orgId), isNull(users.removedAt)))
    .for("update");
  if (!target) throw notFound();
  return { target, lastOwner: target.role === "owner" && owners.length <= 1 };
}

export async function updateUserRole(
  ctx: ServiceContext,
  input: { org: string | undefined; id: string; role: Role },
): Promise<UserView> {
  const org = await resolveOrg(ctx, input.org);
  if (!isUuid(input.id)) throw notFound();
  return ctx.db.transaction(async (tx) => {
    const { target, lastOwner } = await lockForOwnerChange(tx, org.id, input.id);
    if (target.role === input.role) return view(target);
    if (lastOwner)
      throw new ServiceError(
        "conflict",
        `${target.email} is the organisation's last owner; make someone else owner first.`,
      );
    const [row] = await tx.update(users).set({ role: input.role }).where(eq(users.id, target.id)).returning();
    await recordChange(ctx, tx, {
      action: "user.update",
      orgId: org.id,
      details: { user_id: target.id, email: target.email, role: { from: target.role, to: input.role } },
    });
    return view(row!);
  });
}

/** Soft delete: the row stays for the audit log; sessions end and their integration keys stop now. */
export async function removeUser(
  ctx: ServiceContext,
  input: { org: string | undefined; id: string },
): Promise<UserView & { removed_at: string }> {
  const org = await resolveOrg(ctx, input.org);
  if (!isUuid(input.id)) throw notFound();
  const now = ctx.now();
  return ctx.db.transaction(async (tx) => {
    const { target, lastOwner } = await lockForOwnerChange(tx, org.id, input.id);
    if (lastOwner)
      throw new ServiceError(
        "conflict",
        `${target.email} is the organisation's last owner and cannot be removed; make someone else owner first.`,
      );
    await tx.update(users).set({ removedAt: now }).where(eq(users.id, target.id));
    await revokeUserSessions(tx, target.id, now);
    await recordChange(ctx, tx, {
      action: "user.remove",
      orgId: org.id,
      details: { user_id: target.id, email: target.email, role: target.role },
    });
    return { ...view(target), removed_at: now.toISOString() };
  });
}

/** One answer for an unknown email, a removed person and a wrong password (spec §11). */
export const SIGN_IN_REFUSED = "The email or password is not right.";

export interface SignedIn {
  readonly user: UserView & { org_id: string };
  /** The session cookie's value and end: for the answer's Set-Cookie only, never a body. */
  readonly session: { readonly id: string; readonly token: string; readonly expiresAt: Date };
}

/**
 * Checks an email and password and starts a session. An unknown email spends the same scrypt work
 * against a decoy hash, so neither the answer nor its timing tells whether the email exists.
 */
export async function signIn(
  ctx: ServiceContext,
  input: { email: string; password: string },
  client: RequestClient,
): Promise<SignedIn> {
  const decoy = await decoyHash(); // before the lookup: its first computation costs every caller alike
  const email = input.email.trim().toLowerCase();
  const [row] = await ctx.db
    .select()
    .from(users)
    .where(and(eq(users.email, email), isNull(users.removedAt)))
    .limit(1);
  const matches = await verifyPassword(input.password, row?.passwordHash ?? decoy);
  if (!row || !matches) {
    // The email tried is not a secret and says what was aimed at; the password never is stored.
    await recordChange(ctx, ctx.db, {
      action: "auth.login_failed",
      outcome: "denied",
      orgId: row?.orgId,
      details: row
        ? { email, user_id: row.id, reason: "wrong_password" }
        : { email, reason: "unknown_email" },
      client,
    });
    throw new ServiceError("unauthorized", SIGN_IN_REFUSED);
  }
  const actorCtx = { ...ctx, actor: `user:${row.id}` };
  const now = ctx.now();
  return ctx.db.transaction(async (tx) => {
    const session = await createSession(tx, row.id, ctx.config, now, client);
    await recordChange(actorCtx, tx, {
      action: "auth.login",
      orgId: row.orgId,
      details: { user_id: row.id, email: row.email, session_id: session.sessionId },
      client,
    });
    return {
      user: { ...view(row), org_id: row.orgId },
      session: { id: session.sessionId, token: session.token, expiresAt: session.expiresAt },
    };
  });
}

/** Ends one session (sign-out). */
export async function signOut(
  ctx: ServiceContext,
  input: { orgId: string; userId: string; sessionId: string },
  client: RequestClient,
): Promise<void> {
  await ctx.db.transaction(async (tx) => {
    await revokeSession(tx, input.sessionId, ctx.now());
    await recordChange(ctx, tx, {
      action: "auth.logout",
      orgId: input.orgId,
      details: { user_id: input.userId, session_id: input.sessionId },
      client,
    });
  });
}

/**
 * Replaces a person's password after checking the current one, and ends every other session of
 * theirs (a stolen session does not survive the change); the one that made the change goes on.
 */
export async function changePassword(
  ctx: ServiceContext,
  input: { userId: string; sessionId: string; current: string; next: string },
  client: RequestClient,
): Promise<void> {
  const [row] = await ctx.db
    .select()
    .from(users)
    .where(and(eq(users.id, input.userId), isNull(users.removedAt)))
    .limit(1);
  if (!row) throw new ServiceError("unauthorized", "Sign in first.");
  if (!(await verifyPassword(input.current, row.passwordHash))) {
    await recordChange(ctx, ctx.db, {
      action: "user.password.change",
      outcome: "denied",
      orgId: row.orgId,
      details: { user_id: row.id, email: row.email, reason: "wrong_current_password" },
      client,
    });
    throw new ServiceError("forbidden", "The current password is not right; the password was not changed.");
  }
  if (input.next === input.current)
    throw new ServiceError("validation", "Invalid new_password: must differ from the current password.", {
      new_password: ["must differ from the current password"],
    });
  const passwordHash = await hashPassword(input.next);
  await ctx.db.transaction(async (tx) => {
    await tx.update(users).set({ passwordHash, mustChangePassword: false }).where(eq(users.id, row.id));
    await revokeUserSessions(tx, row.id, ctx.now(), input.sessionId);
    await recordChange(ctx, tx, {
      action: "user.password.change",
      orgId: row.orgId,
      details: { user_id: row.id, email: row.email, other_sessions_ended: true },
      client,
    });
  });
}
