import { randomBytes } from "node:crypto";
import { eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestHost, type TestHost } from "@reoclo/testbed/sshd";
import { openDatabase, type DatabaseHandle } from "../src/db/database";
import { operations } from "../src/db/schema";
import { readOutput } from "../src/operations/store";
import { SecretBox } from "../src/secrets/secret-box";
import { createTestApp, serveTestApp, type ServedApp, type TestApp } from "./fixtures/app";
import { createTestDatabase, testContext, type TestDatabase } from "./fixtures/db";
import { addTestHost, seedKey } from "./fixtures/entities";

// Issue 19: masking is unchanged across a takeover. The instance stopping hands the operation
// over while its masker holds the start of a secret back (it could be the secret, it could be
// nothing); the resume point it stores lies before those bytes, so the instance taking over reads
// them again from the host and masks the whole secret. Two instances in this process on one
// PostgreSQL, a real sshd host.

const SECRET = "supersecretvalue1234";

describe("a secret split at the resume point", () => {
  let db: TestDatabase;
  let second: DatabaseHandle;
  let host: TestHost;
  let a: TestApp;
  let b: TestApp;
  let aServed: ServedApp;
  let key: string;
  let serverId: string;

  beforeAll(async () => {
    const secrets = new SecretBox(randomBytes(32));
    [db, host] = await Promise.all([createTestDatabase("postgres"), startTestHost()]);
    second = await openDatabase({ databaseUrl: db.url, maxConnections: 4 });
    const ctx = testContext(db, secrets);
    serverId = (await addTestHost(ctx, host)).id;
    key = (await seedKey(ctx, { operations: ["exec"], server_ids: [serverId], all_servers: false })).key;
    const runner = { heartbeatMs: 200, staleAfterMs: 1_000 };
    a = createTestApp(db, { secrets, env: { REOCLO_SYNC_WAIT_SECONDS: "0" }, runner });
    b = createTestApp(second, { secrets, runner });
    aServed = await serveTestApp(a);
  });
  afterAll(async () => {
    await aServed?.close();
    await b?.close();
    await second?.close();
    await Promise.all([db?.close(), host?.close()]);
  });

  it("is still masked whole by the instance that takes the operation over", async () => {
    // Prints "value: supers", waits, then "ecretvalue1234 end": the secret arrives in two parts.
    const command = `printf 'value: %s' "$(printf %s "$TOKEN" | cut -c1-6)"; sleep 2; printf '%s end\\n' "$(printf %s "$TOKEN" | cut -c7-)"; echo "$TOKEN again"`;
    const res = await fetch(`${aServed.base}/exec`, {
      method: "POST",
      headers: { Authorization: `Bearer ${key}`, "Content-Type": "application/json" },
      body: JSON.stringify({ server_id: serverId, command, env: { TOKEN: SECRET } }),
    });
    const { operation_id: id, status } = (await res.json()) as { operation_id: string; status: string };
    expect(status).toBe("running");
    const stored = async () =>
      Buffer.concat(
        (await readOutput(db.db, id, 0, 100_000)).filter((e) => e.stream === "stdout").map((e) => e.data),
      ).toString();
    // "value: " is out; "supers" is held back, as it could be the start of the secret.
    await expect.poll(stored, { timeout: 10_000 }).toBe("value: ");
    const [row] = await db.db.select().from(operations).where(eq(operations.id, id));
    expect(row?.maskSealed).toBeTruthy();
    expect(row?.maskSealed).not.toContain(SECRET);
    // A stops: it hands the operation over with its resume point before the held bytes.
    await aServed.close();
    await a.close();
    const [handed] = await db.db.select().from(operations).where(eq(operations.id, id));
    expect(handed?.resume?.raw.stdout).toBe("value: ".length);
    const read = async () => (await db.db.select().from(operations).where(eq(operations.id, id)))[0];
    await expect.poll(async () => (await read())?.status, { timeout: 20_000 }).toBe("completed");
    const final = await read();
    expect(final?.exitCode).toBe(0);
    expect(await stored()).toBe("value: *** end\n*** again\n");
    expect(final?.stdoutTail?.toString()).toBe("value: *** end\n*** again\n");
    // The sealed copy of the mask values is gone with its end.
    const [ended] = await db.db.select().from(operations).where(eq(operations.id, id));
    expect(ended?.maskSealed).toBeNull();
    expect(ended?.command).not.toContain(SECRET);
  });
});
