import { and, asc, count, desc, eq, gt, inArray, isNotNull, isNull, lt, or, sql } from "drizzle-orm";
import {
  EXIT_CODE_FAILED,
  OUTPUT_TAIL_BYTES,
  type OutputStream,
  type TerminalOutcome,
} from "@reoclo/protocol";
import type { Database } from "../db/database";
import {
  auditEvents,
  deployQueue,
  idempotencyRecords,
  operationOutput,
  operations,
  servers,
  type ResumePoint,
} from "../db/schema";
import { hasErrorCode } from "../db/errors";
import { ServiceError } from "../errors";

// Operation rows and their stored output. Every status change goes through here.

/** Output sequence numbers (the SSE event ids) are a 32-bit column. */
export const MAX_SEQ = 2 ** 31 - 1;

export type OperationRow = typeof operations.$inferSelect;
export type NewOperation = typeof operations.$inferInsert;

export interface IdempotencyClaim {
  keyId: string;
  orgId: string;
  key: string;
  requestHash: string;
  expiresAt: Date;
}

export type Created =
  { kind: "created"; row: OperationRow; ahead: number } | { kind: "replay"; operationId: string };

/** How long a request waits for a first request with the same Idempotency-Key still being created. */
const CLAIM_WAIT = "3s";
const IN_PROGRESS = "A request with this Idempotency-Key is still being created; retry shortly.";

/**
 * Creates an operation in one transaction with everything that must exist with it or not at all:
 * its Idempotency-Key claim (spec §6), its place in its application's deploy queue, and the link
 * from the audit row that allowed it. An instance that dies half-way leaves nothing behind, so a
 * retry with the same key runs the command exactly once (issue 13, item 1).
 *
 * A second request with the same key waits for the first one's transaction (up to CLAIM_WAIT, then
 * 409), then replays the operation it created (or 422 for another body).
 */
export async function createOperation(
  db: Database,
  op: NewOperation & { id: string },
  opts: {
    claim?: IdempotencyClaim | undefined;
    queue?: { applicationId: string; wait: boolean } | undefined;
    auditId?: number | undefined;
    now: Date;
  },
): Promise<Created> {
  if (!opts.claim && !opts.queue) {
    // Nothing to create with it: two statements, no transaction (this is every plain /exec).
    const [row] = await db.insert(operations).values(op).returning();
    if (!row) throw new Error("operation insert returned nothing");
    if (opts.auditId) await linkAudit(db, opts.auditId, row.id);
    return { kind: "created", row, ahead: 0 };
  }
  try {
    return await db.transaction(async (tx) => {
      const claim = opts.claim;
      if (claim) {
        const seen = await claimKey(tx, claim, op.id, opts.now);
        if (seen) return seen;
      }
      let ahead = 0;
      if (opts.queue) {
        const { applicationId, wait } = opts.queue;
        // One lock per application: arrival order is queue order, on every instance.
        await tx.execute(sql`select pg_advisory_xact_lock(hashtextextended(${applicationId}, 7))`);
        const [busy] = await tx
          .select({ n: count() })
          .from(deployQueue)
          .innerJoin(operations, eq(operations.id, deployQueue.operationId))
          .where(and(eq(deployQueue.applicationId, applicationId), eq(operations.status, "running")));
        ahead = busy?.n ?? 0;
        if (!wait && ahead > 0)
          throw new ServiceError(
            "application_busy",
            'Another deploy of this application is running or queued; retry later, or send "wait": true to queue behind it.',
          );
      }
      const [row] = await tx.insert(operations).values(op).returning();
      if (!row) throw new Error("operation insert returned nothing");
      if (opts.queue)
        await tx.insert(deployQueue).values({ applicationId: opts.queue.applicationId, operationId: row.id });
      if (opts.auditId) await linkAudit(tx, opts.auditId, row.id);
      return { kind: "created" as const, row, ahead };
    });
  } catch (err) {
    // lock_timeout while waiting for the first request's claim (SQLSTATE 55P03).
    if (hasErrorCode(err, "55P03")) throw new ServiceError("idempotency_in_progress", IN_PROGRESS);
    throw err;
  }
}

/** The audit row that allowed a request names the operation it started. */
async function linkAudit(db: Database, auditId: number, operationId: string): Promise<void> {
  await db.update(auditEvents).set({ operationId }).where(eq(auditEvents.id, auditId));
}

/** Inserts the claim naming `operationId`, or answers what an earlier request with the key did. */
async function claimKey(
  tx: Database,
  claim: IdempotencyClaim,
  operationId: string,
  now: Date,
): Promise<Created | undefined> {
  const where = and(
    eq(idempotencyRecords.keyId, claim.keyId),
    eq(idempotencyRecords.idempotencyKey, claim.key),
  );
  const insert = async () =>
    (
      await tx
        .insert(idempotencyRecords)
        .values({
          keyId: claim.keyId,
          orgId: claim.orgId,
          idempotencyKey: claim.key,
          requestHash: claim.requestHash,
          operationId,
          expiresAt: claim.expiresAt,
        })
        .onConflictDoNothing()
        .returning({ key: idempotencyRecords.idempotencyKey })
    ).length > 0;
  // A first request with this key still being created holds its row: wait for it, but not forever.
  await tx.execute(sql`set local lock_timeout = ${sql.raw(`'${CLAIM_WAIT}'`)}`);
  let claimed = await insert();
  if (!claimed) {
    const [seen] = await tx.select().from(idempotencyRecords).where(where).limit(1);
    if (seen && seen.expiresAt.getTime() > now.getTime()) {
      if (seen.requestHash !== claim.requestHash) {
        throw new ServiceError(
          "idempotency_key_mismatch",
          "This Idempotency-Key was used with a different request body; use a new key for a new request.",
        );
      }
      // Claims made before operations were created with them may lack the id: still in progress.
      if (!seen.operationId) throw new ServiceError("idempotency_in_progress", IN_PROGRESS);
      return { kind: "replay", operationId: seen.operationId };
    }
    // Expired (kept 24 h), or removed meanwhile: the key is free again.
    await tx.delete(idempotencyRecords).where(and(where, lt(idempotencyRecords.expiresAt, now)));
    claimed = await insert();
    if (!claimed) throw new ServiceError("idempotency_in_progress", IN_PROGRESS);
  }
  await tx.execute(sql`set local lock_timeout = 0`);
  return undefined;
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

/** What an operation's recorded output amounts to, stored with its end. */
export interface OutputTotals {
  stdoutTail: Buffer;
  stderrTail: Buffer;
  stdoutBytes: number;
  stderrBytes: number;
  stdoutTruncated: boolean;
  stderrTruncated: boolean;
  lastSeq: number;
}

export interface FinalState extends OutputTotals {
  status: TerminalOutcome;
  exitCode: number;
  durationMs: number | null;
  error?: string | null;
  downtimeMs?: number | null;
}

/**
 * Settles an operation of this instance exactly once and returns the final row, or undefined if
 * it was already final. An outcome the runner saw also replaces a `lost` that the reconciler
 * recorded while this instance could not reach the database: only a really unknown end stays lost.
 */
export async function finalizeOperation(
  db: Database,
  id: string,
  runnerId: string,
  f: FinalState,
  now: Date,
): Promise<OperationRow | undefined> {
  const [row] = await db
    .update(operations)
    // Its sealed mask values and resume point served a takeover; an ended operation needs neither.
    .set({ ...f, completedAt: now, heartbeatAt: now, settledBy: "runner", maskSealed: null, resume: null })
    .where(
      and(
        eq(operations.id, id),
        or(
          // Running and still this instance's (another may have taken it over)…
          and(eq(operations.status, "running"), eq(operations.runnerId, runnerId)),
          and(
            eq(operations.status, "lost"),
            eq(operations.settledBy, "reconciler"),
            eq(operations.runnerId, runnerId),
          ),
        ),
      ),
    )
    .returning();
  return row;
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
  stream: OutputStream;
  data: Buffer;
}

/**
 * Idempotent: a batch retried after its first attempt was written (its answer lost) is not doubled.
 * With a resume point, it is stored with the events in one transaction: whoever takes the operation
 * over finds output and point in agreement.
 */
export async function insertOutput(
  db: Database,
  operationId: string,
  events: StoredEvent[],
  resume?: { point: ResumePoint; runnerId: string },
): Promise<boolean> {
  const insert = (d: Pick<Database, "insert">) =>
    d
      .insert(operationOutput)
      .values(events.map((e) => ({ operationId, seq: e.seq, stream: e.stream, data: e.data })))
      .onConflictDoNothing();
  if (resume === undefined) {
    if (events.length > 0) await insert(db);
    return true;
  }
  // Only while it is still this instance's: one that another instance took over gets nothing more from here.
  return db.transaction(async (tx) => {
    const owned = await tx
      .update(operations)
      .set({ resume: resume.point })
      .where(
        and(
          eq(operations.id, operationId),
          eq(operations.status, "running"),
          eq(operations.runnerId, resume.runnerId),
        ),
      )
      .returning({ id: operations.id });
    if (owned.length === 0) return false;
    if (events.length > 0) await insert(tx);
    return true;
  });
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
  return rows.map((r) => ({ seq: r.seq, stream: r.stream, data: r.data }));
}

/**
 * Heartbeat of this instance's running operations: returns the ones it still runs (another
 * instance may have taken one over), and those someone asked to cancel, and who.
 */
export async function heartbeat(
  db: Database,
  runnerId: string,
  ids: string[],
  now: Date,
): Promise<{ owned: Set<string>; cancel: { id: string; by: string | null }[] }> {
  if (ids.length === 0) return { owned: new Set(), cancel: [] };
  const rows = await db
    .update(operations)
    .set({ heartbeatAt: now })
    .where(
      and(inArray(operations.id, ids), eq(operations.status, "running"), eq(operations.runnerId, runnerId)),
    )
    .returning({ id: operations.id, cancel: operations.cancelRequestedAt, by: operations.cancelledBy });
  return {
    owned: new Set(rows.map((r) => r.id)),
    cancel: rows.filter((r) => r.cancel !== null).map((r) => ({ id: r.id, by: r.by })),
  };
}

/** An operation this instance took over, and since when no instance had been heard from for it. */
export interface Claimed {
  row: OperationRow;
  /** The instance it was taken from; null when it was handed over. */
  from: string | null;
  silentSince: Date;
}

/**
 * Takes over running operations that can be attached to again and whose instance handed them over
 * (stopping) or went quiet: each becomes this instance's, and output stored past its resume point
 * is dropped (it is read from the host again). Instances never claim the same one twice.
 */
export async function claimOrphans(
  db: Database,
  runnerId: string,
  staleBefore: Date,
  now: Date,
  /** Also those whose instance went quiet, not only those handed over. */
  includeStale = true,
  limit = 20,
): Promise<Claimed[]> {
  return db.transaction(async (tx) => {
    const rows = await tx
      .select()
      .from(operations)
      .where(
        and(
          eq(operations.status, "running"),
          isNotNull(operations.resume),
          includeStale
            ? or(isNull(operations.runnerId), lt(operations.heartbeatAt, staleBefore))
            : isNull(operations.runnerId),
        ),
      )
      .limit(limit)
      .for("update", { skipLocked: true });
    const claimed: Claimed[] = [];
    for (const row of rows) {
      const point = row.resume!;
      await tx
        .delete(operationOutput)
        .where(and(eq(operationOutput.operationId, row.id), gt(operationOutput.seq, point.seq)));
      await tx.update(operations).set({ runnerId, heartbeatAt: now }).where(eq(operations.id, row.id));
      claimed.push({
        row: { ...row, runnerId, heartbeatAt: now },
        from: row.runnerId,
        silentSince: row.heartbeatAt ?? row.startedAt ?? row.createdAt,
      });
    }
    return claimed;
  });
}

/** This instance stops following these operations: any instance may take them over at once. */
export async function handOver(db: Database, runnerId: string, ids: string[]): Promise<void> {
  if (ids.length === 0) return;
  await db
    .update(operations)
    .set({ runnerId: null })
    .where(
      and(inArray(operations.id, ids), eq(operations.status, "running"), eq(operations.runnerId, runnerId)),
    );
}

/** The tails of an operation's stored output, where an instance taking it over starts. */
export async function storedTails(
  db: Database,
  operationId: string,
): Promise<{ stdout: Buffer; stderr: Buffer }> {
  const [stdout, stderr] = [
    await storedTail(db, operationId, "stdout"),
    await storedTail(db, operationId, "stderr"),
  ];
  return { stdout: stdout.tail, stderr: stderr.tail };
}

export async function requestCancel(db: Database, id: string, now: Date, by: string): Promise<void> {
  await db
    .update(operations)
    .set({ cancelRequestedAt: now, cancelledBy: by })
    .where(
      and(eq(operations.id, id), eq(operations.status, "running"), isNull(operations.cancelRequestedAt)),
    );
}

/**
 * Operations whose runner stopped heart-beating are settled `lost` (spec §4: nothing stays
 * `running` forever; never silently re-run), each with the tail of the output it stored and a
 * last stderr line saying why, so the answer is not empty.
 */
export async function settleStale(
  db: Database,
  staleBefore: Date,
  now: Date,
  capBytes: number,
  /** Operations that could be taken over are settled too once their heartbeat is older than this. */
  resumableBefore: Date = staleBefore,
): Promise<string[]> {
  const stale = await db
    .select({ id: operations.id })
    .from(operations)
    .where(
      and(
        eq(operations.status, "running"),
        // Those that can be attached to again are taken over instead (claimOrphans), unless nobody
        // has for longer than a takeover could still help.
        or(
          isNull(operations.resume),
          lt(operations.heartbeatAt, resumableBefore),
          isNull(operations.heartbeatAt),
        ),
        or(
          lt(operations.heartbeatAt, staleBefore),
          and(isNull(operations.heartbeatAt), lt(operations.createdAt, staleBefore)),
        ),
      ),
    )
    .limit(100);
  const settled: string[] = [];
  for (const { id } of stale) if (await settleLost(db, id, staleBefore, now, capBytes)) settled.push(id);
  return settled;
}

async function settleLost(
  db: Database,
  id: string,
  staleBefore: Date,
  now: Date,
  capBytes: number,
): Promise<boolean> {
  return db.transaction(async (tx) => {
    // The row lock makes this exactly once across instances, and waits out a runner finishing it.
    const [op] = await tx
      .select()
      .from(operations)
      .where(and(eq(operations.id, id), eq(operations.status, "running")))
      .for("update");
    const stillStale = op && (op.heartbeatAt ?? op.createdAt).getTime() < staleBefore.getTime();
    if (!op || !stillStale) return false;
    const reason = `The service instance running this operation stopped heart-beating at ${op.heartbeatAt?.toISOString() ?? "an unknown time"}; the command's end was not seen, so its outcome on the host is unknown.`;
    const [last] = await tx
      .select({ seq: sql<number>`coalesce(max(${operationOutput.seq}), 0)::int` })
      .from(operationOutput)
      .where(eq(operationOutput.operationId, id));
    const seq = Math.max(Number(last?.seq ?? 0), op.lastSeq);
    const stdout = await storedTail(tx, id, "stdout");
    const stderr = await storedTail(tx, id, "stderr");
    // The reason ends the answer's stderr (the tail), not the stored stream: if the runner comes
    // back with the real outcome it replaces all of this, and its own events keep their numbers.
    const line = Buffer.from(`reoclo: ${reason}\n`);
    const said = Buffer.concat([stderr.tail, line]);
    const stderrTail = said.subarray(Math.max(0, said.length - OUTPUT_TAIL_BYTES));
    await tx
      .update(operations)
      .set({
        status: "lost",
        exitCode: EXIT_CODE_FAILED,
        completedAt: now,
        settledBy: "reconciler",
        error: reason,
        lastSeq: seq,
        stdoutTail: stdout.tail,
        stderrTail,
        stdoutBytes: stdout.bytes,
        stderrBytes: stderr.bytes,
        stdoutTruncated: stdout.bytes > stdout.tail.length || stdout.bytes >= capBytes,
        stderrTruncated: stderr.bytes + line.length > stderrTail.length || stderr.bytes >= capBytes,
      })
      .where(eq(operations.id, id));
    return true;
  });
}

/** The last OUTPUT_TAIL_BYTES of one stream as stored, and how many bytes were stored in all. */
async function storedTail(
  db: Database,
  operationId: string,
  stream: OutputStream,
): Promise<{ tail: Buffer; bytes: number }> {
  const where = and(eq(operationOutput.operationId, operationId), eq(operationOutput.stream, stream));
  const [total] = await db
    .select({ bytes: sql<number>`coalesce(sum(length(${operationOutput.data})), 0)::bigint` })
    .from(operationOutput)
    .where(where);
  const chunks: Buffer[] = [];
  let size = 0;
  let before = Number.MAX_SAFE_INTEGER;
  while (size < OUTPUT_TAIL_BYTES) {
    const rows = await db
      .select({ seq: operationOutput.seq, data: operationOutput.data })
      .from(operationOutput)
      .where(and(where, lt(operationOutput.seq, Math.min(before, MAX_SEQ))))
      .orderBy(desc(operationOutput.seq))
      .limit(64);
    for (const r of rows) {
      chunks.unshift(r.data);
      size += r.data.length;
      before = r.seq;
      if (size >= OUTPUT_TAIL_BYTES) break;
    }
    if (rows.length < 64) break;
  }
  const all = Buffer.concat(chunks);
  return {
    tail: all.subarray(Math.max(0, all.length - OUTPUT_TAIL_BYTES)),
    bytes: Number(total?.bytes ?? 0),
  };
}
