// Page cursors of operation lists: opaque to clients, the (created_at, id) of the last row shown, so
// rows created in the same millisecond are neither skipped nor repeated.
import { CURSOR_MAX_CHARS, isUuid } from "@reoclo/protocol";
import { ServiceError } from "../errors";

export interface ListPosition {
  createdAt: Date;
  id: string;
}

/** Timestamps a cursor can name: operations are never older than 2000 or from after 9999. */
const EARLIEST = Date.UTC(2000, 0, 1);
const LATEST = Date.UTC(9999, 11, 31);

export function encodeCursor(p: ListPosition): string {
  return Buffer.from(`${p.createdAt.toISOString()}|${p.id}`, "utf8").toString("base64url");
}

const invalid = () =>
  new ServiceError(
    "validation",
    "cursor must be the next_cursor of a previous page, passed back unchanged.",
    {
      cursor: ["is not a cursor this API gave out"],
    },
  );

export function decodeCursor(cursor: string): ListPosition {
  if (cursor.length > CURSOR_MAX_CHARS || !/^[A-Za-z0-9_-]+$/.test(cursor)) throw invalid();
  const [iso, id, ...rest] = Buffer.from(cursor, "base64url").toString("utf8").split("|");
  const at = iso === undefined ? NaN : Date.parse(iso);
  if (rest.length > 0 || !isUuid(id) || !Number.isFinite(at) || at < EARLIEST || at > LATEST) throw invalid();
  return { createdAt: new Date(at), id: id.toLowerCase() };
}
