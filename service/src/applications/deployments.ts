import { isUuid, statusOfOutcome, type OPERATION_STATUSES, type OperationOutcome } from "@reoclo/protocol";
import { and, desc, eq, inArray } from "drizzle-orm";
import { ADMIN_CLI_ACTOR } from "../audit/changes";
import type { ServiceContext } from "../context";
import { automationKeys, integrationKeys, operations, users } from "../db/schema";
import { beforePosition, decodeCursor, exactCreatedAt, pageOf } from "../operations/cursor";
import { outcomeOf } from "../operations/view";
import type { OrgView } from "../orgs/orgs";
import { findApplication } from "./applications";

// An application's deployment history (spec §11, seed 000): its deploy operations newest first,
// with how each ended, how long it took, the ref it was asked for and who started it.

/** Who started a deploy: an automation key (CI), a person, an integration key, or reoclo-admin. */
export type StartedBy =
  | { type: "automation_key"; id: string; name: string; prefix: string }
  | { type: "user"; id: string; email: string | null }
  | { type: "integration_key"; id: string; label: string | null; prefix: string | null }
  | { type: "admin" }
  | { type: "unknown"; actor: string | null };

export interface DeploymentView {
  operation_id: string;
  /** In the published vocabulary (running, completed, failed, timeout). */
  status: (typeof OPERATION_STATUSES)[number];
  /** As it is: also cancelled, lost. */
  outcome: OperationOutcome;
  reason: string | null;
  exit_code: number | null;
  duration_ms: number | null;
  commit_ref: string | null;
  server_id: string;
  run_id: string | null;
  started_by: StartedBy;
  created_at: string;
  started_at: string | null;
  completed_at: string | null;
}

export interface DeploymentPage {
  items: DeploymentView[];
  next_cursor: string | null;
}

const iso = (d: Date | null) => (d ? d.toISOString() : null);
/** The id in an actor (`user:<id>`, `integration_key:<id>`) of that kind. */
function actorId(actor: string | null, kind: "user" | "integration_key"): string | undefined {
  const id = actor?.startsWith(`${kind}:`) ? actor.slice(kind.length + 1) : undefined;
  return isUuid(id) ? id : undefined;
}

export async function listDeployments(
  ctx: ServiceContext,
  org: OrgView,
  input: { id: string; cursor?: string | undefined; limit: number },
): Promise<DeploymentPage> {
  const app = await findApplication(ctx.db, org, input.id);
  const after = input.cursor === undefined ? undefined : decodeCursor(input.cursor);
  const rows = await ctx.db
    .select({
      op: operations,
      at: exactCreatedAt,
      key: { id: automationKeys.id, name: automationKeys.name, prefix: automationKeys.prefix },
    })
    .from(operations)
    .leftJoin(automationKeys, eq(automationKeys.id, operations.keyId))
    .where(
      and(
        eq(operations.orgId, org.id),
        eq(operations.applicationId, app.id),
        eq(operations.operationType, "deploy"),
        after ? beforePosition(after) : undefined,
      ),
    )
    .orderBy(desc(operations.createdAt), desc(operations.id))
    .limit(input.limit + 1);
  const { page, nextCursor } = pageOf(rows, input.limit);
  const who = await startersOf(
    ctx,
    page.map((r) => r.op.actor),
  );
  return {
    items: page.map(({ op, key }) => {
      const outcome = outcomeOf(op);
      const settled = outcome !== "running";
      return {
        operation_id: op.id,
        status: statusOfOutcome(outcome),
        outcome,
        reason: settled ? op.error : null,
        exit_code: settled ? op.exitCode : null,
        duration_ms: settled ? op.durationMs : null,
        commit_ref: op.commitRef,
        server_id: op.serverId,
        run_id: op.runId,
        started_by: key ? { type: "automation_key", ...key } : who(op.actor),
        created_at: op.createdAt.toISOString(),
        started_at: iso(op.startedAt),
        completed_at: iso(op.completedAt),
      };
    }),
    next_cursor: nextCursor,
  };
}

/** Names the people and integration keys of a page in two queries, not one per row. */
async function startersOf(ctx: ServiceContext, actors: (string | null)[]) {
  const userIds = [...new Set(actors.map((a) => actorId(a, "user")).filter((id) => id !== undefined))];
  const keyIds = [
    ...new Set(actors.map((a) => actorId(a, "integration_key")).filter((id) => id !== undefined)),
  ];
  const [people, keys] = await Promise.all([
    userIds.length
      ? ctx.db.select({ id: users.id, email: users.email }).from(users).where(inArray(users.id, userIds))
      : [],
    keyIds.length
      ? ctx.db
          .select({ id: integrationKeys.id, label: integrationKeys.label, prefix: integrationKeys.prefix })
          .from(integrationKeys)
          .where(inArray(integrationKeys.id, keyIds))
      : [],
  ]);
  const emails = new Map(people.map((p) => [p.id, p.email]));
  const labels = new Map(keys.map((k) => [k.id, k]));
  return (actor: string | null): StartedBy => {
    const userId = actorId(actor, "user");
    if (userId) return { type: "user", id: userId, email: emails.get(userId) ?? null };
    const keyId = actorId(actor, "integration_key");
    if (keyId) {
      const k = labels.get(keyId);
      return { type: "integration_key", id: keyId, label: k?.label ?? null, prefix: k?.prefix ?? null };
    }
    if (actor === ADMIN_CLI_ACTOR) return { type: "admin" };
    return { type: "unknown", actor };
  };
}
