import { eq } from "drizzle-orm";
import { testConfig } from "@reoclo/service/testing";
import { createPostgresDatabase } from "@reoclo/testbed/postgres-database";
import { openDatabase, type DatabaseHandle } from "../../service/src/db/database";
import { automationKeys } from "../../service/src/db/schema";
import { hashAutomationKey } from "../../service/src/keys/key-format";
import { createKey } from "../../service/src/keys/keys";
import { findKeyByHash } from "../../service/src/keys/lookup";
import { SecretBox } from "../../service/src/secrets/secret-box";
import { summarise, throughput, type Row, type Scenario } from "../lib";

// The per-request key lookup as a named prepared statement, next to the same query sent
// unprepared by drizzle's query builder, on both drivers.

async function measure(driver: string, handle: DatabaseHandle, quick: boolean): Promise<Row> {
  const ctx = {
    config: testConfig(),
    db: handle.db,
    secrets: new SecretBox(undefined),
    now: () => new Date(),
  };
  for (let i = 0; i < 200; i++)
    await createKey(ctx, { name: `k${i}`, operations: ["exec"], all_servers: true });
  const { key } = await createKey(ctx, { name: "hot", operations: ["exec"], all_servers: true });
  const hash = hashAutomationKey(key);
  const count = quick ? 500 : 5000;
  const concurrency = driver === "postgres" ? 8 : 1;
  const runs = quick ? 3 : 7;
  const prepared = () => findKeyByHash(handle.db, hash);
  const unprepared = () =>
    handle.db.select().from(automationKeys).where(eq(automationKeys.keyHash, hash)).limit(1);
  // Interleave the two so drift on the machine hits both alike; the first round warms up.
  const ours: number[] = [];
  const reference: number[] = [];
  for (let i = 0; i <= runs; i++) {
    const r = await throughput(unprepared, count, concurrency);
    const o = await throughput(prepared, count, concurrency);
    if (i === 0) continue;
    reference.push(r);
    ours.push(o);
  }
  return {
    scenario: `key lookup by hash, ${driver}${concurrency > 1 ? ` (${concurrency} in flight)` : ""}`,
    ours: summarise(ours, "q/s"),
    reference: summarise(reference, "q/s"),
    referenceName: "same query, unprepared",
    higherIsBetter: true,
  };
}

export const keyLookup: Scenario = {
  name: "key-lookup",
  async run({ quick }) {
    const rows: Row[] = [];
    const pg = await createPostgresDatabase();
    const pgHandle = await openDatabase({ databaseUrl: pg.url, maxConnections: 8 });
    try {
      await pgHandle.migrate();
      rows.push(await measure("postgres", pgHandle, quick));
    } finally {
      await pgHandle.close();
      await pg.drop();
    }
    const lite = await openDatabase({});
    try {
      await lite.migrate();
      rows.push(await measure("pglite", lite, quick));
    } finally {
      await lite.close();
    }
    return rows;
  },
};
