// Page cursors of operation lists (the automation API's `GET /operations`, the management API's
// operations and deployment history): opaque to clients, the (created_at, id) of the last row
// shown, with created_at to the microsecond as PostgreSQL stores it, so rows created in the same
// millisecond are neither skipped nor repeated.
import { CURSOR_MAX_CHARS, isUuid } from "@reoclo/protocol";
import { sql } from "drizzle-orm";
import { operations } from "../db/schema";
import { ServiceError } from "../errors";

export interface ListPosition {
  /** created_at as PostgreSQL's text in UTC, to the microsecond: `2026-12-03T10:01:46.123456Z`. */
  readonly at: string;
  readonly id: string;
}

/** Microseconds; cursors given out before they carried them have milliseconds and still work. */
const POSITION_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}(\d{3})?Z$/;

/** An operation's created_at as a position's `at` (select it next to the row). */
export const exactCreatedAt = sql<string>`to_char(${operations.createdAt} at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`;

/** Rows after the position, newest first (order by created_at desc, id desc). */
export const beforePosition = (p: ListPosition) =>
  sql`(${operations.createdAt}, ${operations.id}) < (${p.at}::timestamptz, ${p.id}::uuid)`;

export const encodeCursor = (p: ListPosition) => Buffer.from(`${p.at}|${p.id}`, "utf8").toString("base64url");

/** The one refusal of a cursor this API did not give out (other lists' cursors use it too). */
export const invalidCursor = () =>
  new ServiceError(
    "validation",
    "cursor must be the next_cursor of a previous page, passed back unchanged.",
    {
      cursor: ["is not a cursor this API gave out"],
    },
  );

export function decodeCursor(cursor: string): ListPosition {
  if (cursor.length > CURSOR_MAX_CHARS || !/^[A-Za-z0-9_-]+$/.test(cursor)) throw invalidCursor();
  const [at, id, ...rest] = Buffer.from(cursor, "base64url").toString("utf8").split("|");
  if (rest.length > 0 || at === undefined || !POSITION_TIME.test(at) || !isUuid(id)) throw invalidCursor();
  const ms = Date.parse(at);
  if (!Number.isFinite(ms) || ms < Date.UTC(2000, 0, 1) || ms > Date.UTC(9999, 11, 31)) throw invalidCursor();
  // Date.parse rolls 2026-02-30 over to March; a time we gave out reads back the same.
  if (new Date(ms).toISOString().slice(0, 23) !== at.slice(0, 23)) throw invalidCursor();
  return { at, id: id.toLowerCase() };
}

/**
 * A page of rows fetched with `limit + 1` (the extra row says whether more follow), newest first;
 * `keep` drops rows the caller may not see. The cursor names the last row shown.
 */
export function pageOf<R extends { at: string; op: { id: string } }>(
  rows: R[],
  limit: number,
  keep: (row: R) => boolean = () => true,
): { page: R[]; nextCursor: string | null } {
  const page = rows.filter(keep).slice(0, limit);
  const last = page.at(-1);
  return {
    page,
    nextCursor: rows.length > limit && last ? encodeCursor({ at: last.at, id: last.op.id }) : null,
  };
}
