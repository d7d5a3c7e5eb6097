import { randomBytes } from "node:crypto";
import postgres from "postgres";

// Fresh databases on the machine's PostgreSQL server, one per suite, dropped afterwards; and which
// database drivers a test run covers.

export const TEST_POSTGRES_URL = process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";

/** The service's two database drivers (its DriverName). */
export type TestDriver = "pglite" | "postgres";

/** Both drivers by default; REOCLO_TEST_DRIVERS=pglite (or postgres) narrows a local run. */
export const DRIVERS: TestDriver[] = (process.env.REOCLO_TEST_DRIVERS ?? "pglite,postgres")
  .split(",")
  .map((d) => d.trim())
  .filter((d): d is TestDriver => d === "pglite" || d === "postgres");

export async function createPostgresDatabase(): Promise<{ url: string; drop: () => Promise<void> }> {
  const name = `reoclo_test_${randomBytes(6).toString("hex")}`;
  const admin = postgres(TEST_POSTGRES_URL, { max: 1, onnotice: () => undefined });
  try {
    await admin.unsafe(`create database ${name}`);
  } finally {
    await admin.end();
  }
  const url = new URL(TEST_POSTGRES_URL);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    async drop() {
      const a = postgres(TEST_POSTGRES_URL, { max: 1, onnotice: () => undefined });
      try {
        await a.unsafe(`drop database if exists ${name} with (force)`);
      } finally {
        await a.end();
      }
    },
  };
}
