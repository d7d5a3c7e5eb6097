import { CURSOR_MAX_CHARS, RUN_ID_MAX_CHARS } from "@reoclo/protocol";
import { and, desc, eq, gte, isNull, lt, or, type SQL } from "drizzle-orm";
import { z } from "zod";
import type { ServiceContext } from "../context";
import { auditEvents } from "../db/schema";
import { resolveOrg } from "../orgs/orgs";
import { invalidCursor } from "../operations/cursor";
import { parseOrThrow, sinceSchema } from "../validation";

// The audit log, readable (spec §10 `reoclo-admin audit list`, §11 `GET /api/audit`): newest first,
// filtered, a page at a time. Query values may arrive as strings (`limit=20`).

export const listAuditInput = z.object({
  org: z.string().optional(),
  /** Who made a change: `user:<id>`, `integration_key:<id>`, `admin-cli`. */
  actor: z.string().min(1).max(200).optional(),
  /** The automation key of a decision, or the integration key a row is about or was made with. */
  key: z.uuid("must be a key id").optional(),
  server: z.uuid("must be a server id").optional(),
  run_id: z.string().max(RUN_ID_MAX_CHARS).optional(),
  outcome: z.enum(["allowed", "denied"], { error: "must be allowed or denied" }).optional(),
  /** What was changed: `integration_key.create`, `server.update`, … */
  action: z.string().min(1).max(100).optional(),
  since: sinceSchema.optional(),
  /** Opaque: the `next_cursor` of the previous page, passed back unchanged. */
  cursor: z.string().min(1).max(CURSOR_MAX_CHARS).optional(),
  limit: z.coerce.number({ error: "must be a whole number" }).int().min(1).max(10_000).default(100),
});
export type ListAuditInput = z.input<typeof listAuditInput>;

export interface AuditView {
  id: number;
  at: string;
  outcome: string;
  reason: string;
  key_id: string | null;
  operation: string | null;
  server_id: string | null;
  credential_id: string | null;
  application_id: string | null;
  operation_id: string | null;
  method: string | null;
  path: string | null;
  peer_ip: string | null;
  client_ip: string | null;
  user_agent: string | null;
  request_id: string | null;
  run_id: string | null;
  run_context_claimed: unknown;
  /** The verified claims of the OIDC token the key was minted for (spec §12), else null. */
  run_context_verified: unknown;
  /** How many identical unauthenticated denials this row stands for. */
  repeat_count: number;
  /** For changes: who made it (`admin-cli`), what it was (`key.revoke`) and a secret-free summary. */
  actor: string | null;
  action: string | null;
  details: unknown;
}

export interface AuditPage {
  items: AuditView[];
  next_cursor: string | null;
}

const encodeAuditCursor = (id: number) => Buffer.from(`audit:${id}`, "utf8").toString("base64url");

function decodeAuditCursor(cursor: string): number {
  const m = /^audit:(\d{1,15})$/.exec(Buffer.from(cursor, "base64url").toString("utf8"));
  if (!/^[A-Za-z0-9_-]+$/.test(cursor) || !m?.[1]) throw invalidCursor();
  return Number(m[1]);
}

/**
 * One page of the audit log. Rows of no organisation (refusals of requests without a valid key or
 * session) are listed only when `unowned` is true: for reoclo-admin, the operator of the machine.
 */
export async function listAuditPage(
  ctx: ServiceContext,
  raw: ListAuditInput,
  scope: { unowned: boolean },
): Promise<AuditPage> {
  const input = parseOrThrow(listAuditInput, raw);
  const org = await resolveOrg(ctx, input.org);
  const where: SQL[] = [
    !scope.unowned || input.key || input.server
      ? eq(auditEvents.orgId, org.id)
      : or(eq(auditEvents.orgId, org.id), isNull(auditEvents.orgId))!,
  ];
  if (input.actor) where.push(eq(auditEvents.actor, input.actor));
  if (input.key)
    where.push(or(eq(auditEvents.keyId, input.key), eq(auditEvents.actor, `integration_key:${input.key}`))!);
  if (input.server) where.push(eq(auditEvents.serverId, input.server));
  if (input.run_id) where.push(eq(auditEvents.runId, input.run_id));
  if (input.outcome) where.push(eq(auditEvents.outcome, input.outcome));
  if (input.action) where.push(eq(auditEvents.action, input.action));
  if (input.since) where.push(gte(auditEvents.at, new Date(input.since)));
  if (input.cursor) where.push(lt(auditEvents.id, decodeAuditCursor(input.cursor)));
  const rows = await ctx.db
    .select()
    .from(auditEvents)
    .where(and(...where))
    .orderBy(desc(auditEvents.id))
    .limit(input.limit + 1);
  const page = rows.slice(0, input.limit);
  const last = page.at(-1);
  return {
    items: page.map(auditView),
    next_cursor: rows.length > input.limit && last ? encodeAuditCursor(last.id) : null,
  };
}

/** The operator's list (reoclo-admin): the rows of one organisation and those of none. */
export async function listAudit(ctx: ServiceContext, raw: ListAuditInput): Promise<AuditView[]> {
  return (await listAuditPage(ctx, raw, { unowned: true })).items;
}

const auditView = (r: typeof auditEvents.$inferSelect): AuditView => ({
  id: r.id,
  at: r.at.toISOString(),
  outcome: r.outcome,
  reason: r.reason,
  key_id: r.keyId,
  operation: r.operation,
  server_id: r.serverId,
  credential_id: r.credentialId,
  application_id: r.applicationId,
  operation_id: r.operationId,
  method: r.method,
  path: r.path,
  peer_ip: r.peerIp,
  client_ip: r.clientIp,
  user_agent: r.userAgent,
  request_id: r.requestId,
  run_id: r.runId,
  run_context_claimed: r.runContextClaimed,
  run_context_verified: r.runContextVerified,
  repeat_count: r.repeatCount,
  actor: r.actor,
  action: r.action,
  details: r.details,
});
