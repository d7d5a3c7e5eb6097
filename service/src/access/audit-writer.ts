import type { DatabaseHandle } from "../db/database";
import { auditEvents } from "../db/schema";
import type { Logger } from "../logger";

export type AuditEvent = typeof auditEvents.$inferInsert;

const FLUSH_INTERVAL_MS = 5_000;

const INSERT_SQL = `insert into audit_events (org_id, key_id, outcome, reason, operation, server_id, credential_id,
  application_id, operation_id, method, path, peer_ip, client_ip, user_agent, request_id, run_id, run_context_claimed)
values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17::text::jsonb) returning id`;
const MAX_PENDING_GROUPS = 10_000;
const FLUSH_CHUNK_ROWS = 500;
const OVERFLOW_GROUP = "\u0000overflow";

/**
 * Writes audit decisions. Decisions about a request that reached a key are written before the
 * answer (and before any work: a failed write means nothing runs). Denials of requests without
 * a well-formed key must cost no database work per request, so identical ones are folded in
 * memory and written every few seconds as one row with `repeat_count`.
 */
export class AuditWriter {
  private readonly pending = new Map<string, AuditEvent>();
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly database: DatabaseHandle,
    private readonly logger: Logger,
    flushIntervalMs = FLUSH_INTERVAL_MS,
  ) {
    this.timer = setInterval(() => void this.flush(), flushIntervalMs);
    this.timer.unref();
  }

  /** One prepared round trip: this runs on every authenticated request. */
  async record(e: AuditEvent): Promise<number> {
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
      e.runContextClaimed === undefined || e.runContextClaimed === null
        ? null
        : JSON.stringify(e.runContextClaimed),
    ]);
    return Number(row?.id ?? 0);
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
    else this.pending.set(group, { ...event, repeatCount: 1 });
  }

  private overflow(event: AuditEvent): AuditEvent {
    let row = this.pending.get(OVERFLOW_GROUP);
    if (!row) {
      row = {
        ...event,
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

  async flush(): Promise<void> {
    if (this.pending.size === 0) return;
    const rows = [...this.pending.values()];
    this.pending.clear();
    // Chunks stay far below PostgreSQL's 65,535 bind parameters per statement.
    for (let i = 0; i < rows.length; i += FLUSH_CHUNK_ROWS) {
      const chunk = rows.slice(i, i + FLUSH_CHUNK_ROWS);
      try {
        await this.database.db.insert(auditEvents).values(chunk);
      } catch (err) {
        this.logger.error("audit flush failed", { rows: chunk.length, error: String(err) });
      }
    }
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    await this.flush();
  }
}
