import { RUN_ID_MAX_CHARS } from "@reoclo/protocol";
import { and, desc, eq, isNull, or, type SQL } from "drizzle-orm";
import { z } from "zod";
import type { ServiceContext } from "../context";
import { auditEvents } from "../db/schema";
import { resolveOrg } from "../orgs/orgs";
import { parseOrThrow } from "../validation";

export const listAuditInput = z.object({
  org: z.string().optional(),
  key: z.uuid("must be a key id").optional(),
  server: z.uuid("must be a server id").optional(),
  run_id: z.string().max(RUN_ID_MAX_CHARS).optional(),
  outcome: z.enum(["allowed", "denied"]).optional(),
  limit: z.number().int().min(1).max(10_000).default(100),
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
  /** How many identical unauthenticated denials this row stands for. */
  repeat_count: number;
  /** For changes: who made it (`admin-cli`), what it was (`key.revoke`) and a secret-free summary. */
  actor: string | null;
  action: string | null;
  details: unknown;
}

export async function listAudit(ctx: ServiceContext, raw: ListAuditInput): Promise<AuditView[]> {
  const input = parseOrThrow(listAuditInput, raw);
  const org = await resolveOrg(ctx, input.org);
  // Refusals of requests without a valid key belong to no organisation; the operator sees them too.
  const where: SQL[] = [
    input.key || input.server
      ? eq(auditEvents.orgId, org.id)
      : or(eq(auditEvents.orgId, org.id), isNull(auditEvents.orgId))!,
  ];
  if (input.key) where.push(eq(auditEvents.keyId, input.key));
  if (input.server) where.push(eq(auditEvents.serverId, input.server));
  if (input.run_id) where.push(eq(auditEvents.runId, input.run_id));
  if (input.outcome) where.push(eq(auditEvents.outcome, input.outcome));
  const rows = await ctx.db
    .select()
    .from(auditEvents)
    .where(and(...where))
    .orderBy(desc(auditEvents.id))
    .limit(input.limit);
  return rows.map((r) => ({
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
    repeat_count: r.repeatCount,
    actor: r.actor,
    action: r.action,
    details: r.details,
  }));
}
