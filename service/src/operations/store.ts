import { and, asc, count, desc, eq, gt, inArray, isNull, lt, or, sql } from "drizzle-orm";
import type { Database } from "../db/database";
import { deployQueue, idempotencyRecords, operationOutput, operations, servers } from "../db/schema";
import { AppError } from "../errors";
import type { ListPosition } from "./cursor";
import type { OutputTotals } from "./output";

// Operation rows and their stored output. Every status change goes through here.

export type OperationRow = typeof operations.$inferSelect;
export type NewOperation = typeof operations.$inferInsert;

export async function insertOperation(db: Database, op: NewOperation): Promise<OperationRow> {
  const [row] = await db.insert(operations).values(op).returning();
  if (!row) throw new Error("operation insert returned nothing");
  return row;
}

/**
 * Inserts a deploy operation and its place at the end of its application's queue, atomically
 * (one advisory lock per application, so arrival order is queue order on every instance).
 * With `wait` false it is refused (409 application_busy) while another deploy is queued or runs.
 */
export async function insertQueuedOperation(
  db: Database,
  op: NewOperation,
  applicationId: string,
  wait: boolean,
): Promise<{ row: OperationRow; ahead: number }> {
  return db.transaction(async (tx) => {
    await tx.execute(sql`select pg_advisory_xact_lock(hashtextextended(${applicationId}, 7))`);
    const [busy] = await tx
      .select({ n: count() })
      .from(deployQueue)
      .innerJoin(operations, eq(operations.id, deployQueue.operationId))
      .where(and(eq(deployQueue.applicationId, applicationId), eq(operations.status, "running")));
    const ahead = busy?.n ?? 0;
    if (!wait && ahead > 0)
      throw new AppError(
        "application_busy",
        'Another deploy of this application is running or queued; retry later, or send "wait": true to queue behind it.',
      );
    const [row] = await tx.insert(operations).values(op).returning();
    if (!row) throw new Error("operation insert returned nothing");
    await tx.insert(deployQueue).values({ applicationId, operationId: row.id });
    return { row, ahead };
  });
}

/** The operation whose turn it is: the oldest deploy of the application still running (or waiting). */
export async function deployQueueHead(db: Database, applicationId: string): Promise<string | undefined> {
  const [head] = await db
    .select({ id: deployQueue.operationId })
    .from(deployQueue)
    .innerJoin(operations, eq(operations.id, deployQueue.operationId))
    .where(and(eq(deployQueue.applicationId, applicationId), eq(operations.status, "running")))
    .orderBy(asc(deployQueue.seq))
    .limit(1);
  return head?.id;
}

export async function leaveDeployQueue(db: Database, operationId: string): Promise<void> {
  await db.delete(deployQueue).where(eq(deployQueue.operationId, operationId));
}

/** Queue rows of operations that ended without leaving it (their instance stopped). */
export async function pruneDeployQueue(db: Database): Promise<void> {
  await db.execute(
    sql`delete from deploy_queue q using operations o where o.id = q.operation_id and o.status <> 'running'`,
  );
}

export async function cancelRequested(db: Database, id: string): Promise<boolean> {
  const [row] = await db
    .select({ at: operations.cancelRequestedAt })
    .from(operations)
    .where(eq(operations.id, id))
    .limit(1);
  return row?.at != null;
}

export interface FinalState extends OutputTotals {
  status: "completed" | "timeout" | "cancelled" | "failed" | "lost";
  exitCode: number;
  durationMs: number | null;
  error?: string | null;
  downtimeMs?: number | null;
}

/** Settles a running operation exactly once; returns false if it was already final. */
export async function finalizeOperation(
  db: Database,
  id: string,
  f: FinalState,
  now: Date,
): Promise<boolean> {
  const rows = await db
    .update(operations)
    .set({ ...f, completedAt: now, heartbeatAt: now })
    .where(and(eq(operations.id, id), eq(operations.status, "running")))
    .returning({ id: operations.id });
  return rows.length > 0;
}

export async function getOperation(db: Database, id: string): Promise<OperationRow | undefined> {
  const [row] = await db.select().from(operations).where(eq(operations.id, id)).limit(1);
  return row;
}

export async function getOperationWithServer(db: Database, id: string) {
  const [row] = await db
    .select({ op: operations, serverName: servers.name })
    .from(operations)
    .innerJoin(servers, eq(servers.id, operations.serverId))
    .where(eq(operations.id, id))
    .limit(1);
  return row;
}

/** Newest first; `after` is the last row of the previous page. */
export async function listByRunId(
  db: Database,
  orgId: string,
  runId: string,
  limit: number,
  after?: ListPosition,
) {
  return db
    .select({ op: operations, serverName: servers.name })
    .from(operations)
    .innerJoin(servers, eq(servers.id, operations.serverId))
    .where(
      and(
        eq(operations.orgId, orgId),
        eq(operations.runId, runId),
        after ? sql`(${operations.createdAt}, ${operations.id}) < (${after.createdAt.toISOString()}::timestamptz, ${after.id}::uuid)` : undefined,
      ),
    )
    .orderBy(desc(operations.createdAt), desc(operations.id))
    .limit(limit);
}

/** The operation an API key created with this Idempotency-Key, if it got that far. */
export async function findByIdempotencyKey(db: Database, keyId: string, idempotencyKey: string) {
  return db
    .select({ op: operations, serverName: servers.name })
    .from(idempotencyRecords)
    .innerJoin(operations, eq(operations.id, idempotencyRecords.operationId))
    .innerJoin(servers, eq(servers.id, operations.serverId))
    .where(and(eq(idempotencyRecords.keyId, keyId), eq(idempotencyRecords.idempotencyKey, idempotencyKey)))
    .limit(1);
}

export interface StoredEvent {
  seq: number;
  stream: "stdout" | "stderr";
  data: Buffer;
}

export async function insertOutput(db: Database, operationId: string, events: StoredEvent[]): Promise<void> {
  if (events.length === 0) return;
  await db
    .insert(operationOutput)
    .values(events.map((e) => ({ operationId, seq: e.seq, stream: e.stream, data: e.data })));
}

export async function readOutput(
  db: Database,
  operationId: string,
  afterSeq: number,
  limit: number,
): Promise<StoredEvent[]> {
  const rows = await db
    .select({ seq: operationOutput.seq, stream: operationOutput.stream, data: operationOutput.data })
    .from(operationOutput)
    .where(and(eq(operationOutput.operationId, operationId), gt(operationOutput.seq, afterSeq)))
    .orderBy(asc(operationOutput.seq))
    .limit(limit);
  return rows.map((r) => ({ seq: r.seq, stream: r.stream === "stderr" ? "stderr" : "stdout", data: r.data }));
}

/** Heartbeat of this instance's running operations; returns those someone asked to cancel. */
export async function heartbeat(db: Database, ids: string[], now: Date): Promise<string[]> {
  if (ids.length === 0) return [];
  const rows = await db
    .update(operations)
    .set({ heartbeatAt: now })
    .where(and(inArray(operations.id, ids), eq(operations.status, "running")))
    .returning({ id: operations.id, cancel: operations.cancelRequestedAt });
  return rows.filter((r) => r.cancel !== null).map((r) => r.id);
}

export async function requestCancel(db: Database, id: string, now: Date): Promise<void> {
  await db
    .update(operations)
    .set({ cancelRequestedAt: now })
    .where(
      and(eq(operations.id, id), eq(operations.status, "running"), isNull(operations.cancelRequestedAt)),
    );
}

/**
 * Operations whose runner stopped heart-beating are settled `lost` (spec §4: nothing stays
 * `running` forever; never silently re-run).
 */
export async function settleStale(db: Database, staleBefore: Date, now: Date): Promise<string[]> {
  const rows = await db
    .update(operations)
    .set({
      status: "lost",
      exitCode: 255,
      completedAt: now,
      error: "The service instance running this operation stopped; its outcome on the host is unknown.",
    })
    .where(
      and(
        eq(operations.status, "running"),
        or(
          lt(operations.heartbeatAt, staleBefore),
          and(isNull(operations.heartbeatAt), lt(operations.createdAt, staleBefore)),
        ),
      ),
    )
    .returning({ id: operations.id });
  return rows.map((r) => r.id);
}
