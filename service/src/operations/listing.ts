import type { OperationOutcome, OperationType } from "@reoclo/protocol";
import { and, desc, eq, gte } from "drizzle-orm";
import type { Database } from "../db/database";
import { operations, servers } from "../db/schema";
import { beforePosition, exactCreatedAt, type ListPosition } from "./cursor";

// An organisation's operations, filtered, newest first, a page at a time (spec §11
// `GET /api/operations`, and the automation API's list of a CI run), cut into pages by cursor.ts.

export interface OperationFilters {
  readonly serverId?: string | undefined;
  readonly applicationId?: string | undefined;
  /** The automation key that started it. */
  readonly keyId?: string | undefined;
  /** `user:<id>` or `integration_key:<id>`: who started it when no automation key did. */
  readonly actor?: string | undefined;
  /** The precise outcome (running, completed, timeout, cancelled, failed, lost). */
  readonly status?: OperationOutcome | undefined;
  readonly type?: OperationType | undefined;
  readonly runId?: string | undefined;
  /** Created at or after. */
  readonly since?: Date | undefined;
}

/** Up to `limit` rows after `after`, with their server's name and their exact position. */
export async function listOperationRows(
  db: Database,
  orgId: string,
  f: OperationFilters,
  limit: number,
  after?: ListPosition,
) {
  return db
    .select({ op: operations, serverName: servers.name, at: exactCreatedAt })
    .from(operations)
    .innerJoin(servers, eq(servers.id, operations.serverId))
    .where(
      and(
        eq(operations.orgId, orgId),
        f.serverId ? eq(operations.serverId, f.serverId) : undefined,
        f.applicationId ? eq(operations.applicationId, f.applicationId) : undefined,
        f.keyId ? eq(operations.keyId, f.keyId) : undefined,
        f.actor ? eq(operations.actor, f.actor) : undefined,
        f.status ? eq(operations.status, f.status) : undefined,
        f.type ? eq(operations.operationType, f.type) : undefined,
        f.runId ? eq(operations.runId, f.runId) : undefined,
        f.since ? gte(operations.createdAt, f.since) : undefined,
        after ? beforePosition(after) : undefined,
      ),
    )
    .orderBy(desc(operations.createdAt), desc(operations.id))
    .limit(limit);
}
