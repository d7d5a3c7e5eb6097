import { eq, sql } from "drizzle-orm";
import type { Database } from "../db/database";
import { automationKeys } from "../db/schema";

// The hottest query of the service (every request looks its key up), so it is a named prepared
// statement: drizzle's query builder otherwise sends unnamed statements, re-planned every time.

const build = (db: Database) =>
  db
    .select()
    .from(automationKeys)
    .where(eq(automationKeys.keyHash, sql.placeholder("hash")))
    .limit(1)
    .prepare("automation_key_by_hash");

const prepared = new WeakMap<Database, ReturnType<typeof build>>();

export type AutomationKeyRow = typeof automationKeys.$inferSelect;

export async function findKeyByHash(db: Database, hash: Buffer): Promise<AutomationKeyRow | undefined> {
  let stmt = prepared.get(db);
  if (!stmt) {
    stmt = build(db);
    prepared.set(db, stmt);
  }
  const [row] = await stmt.execute({ hash });
  return row;
}
