import { CURSOR_MAX_CHARS, isUuid, type OperationOutcome } from "@reoclo/protocol";
import { and, desc, eq, gte, sql } from "drizzle-orm";
import type { Database } from "../db/database";
import { operations, servers } from "../db/schema";
import { ServiceError } from "../errors";

// An organisation's operations, filtered, newest first, a page at a time (spec §11
// `GET /api/operations`). Pages are cut at the (created_at, id) of the last row shown, with
// created_at to the microsecond as stored: rows of the same millisecond are neither skipped nor repeated.

export interface OperationFilters {
  readonly serverId?: string | undefined;
  readonly applicationId?: string | undefined;
  /** The automation key that started it. */
  readonly keyId?: string | undefined;
  /** `user:<id>` or `integration_key:<id>`: who started it when no automation key did. */
  readonly actor?: string | undefined;
  /** The precise outcome (running, completed, timeout, cancelled, failed, lost). */
  readonly status?: OperationOutcome | undefined;
  readonly runId?: string | undefined;
  /** Created at or after. */
  readonly since?: Date | undefined;
}

/** Where the previous page ended: created_at as PostgreSQL's text to the microsecond, and the id. */
export interface ExactPosition {
  readonly at: string;
  readonly id: string;
}

const EXACT_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$/;

export const encodeExactCursor = (p: ExactPosition) =>
  Buffer.from(`${p.at}|${p.id}`, "utf8").toString("base64url");

export function decodeExactCursor(cursor: string): ExactPosition {
  const invalid = () =>
    new ServiceError(
      "validation",
      "cursor must be the next_cursor of a previous page, passed back unchanged.",
      {
        cursor: ["is not a cursor this API gave out"],
      },
    );
  if (cursor.length > CURSOR_MAX_CHARS || !/^[A-Za-z0-9_-]+$/.test(cursor)) throw invalid();
  const [at, id, ...rest] = Buffer.from(cursor, "base64url").toString("utf8").split("|");
  if (rest.length > 0 || at === undefined || !EXACT_TIME.test(at) || !isUuid(id)) throw invalid();
  if (!Number.isFinite(Date.parse(at))) throw invalid();
  return { at, id: id.toLowerCase() };
}

const exactCreatedAt = sql<string>`to_char(${operations.createdAt} at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`;

/** Up to `limit` rows after `after`, with their server's name and their exact position. */
export async function listOperationRows(
  db: Database,
  orgId: string,
  f: OperationFilters,
  limit: number,
  after?: ExactPosition,
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
        f.runId ? eq(operations.runId, f.runId) : undefined,
        f.since ? gte(operations.createdAt, f.since) : undefined,
        after
          ? sql`(${operations.createdAt}, ${operations.id}) < (${after.at}::timestamptz, ${after.id}::uuid)`
          : undefined,
      ),
    )
    .orderBy(desc(operations.createdAt), desc(operations.id))
    .limit(limit);
}
