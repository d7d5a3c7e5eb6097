import { RUN_ID_MAX_CHARS } from "@reoclo/protocol";
import { classifyDatabaseError, describeDatabaseError } from "../db/errors";
import type { DatabaseHandle } from "../db/database";
import { auditEvents } from "../db/schema";
import { storableJson, storableTextOrNull } from "../db/storable";
import type { Logger } from "../logger";

export type AuditEvent = typeof auditEvents.$inferInsert;

const FLUSH_INTERVAL_MS = 5_000;

const INSERT_SQL = `insert into audit_events (org_id, key_id, outcome, reason, operation, server_id, credential_id,
  application_id, operation_id, method, path, peer_ip, client_ip, user_agent, request_id, run_id, run_context_claimed,
  actor, action, details, run_context_verified)
values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17::text::jsonb, $18, $19, $20::text::jsonb,
  $21::text::jsonb)
returning id`;
const MAX_PENDING_GROUPS = 10_000;
/** Rows kept for a database that is down, beyond which they are counted into one overflow row. */
const MAX_RETAINED_ROWS = 10_000;
const FLUSH_CHUNK_ROWS = 500;
const OVERFLOW_GROUP = "\u0000overflow";
const PATH_MAX_CHARS = 2048;
const FIELD_MAX_CHARS = 512;

/**
 * Every value a client controls, made storable: PostgreSQL's text and jsonb cannot hold NUL, and
 * jsonb neither lone surrogates nor unbounded nesting. Escaped, never dropped: the row is written.
 */
export function storableEvent(e: AuditEvent): AuditEvent {
  return {
    ...e,
    reason: storableTextOrNull(e.reason, FIELD_MAX_CHARS) ?? "",
    method: storableTextOrNull(e.method, 32),
    path: storableTextOrNull(e.path, PATH_MAX_CHARS),
    peerIp: storableTextOrNull(e.peerIp, 64),
    clientIp: storableTextOrNull(e.clientIp, 64),
    userAgent: storableTextOrNull(e.userAgent, FIELD_MAX_CHARS),
    requestId: storableTextOrNull(e.requestId, 64),
    runId: storableTextOrNull(e.runId, RUN_ID_MAX_CHARS),
    runContextClaimed:
      e.runContextClaimed === undefined || e.runContextClaimed === null
        ? null
        : storableJson(e.runContextClaimed),
    runContextVerified:
      e.runContextVerified === undefined || e.runContextVerified === null
        ? null
        : storableJson(e.runContextVerified),
    details:
      e.details === undefined || e.details === null ? null : storableJson(e.details, { maxChars: 16_384 }),
  };
}

const jsonParam = (v: unknown) => (v === undefined || v === null ? null : JSON.stringify(v));

/**
 * Writes audit decisions. Decisions about a request that reached a key are written before the
 * answer (and before any work: a failed write means nothing runs). Denials of requests without
 * a well-formed key must cost no database work per request, so identical ones are folded in
 * memory and written every few seconds as one row with `repeat_count`. Rows that could not be
 * written because the database was down are kept (bounded) and written once it answers again.
 */
export class AuditWriter {
  private readonly pending = new Map<string, AuditEvent>();
  private retained: AuditEvent[] = [];
  private readonly timer: NodeJS.Timeout;
  private flushing: Promise<void> = Promise.resolve();

  constructor(
    private readonly database: DatabaseHandle,
    private readonly logger: Logger,
    flushIntervalMs = FLUSH_INTERVAL_MS,
  ) {
    this.timer = setInterval(() => void this.flush(), flushIntervalMs);
    this.timer.unref();
  }

  /** One prepared round trip: this runs on every authenticated request. */
  async record(event: AuditEvent): Promise<number> {
    const e = storableEvent(event);
    const [row] = await this.database.query<{ id: string | number }>(INSERT_SQL, [
      e.orgId ?? null,
      e.keyId ?? null,
      e.outcome,
      e.reason,
      e.operation ?? null,
      e.serverId ?? null,
      e.credentialId ?? null,
      e.applicationId ?? null,
      e.operationId ?? null,
      e.method ?? null,
      e.path ?? null,
      e.peerIp ?? null,
      e.clientIp ?? null,
      e.userAgent ?? null,
      e.requestId ?? null,
      e.runId ?? null,
      jsonParam(e.runContextClaimed),
      e.actor ?? null,
      e.action ?? null,
      jsonParam(e.details),
      jsonParam(e.runContextVerified),
    ]);
    return Number(row?.id ?? 0);
  }

  /**
   * Writes the row now, or, when the database does not answer, keeps it for the next flush, so
   * a decision is recorded even while the database restarts. Never throws.
   */
  async recordOrRetain(event: AuditEvent): Promise<void> {
    try {
      await this.record(event);
    } catch (err) {
      this.logger.warn("audit write failed; kept for the next flush", {
        reason: event.reason,
        error: describeDatabaseError(err),
      });
      this.retain([{ ...event, at: event.at ?? new Date() }]);
    }
  }

  /**
   * Folds by reason and addresses only (a caller controls its user agent and path, so those
   * must not multiply rows); the first user agent seen is kept. Past the cap, overflow is
   * counted into one row rather than dropped.
   */
  recordDeferred(event: AuditEvent): void {
    const group = [event.reason, event.peerIp, event.clientIp].join("\u0000");
    const seen =
      this.pending.get(group) ?? (this.pending.size >= MAX_PENDING_GROUPS ? this.overflow(event) : undefined);
    if (seen) seen.repeatCount = (seen.repeatCount ?? 1) + 1;
    else this.pending.set(group, { ...event, at: new Date(), repeatCount: 1 });
  }

  private overflow(event: AuditEvent): AuditEvent {
    let row = this.pending.get(OVERFLOW_GROUP);
    if (!row) {
      row = {
        ...event,
        at: new Date(),
        reason: "unauthenticated_overflow",
        peerIp: null,
        clientIp: null,
        userAgent: null,
        repeatCount: 0,
      };
      this.pending.set(OVERFLOW_GROUP, row);
    }
    return row;
  }

  private retain(rows: AuditEvent[]): void {
    this.retained.push(...rows);
    if (this.retained.length > MAX_RETAINED_ROWS) {
      const dropped = this.retained.splice(0, this.retained.length - MAX_RETAINED_ROWS);
      const count = dropped.reduce((n, r) => n + (r.repeatCount ?? 1), 0);
      this.retained.unshift({
        at: dropped[0]?.at ?? new Date(),
        outcome: "denied",
        reason: "audit_overflow",
        repeatCount: count,
      });
    }
  }

  /** Writes folded and retained rows; flushes never overlap, so no row is written twice. */
  flush(): Promise<void> {
    this.flushing = this.flushing.then(() => this.flushOnce());
    return this.flushing;
  }

  private async flushOnce(): Promise<void> {
    if (this.pending.size === 0 && this.retained.length === 0) return;
    const rows = [...this.retained, ...this.pending.values()].map(storableEvent);
    this.retained = [];
    this.pending.clear();
    // Chunks stay far below PostgreSQL's 65,535 bind parameters per statement.
    for (let i = 0; i < rows.length; i += FLUSH_CHUNK_ROWS) {
      const chunk = rows.slice(i, i + FLUSH_CHUNK_ROWS);
      try {
        await this.database.db.insert(auditEvents).values(chunk);
      } catch (err) {
        if (classifyDatabaseError(err) === "unavailable" || classifyDatabaseError(err) === undefined) {
          // Down (or unknown): keep this chunk and the rest for the next flush, in order.
          this.logger.warn("audit flush failed; rows kept for the next flush", {
            rows: rows.length - i,
            error: describeDatabaseError(err),
          });
          this.retain(rows.slice(i));
          return;
        }
        await this.insertOneByOne(chunk);
      }
    }
  }

  /** One row the database refuses must not take the others of its batch down with it. */
  private async insertOneByOne(chunk: AuditEvent[]): Promise<void> {
    for (const row of chunk) {
      try {
        await this.database.db.insert(auditEvents).values(row);
      } catch (err) {
        this.logger.error("audit row refused by the database and dropped", {
          reason: row.reason,
          request_id: row.requestId,
          error: describeDatabaseError(err),
        });
      }
    }
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    await this.flush();
  }
}
