import type { ServiceErrorEnvelope } from "@reoclo/protocol";
import type { DatabaseHandle } from "../db/database";
import { describeDatabaseError } from "../db/errors";
import type { Logger } from "../logger";

// An event stream outlives the request the access pipeline checked (issue 13, item 14): the keys
// of open streams are checked again here, in one query for all of them, and only while any stream
// is open. The query runs on every instance, so a revocation made anywhere (the admin command
// line, another instance sharing PostgreSQL) ends the streams everywhere; the operations go on.

export type KeyEnd = "key_revoked" | "key_expired" | "session_ended";

/** What an event stream was opened with: an automation key, an integration key, or a person's session. */
export type StreamCredential = "automation_key" | "integration_key" | "session";

const KIND: Record<StreamCredential, string> = { automation_key: "a", integration_key: "i", session: "s" };

/** How often the keys of open streams are checked: their streams end within about this much. */
export const KEY_WATCH_INTERVAL_MS = 500;

// The watched credentials (`a:<automation key>`, `i:<integration key>`, `s:<session>`) that are no
// longer valid. One that is gone counts as revoked: it is refused too. An integration key also ends
// with its maker's removal, a session with its person's.
const ENDED_SQL = `
with w(ref, kind, id) as (
  select x, split_part(x, ':', 1), split_part(x, ':', 2)::uuid from unnest($1::text[]) as x
)
select w.ref as id,
  (coalesce(a.revoked_at, i.revoked_at, s.revoked_at) is null
    and coalesce(a.expires_at, i.expires_at, s.expires_at) <= $2::timestamptz) as expired
from w
left join automation_keys a on w.kind = 'a' and a.id = w.id
left join integration_keys i on w.kind = 'i' and i.id = w.id
left join users iu on iu.id = i.created_by
left join sessions s on w.kind = 's' and s.id = w.id
left join users su on su.id = s.user_id
where (w.kind = 'a' and (a.id is null or a.revoked_at is not null or a.expires_at <= $2::timestamptz))
   or (w.kind = 'i' and (i.id is null or i.revoked_at is not null or i.expires_at <= $2::timestamptz
       or iu.removed_at is not null))
   or (w.kind = 's' and (s.id is null or s.revoked_at is not null or s.expires_at <= $2::timestamptz
       or su.removed_at is not null))`;

const NAME: Record<StreamCredential, string> = {
  automation_key: "The automation key",
  integration_key: "The integration key",
  session: "Your session",
};
const GOES_ON =
  "the operation goes on (poll it with another key or see it in the audit log), but this event stream ends here.";

/** The last event of a stream whose credential ended, in the one error envelope (spec §1). */
export function keyEndedEnvelope(
  end: KeyEnd,
  requestId: string,
  what: StreamCredential = "automation_key",
): ServiceErrorEnvelope {
  if (end === "session_ended")
    return {
      error: "unauthorized",
      detail: `${NAME[what]} ended (signed out, password changed, or removed): ${GOES_ON}`,
      request_id: requestId,
    };
  return {
    error: end,
    detail: `${NAME[what]} ${end === "key_revoked" ? "was revoked" : "expired"}: ${GOES_ON}`,
    request_id: requestId,
  };
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

  /** Calls `onEnd` once when the automation key stops being valid; the returned function stops watching. */
  watch(keyId: string, onEnd: (end: KeyEnd) => void): () => void {
    return this.watchCredential("automation_key", keyId, onEnd);
  }

  /** The same for an integration key or a person's session (the management API's streams). */
  watchCredential(what: StreamCredential, id: string, onEnd: (end: KeyEnd) => void): () => void {
    if (this.closed) return () => undefined;
    const keyId = `${KIND[what]}:${id}`;
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

  /** Credentials with at least one open stream. */
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
      ended = await this.database.query(ENDED_SQL, [[...this.watchers.keys()], this.now().toISOString()]);
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
      const session = row.id.startsWith("s:");
      const end: KeyEnd = session ? "session_ended" : row.expired ? "key_expired" : "key_revoked";
      this.logger.info("credential no longer valid: its event streams end", {
        credential: row.id,
        reason: end,
        streams: streams.size,
      });
      for (const onEnd of streams) {
        try {
          onEnd(end);
        } catch (err) {
          this.logger.error("ending an event stream failed", { credential: row.id, error: String(err) });
        }
      }
    }
  }
}
