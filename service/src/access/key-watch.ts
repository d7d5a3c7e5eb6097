import type { ServiceErrorEnvelope } from "@reoclo/protocol";
import type { DatabaseHandle } from "../db/database";
import { describeDatabaseError } from "../db/errors";
import type { Logger } from "../logger";

// An event stream outlives the request the access pipeline checked (issue 13, item 14): the keys
// of open streams are checked again here, in one query for all of them, and only while any stream
// is open. The query runs on every instance, so a revocation made anywhere (the admin command
// line, another instance sharing PostgreSQL) ends the streams everywhere; the operations go on.

export type KeyEnd = "key_revoked" | "key_expired";

/** How often the keys of open streams are checked: their streams end within about this much. */
export const KEY_WATCH_INTERVAL_MS = 500;

// The watched keys that are no longer valid. One that is gone counts as revoked: it is refused too.
const ENDED_KEYS_SQL = `
select w.id::text as id, (k.id is not null and k.revoked_at is null) as expired
from unnest($1::uuid[]) as w(id)
left join automation_keys k on k.id = w.id
where k.id is null or k.revoked_at is not null or k.expires_at <= $2::timestamptz`;

const DETAIL: Record<KeyEnd, string> = {
  key_revoked:
    "The automation key was revoked: the operation goes on (poll it with another key or see it in the audit log), but this event stream ends here.",
  key_expired:
    "The automation key expired: the operation goes on (poll it with another key or see it in the audit log), but this event stream ends here.",
};

/** The last event of a stream whose key ended, in the one error envelope (spec §1). */
export function keyEndedEnvelope(end: KeyEnd, requestId: string): ServiceErrorEnvelope {
  return { error: end, detail: DETAIL[end], request_id: requestId };
}

/**
 * Watches the keys of open event streams: `watch` registers one stream, and its callback runs
 * once when the key is revoked, expires or disappears. Keys are checked every `intervalMs` with
 * one query, against the same clock as the access pipeline; nothing runs while nothing is watched.
 */
export class KeyWatch {
  private readonly watchers = new Map<string, Set<(end: KeyEnd) => void>>();
  private readonly intervalMs: number;
  private readonly now: () => Date;
  private timer: NodeJS.Timeout | undefined;
  private checking: Promise<void> | undefined;
  private closed = false;

  constructor(
    private readonly database: Pick<DatabaseHandle, "query">,
    private readonly logger: Logger,
    opts: { intervalMs?: number; now?: () => Date } = {},
  ) {
    this.intervalMs = opts.intervalMs ?? KEY_WATCH_INTERVAL_MS;
    this.now = opts.now ?? (() => new Date());
  }

  /** Calls `onEnd` once when `keyId` stops being valid; the returned function stops watching. */
  watch(keyId: string, onEnd: (end: KeyEnd) => void): () => void {
    if (this.closed) return () => undefined;
    const entry = (end: KeyEnd) => onEnd(end); // its own identity: one stream, one entry
    let streams = this.watchers.get(keyId);
    if (!streams) this.watchers.set(keyId, (streams = new Set()));
    streams.add(entry);
    this.schedule();
    return () => {
      const current = this.watchers.get(keyId);
      if (!current?.delete(entry)) return;
      if (current.size === 0) this.watchers.delete(keyId);
      if (this.watchers.size === 0) {
        clearTimeout(this.timer);
        this.timer = undefined;
      }
    };
  }

  /** Keys with at least one open stream. */
  get watchedKeys(): number {
    return this.watchers.size;
  }

  /** Stops checking; resolves once a check in flight is done, so nothing queries a closed database. */
  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    this.watchers.clear();
    await this.checking;
  }

  private schedule(): void {
    if (this.closed || this.timer || this.checking || this.watchers.size === 0) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.checking = this.check().finally(() => {
        this.checking = undefined;
        this.schedule();
      });
    }, this.intervalMs);
    this.timer.unref();
  }

  private async check(): Promise<void> {
    let ended: { id: string; expired: boolean }[];
    try {
      ended = await this.database.query(ENDED_KEYS_SQL, [
        [...this.watchers.keys()],
        this.now().toISOString(),
      ]);
    } catch (err) {
      // Unknown is not revoked: the streams go on and the next check asks again.
      this.logger.warn("could not check the keys of open event streams", {
        error: describeDatabaseError(err),
      });
      return;
    }
    for (const row of ended) {
      const streams = this.watchers.get(row.id);
      if (!streams || this.closed) continue;
      this.watchers.delete(row.id);
      const end: KeyEnd = row.expired ? "key_expired" : "key_revoked";
      this.logger.info("automation key no longer valid: its event streams end", {
        key_id: row.id,
        reason: end,
        streams: streams.size,
      });
      for (const onEnd of streams) {
        try {
          onEnd(end);
        } catch (err) {
          this.logger.error("ending an event stream failed", { key_id: row.id, error: String(err) });
        }
      }
    }
  }
}
