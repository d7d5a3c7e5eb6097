import { fileURLToPath } from "node:url";
import type { PGlite } from "@electric-sql/pglite";
import { sql } from "drizzle-orm";
import type { PgDatabase, PgQueryResultHKT } from "drizzle-orm/pg-core";
import { drizzle as drizzlePostgres } from "drizzle-orm/postgres-js";
import { migrate as migratePostgres } from "drizzle-orm/postgres-js/migrator";
import postgres from "postgres";
import * as schema from "./schema";

// Two drivers behind one interface: postgres.js for DATABASE_URL, PGlite (embedded) otherwise.

export type Database = PgDatabase<PgQueryResultHKT, typeof schema>;
export type DriverName = "postgres" | "pglite";

export interface DatabaseHandle {
  readonly db: Database;
  readonly driver: DriverName;
  /** Applies the committed SQL migrations (idempotent; serialised across instances). */
  migrate(): Promise<void>;
  /** Resolves when the database answers; rejects otherwise. */
  ping(): Promise<void>;
  /**
   * One hand-written statement, prepared and cached by the driver (postgres.js names it; PGlite
   * keeps one session). For the few hot statements the query builder cannot express in one trip.
   */
  query<Row>(text: string, params: unknown[]): Promise<Row[]>;
  close(): Promise<void>;
}

export const MIGRATIONS_FOLDER = fileURLToPath(new URL("../../drizzle", import.meta.url));

// Any constant works; it only has to be the same for every instance of the service.
const MIGRATION_LOCK_ID = 7_263_114_001;

export interface OpenDatabaseOptions {
  /** postgres://… ; when absent the embedded database is used. */
  databaseUrl?: string | undefined;
  /** Directory of the embedded database; undefined keeps it in memory (tests). */
  pgliteDir?: string | undefined;
  /** Pool size for postgres.js. */
  maxConnections?: number;
  /** Called with every SQL statement sent through drizzle (tests count them). */
  onQuery?: (sql: string) => void;
}

export async function openDatabase(opts: OpenDatabaseOptions): Promise<DatabaseHandle> {
  const logger = opts.onQuery ? { logQuery: (q: string) => opts.onQuery?.(q) } : undefined;
  const handle = opts.databaseUrl
    ? openPostgres(opts.databaseUrl, opts.maxConnections ?? 10, logger)
    : await openPglite(opts.pgliteDir, logger);
  return logged(handle, logger);
}

/** Reports hand-written statements to the same hook as the query builder's. */
function logged(handle: DatabaseHandle, logger: QueryLogger): DatabaseHandle {
  if (!logger) return handle;
  return {
    ...handle,
    query: (text, params) => {
      logger.logQuery(text);
      return handle.query(text, params);
    },
  };
}

type QueryLogger = { logQuery: (q: string) => void } | undefined;

function openPostgres(url: string, max: number, logger: QueryLogger): DatabaseHandle {
  const client = postgres(url, {
    max,
    onnotice: () => undefined,
    connect_timeout: 10,
    // postgres.js waits up to 20 s before reconnecting after failed attempts: requests during a
    // database restart would hang instead of answering 503, and the service would lag its return.
    backoff: (attempt: number) => Math.min(0.05 * 2 ** attempt, 0.5),
  });
  const db = drizzlePostgres(client, { schema, ...(logger ? { logger } : {}) }) as unknown as Database;
  return {
    db,
    driver: "postgres",
    async migrate() {
      // The advisory lock must be held by the connection that migrates: use a one-connection client.
      const conn = postgres(url, { max: 1, onnotice: () => undefined, connect_timeout: 10 });
      try {
        await conn`select pg_advisory_lock(${MIGRATION_LOCK_ID})`;
        await migratePostgres(drizzlePostgres(conn, { schema }), { migrationsFolder: MIGRATIONS_FOLDER });
        await conn`select pg_advisory_unlock(${MIGRATION_LOCK_ID})`;
      } finally {
        await conn.end({ timeout: 5 });
      }
    },
    async ping() {
      await db.execute(sql`select 1`);
    },
    async query<Row>(text: string, params: unknown[]) {
      return (await client.unsafe(text, params as never[], { prepare: true })) as unknown as Row[];
    },
    async close() {
      await client.end({ timeout: 5 });
    },
  };
}

/**
 * PGlite runs in this process: each query is synchronous WebAssembly, and its own queue hands the
 * next query over in a microtask, so a burst of queries starves the event loop (measured: 3,000
 * concurrent inserts, 0.5 s without a single timer or socket read; under the 1,000-operation
 * bench, seconds). This gate runs one call at a time and lets the event loop turn between calls.
 */
class YieldingGate {
  private tail: Promise<unknown> = Promise.resolve();
  private sliceStart = performance.now();

  run<T>(task: () => Promise<T>): Promise<T> {
    const result = this.tail.then(() => this.turn()).then(task);
    this.tail = result.catch(() => undefined);
    return result;
  }

  /** After a few milliseconds of back-to-back calls, one turn of the event loop (timers, sockets). */
  private turn(): Promise<void> | undefined {
    if (performance.now() - this.sliceStart < SLICE_MS) return undefined;
    return new Promise<void>((resolve) =>
      setImmediate(() => {
        this.sliceStart = performance.now();
        resolve();
      }),
    );
  }
}

const SLICE_MS = 4;

/** The PGlite client with `query` and `transaction` through the gate (a transaction is one call). */
function gated(client: PGlite): PGlite {
  const gate = new YieldingGate();
  const query: PGlite["query"] = (...args) => gate.run(() => client.query(...args));
  const transaction: PGlite["transaction"] = (fn) => gate.run(() => client.transaction(fn));
  return new Proxy(client, {
    get(target, prop) {
      if (prop === "query") return query;
      if (prop === "transaction") return transaction;
      const value: unknown = Reflect.get(target, prop, target);
      return typeof value === "function" ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
}

async function openPglite(dir: string | undefined, logger: QueryLogger): Promise<DatabaseHandle> {
  // Loaded only when used: reoclo-admin on PostgreSQL (or over a socket) starts without it.
  const [{ PGlite }, { drizzle: drizzlePglite }, { migrate: migratePglite }] = await Promise.all([
    import("@electric-sql/pglite"),
    import("drizzle-orm/pglite"),
    import("drizzle-orm/pglite/migrator"),
  ]);
  const raw = dir ? await PGlite.create(dir) : await PGlite.create();
  const client = gated(raw);
  const db = drizzlePglite({ client, schema, ...(logger ? { logger } : {}) }) as unknown as Database;
  return {
    db,
    driver: "pglite",
    async migrate() {
      await migratePglite(drizzlePglite({ client, schema }), { migrationsFolder: MIGRATIONS_FOLDER });
    },
    async ping() {
      await client.query("select 1");
    },
    async query<Row>(text: string, params: unknown[]) {
      return (await client.query<Row>(text, params)).rows;
    },
    async close() {
      if (!raw.closed) await raw.close();
    },
  };
}
