import type { Database } from "../db/database";
import { auditEvents } from "../db/schema";
import type { Logger } from "../logger";

export type AuditEvent = typeof auditEvents.$inferInsert;

const FLUSH_INTERVAL_MS = 5_000;
const MAX_PENDING_GROUPS = 10_000;

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
    private readonly db: Database,
    private readonly logger: Logger,
    flushIntervalMs = FLUSH_INTERVAL_MS,
  ) {
    this.timer = setInterval(() => void this.flush(), flushIntervalMs);
    this.timer.unref();
  }

  async record(event: AuditEvent): Promise<number> {
    const [row] = await this.db.insert(auditEvents).values(event).returning({ id: auditEvents.id });
    return row?.id ?? 0;
  }

  recordDeferred(event: AuditEvent): void {
    const group = [
      event.reason,
      event.peerIp,
      event.clientIp,
      event.userAgent,
      event.method,
      event.path,
    ].join("\u0000");
    const seen = this.pending.get(group);
    if (seen) {
      seen.repeatCount = (seen.repeatCount ?? 1) + 1;
    } else if (this.pending.size < MAX_PENDING_GROUPS) {
      this.pending.set(group, { ...event, repeatCount: 1 });
    }
  }

  async flush(): Promise<void> {
    if (this.pending.size === 0) return;
    const rows = [...this.pending.values()];
    this.pending.clear();
    try {
      await this.db.insert(auditEvents).values(rows);
    } catch (err) {
      this.logger.error("audit flush failed", { rows: rows.length, error: String(err) });
    }
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    await this.flush();
  }
}
