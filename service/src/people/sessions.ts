import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import type { Role } from "@reoclo/protocol";
import { and, eq, isNull, ne } from "drizzle-orm";
import type { Config } from "../config";
import type { Database } from "../db/database";
import { sessions, users } from "../db/schema";

// Dashboard sessions (spec §11): a random token in an HttpOnly cookie, its hash in the database,
// read on every request (so a sign-out, a password change or a removal takes effect on the next
// request on every instance), ended after a time without requests and after a maximum age.

export const SESSION_COOKIE = "reoclo_session";
const TOKEN_BYTES = 32;
/** last_seen_at is written at most this often per session (it only moves the idle deadline). */
const TOUCH_INTERVAL_MS = 60_000;

const hashToken = (token: string) => createHash("sha256").update(token, "utf8").digest();

export interface SessionUser {
  readonly sessionId: string;
  readonly userId: string;
  readonly orgId: string;
  readonly email: string;
  readonly role: Role;
  readonly mustChangePassword: boolean;
}

export async function createSession(
  db: Database,
  userId: string,
  config: Pick<Config, "sessionMaxHours">,
  now: Date,
  client: { ip?: string | undefined; userAgent?: string | undefined },
): Promise<{ token: string; sessionId: string; expiresAt: Date }> {
  const token = randomBytes(TOKEN_BYTES).toString("base64url");
  const expiresAt = new Date(now.getTime() + config.sessionMaxHours * 3_600_000);
  const [row] = await db
    .insert(sessions)
    .values({
      tokenHash: hashToken(token),
      userId,
      createdAt: now,
      lastSeenAt: now,
      expiresAt,
      clientIp: client.ip ?? null,
      userAgent: client.userAgent?.slice(0, 512) ?? null,
    })
    .returning({ id: sessions.id });
  return { token, sessionId: row!.id, expiresAt };
}

/** The signed-in person of a cookie's token, or undefined (unknown, ended, idle, removed). */
export async function findSession(
  db: Database,
  token: string,
  config: Pick<Config, "sessionIdleMinutes">,
  now: Date,
): Promise<SessionUser | undefined> {
  if (!/^[A-Za-z0-9_-]{43}$/.test(token)) return undefined;
  const hash = hashToken(token);
  const [row] = await db
    .select({ session: sessions, user: users })
    .from(sessions)
    .innerJoin(users, eq(users.id, sessions.userId))
    .where(eq(sessions.tokenHash, hash))
    .limit(1);
  if (!row || !timingSafeEqual(row.session.tokenHash, hash)) return undefined;
  const { session, user } = row;
  const idleLimit = config.sessionIdleMinutes * 60_000;
  if (
    session.revokedAt ||
    user.removedAt ||
    session.expiresAt.getTime() <= now.getTime() ||
    now.getTime() - session.lastSeenAt.getTime() > idleLimit
  )
    return undefined;
  if (now.getTime() - session.lastSeenAt.getTime() > TOUCH_INTERVAL_MS) {
    await db.update(sessions).set({ lastSeenAt: now }).where(eq(sessions.id, session.id));
  }
  return {
    sessionId: session.id,
    userId: user.id,
    orgId: user.orgId,
    email: user.email,
    role: user.role,
    mustChangePassword: user.mustChangePassword,
  };
}

export async function revokeSession(db: Database, sessionId: string, now: Date): Promise<void> {
  await db
    .update(sessions)
    .set({ revokedAt: now })
    .where(and(eq(sessions.id, sessionId), isNull(sessions.revokedAt)));
}

/** Ends every session of a person, but `keep` (the one that changed the password). */
export async function revokeUserSessions(
  db: Database,
  userId: string,
  now: Date,
  keep?: string,
): Promise<void> {
  await db
    .update(sessions)
    .set({ revokedAt: now })
    .where(
      and(eq(sessions.userId, userId), isNull(sessions.revokedAt), keep ? ne(sessions.id, keep) : undefined),
    );
}
