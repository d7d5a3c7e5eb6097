import { randomBytes } from "node:crypto";
import fc from "fast-check";
import { API_BASE_PATH } from "@reoclo/protocol";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DRIVERS } from "@reoclo/testbed/postgres-database";
import { jsonDepthExceeds } from "../src/access/pipeline";
import { parseLastEventId } from "../src/api/answer";
import { storableJson, storableText } from "../src/db/storable";
import { ServiceError } from "../src/errors";
import { decodeCursor, encodeCursor } from "../src/operations/cursor";
import { dumpAllTables } from "./fixtures/db";
import { readEvents, startExecEnv, type ExecEnv } from "./fixtures/exec-env";

// Bad input gets a 4xx in the one envelope, never a 500, and every decision about it is in the
// audit log whatever bytes it carried (issue 13, items 8 and 9).

const SEED = 1313;
const deepArrays = (n: number) => `${"[".repeat(n)}"x"${"]".repeat(n)}`;
const deepObjects = (n: number) => `${'{"a":'.repeat(n)}"x"${"}".repeat(n)}`;

async function expectEnvelope(res: Response, status: number | "4xx") {
  if (status === "4xx") {
    expect(res.status).toBeGreaterThanOrEqual(400);
    expect(res.status).toBeLessThan(500);
  } else expect(res.status).toBe(status);
  const body = (await res.json()) as Record<string, unknown>;
  expect(typeof body.error).toBe("string");
  expect(typeof body.detail).toBe("string");
  expect(body.request_id).toBe(res.headers.get("x-request-id"));
  return body;
}

describe.each(DRIVERS)("hostile input on %s", (driver) => {
  let env: ExecEnv;
  let finished: string;
  const raw = (path: string, init: RequestInit = {}) =>
    fetch(`${env.base}${path}`, {
      ...init,
      headers: { Authorization: `Bearer ${env.key}`, "Content-Type": "application/json", ...init.headers },
    });

  beforeAll(async () => {
    env = await startExecEnv({ driver });
    const res = await env.post("/exec", { server_id: env.serverId, command: "echo done", run_id: "hostile" });
    finished = ((await res.json()) as { operation_id: string }).operation_id;
  });
  afterAll(async () => {
    await env?.close();
  });

  describe("every parser answers 4xx in the envelope", () => {
    const bodies: [string, () => string][] = [
      ["run_context nested 5,000 arrays deep", () => deepArrays(5000)],
      ["run_context nested 5,000 objects deep", () => deepObjects(5000)],
    ];
    it.each(bodies)("refuses %s with 422 and audits it", async (_name, nested) => {
      const res = await raw("/exec", {
        method: "POST",
        body: `{"server_id":"${env.serverId}","command":"true","run_context":{"provider":"x","extra":${nested()}}}`,
      });
      await expectEnvelope(res, 422);
      const dump = await dumpAllTables(env.db);
      expect(dump.text).toContain(res.headers.get("x-request-id"));
    });

    const notIds: [string, string][] = [
      ["36 dashes", "-".repeat(36)],
      ["36 letters", "g".repeat(36)],
      ["a uuid with a non-hex digit", "00000000-0000-0000-0000-00000000000g"],
      ["a uuid with underscores", "00000000_0000_0000_0000_000000000000"],
      ["a NUL", "%00"],
      ["12 NULs", "%00".repeat(12)],
      ["right-to-left overrides", "%E2%80%AE".repeat(12)],
      ["5,000 characters", "x".repeat(5000)],
    ];
    for (const suffix of ["", "/events", "/cancel"]) {
      it.each(notIds)(`answers 404 on /operations/{%s}${suffix}`, async (_name, id) => {
        const res = await raw(`/operations/${id}${suffix}`, {
          method: suffix === "/cancel" ? "POST" : "GET",
        });
        await expectEnvelope(res, 404);
      });
    }

    it.each([
      ["a date past year 275760", "+275760-09-13T00:00:00.000Z"],
      ["a date before year -271821", "-271821-04-20T00:00:00.000Z"],
      ["a plain date", "2025-01-01T00:00:00.000Z"],
      [
        "an impossible date",
        Buffer.from("2026-02-30T00:00:00.000000Z|0d9f1c5e-8a4b-4c2d-9e3f-112233445566").toString("base64url"),
      ],
      ["a NUL", "%00"],
      ["base64 of garbage", Buffer.from("nonsense").toString("base64url")],
      ["a cursor far in the future", Buffer.from("9999-12-31T23:59:59.999Z|zz").toString("base64url")],
      ["an out-of-range cursor", encodeCursor({ at: new Date(8.64e15).toISOString(), id: finished })],
      ["a huge one", "A".repeat(10_000)],
    ])("refuses a cursor that is %s with 422", async (_name, cursor) => {
      const res = await raw(`/operations?run_id=hostile&cursor=${cursor}`);
      const body = await expectEnvelope(res, 422);
      expect(body.fields).toHaveProperty("cursor");
    });

    it.each([
      ["run_id with a NUL", "run_id=a%00b"],
      ["idempotency_key with a NUL", "idempotency_key=a%00b"],
      ["idempotency_key with a space", "idempotency_key=a%20b"],
      ["idempotency_key too long", `idempotency_key=${"k".repeat(300)}`],
      ["run_id too long", `run_id=${"r".repeat(300)}`],
      ["limit 0", "run_id=x&limit=0"],
      ["limit -1", "run_id=x&limit=-1"],
      ["limit 1e9", "run_id=x&limit=1e9"],
      ["limit NaN", "run_id=x&limit=NaN"],
      ["limit 1.5", "run_id=x&limit=1.5"],
      ["no run_id", ""],
    ])("refuses GET /operations with %s with 422", async (_name, query) => {
      await expectEnvelope(await raw(`/operations?${query}`), 422);
    });

    it("pages a run's operations with an opaque cursor, without skipping or repeating any", async () => {
      const runId = `pages-${randomBytes(4).toString("hex")}`;
      const ids: string[] = [];
      for (let i = 0; i < 5; i++) {
        const r = await env.post("/exec", { server_id: env.serverId, command: "true", run_id: runId });
        ids.push(((await r.json()) as { operation_id: string }).operation_id);
      }
      const seen: string[] = [];
      let cursor: string | null = "";
      while (cursor !== null) {
        const page = (await (
          await raw(`/operations?run_id=${runId}&limit=2${cursor ? `&cursor=${cursor}` : ""}`)
        ).json()) as { items: { operation_id: string }[]; next_cursor: string | null };
        seen.push(...page.items.map((i) => i.operation_id));
        cursor = page.next_cursor;
      }
      expect(seen).toEqual([...ids].reverse());
    });

    it.each(["2147483648", "4294967296", "99999999999999999999"])(
      "takes Last-Event-ID %s as past the end: nothing new, then the end",
      async (id) => {
        const res = await raw(`/operations/${finished}/events`, { headers: { "Last-Event-ID": id } });
        expect(res.status).toBe(200);
        const events = await readEvents(res);
        expect(events.filter((e) => e.event === "output")).toEqual([]);
        expect(events.at(-1)?.event).toBe("end");
      },
    );

    it.each(["abc", "-1", "1.5", "0x10", "1e3"])("refuses Last-Event-ID %s with 422", async (id) => {
      const res = await raw(`/operations/${finished}/events`, { headers: { "Last-Event-ID": id } });
      await expectEnvelope(res, 422);
    });

    it("answers no 5xx to 300 random ids, cursors, run ids, Last-Event-IDs and run contexts", async () => {
      const text = fc.string({ unit: "binary", maxLength: 60 });
      await fc.assert(
        fc.asyncProperty(text, text, text, text, async (id, cursor, runId, lastEventId) => {
          const statuses = [
            (await raw(`/operations/${encodeURIComponent(id)}`)).status,
            (
              await raw(
                `/operations?run_id=${encodeURIComponent(runId || "r")}&cursor=${encodeURIComponent(cursor || "c")}`,
              )
            ).status,
            (
              await raw("/exec", {
                method: "POST",
                body: JSON.stringify({
                  server_id: env.serverId,
                  command: "true",
                  run_id: runId,
                  run_context: { provider: id, actor: cursor, [runId]: lastEventId },
                }),
              })
            ).status,
          ];
          const events = await raw(`/operations/${finished}/events`, {
            headers: { "Last-Event-ID": lastEventId.replace(/[^\x20-\x7e]/g, "") },
          });
          statuses.push(events.status);
          await events.body?.cancel();
          for (const s of statuses) expect(s).toBeLessThan(500);
        }),
        { seed: SEED, numRuns: driver === "pglite" ? 100 : 300 },
      );
    }, 120_000);
  });

  describe("a NUL byte never keeps a decision out of the audit log", () => {
    it("records each refusal and decision, escaped, and finds every row in a dump of all tables", async () => {
      const cases: Record<string, Response> = {};
      // Refused: NUL in run_id (validation), NUL all over a claimed run context (unknown server).
      cases.runIdNul = await raw("/exec", {
        method: "POST",
        body: JSON.stringify({ server_id: env.serverId, command: "true", run_id: "run\u0000id" }),
      });
      cases.runContextNulDenied = await raw("/exec", {
        method: "POST",
        body: JSON.stringify({
          server_id: "00000000-0000-4000-8000-000000000000",
          command: "true",
          run_context: { provider: "gh\u0000a", "k\u0000ey": ["\u0000", { deep: "\u0000\ud800" }] },
        }),
      });
      cases.pathNulAuthenticated = await raw("/operations/%00");
      // Unauthenticated, folded and written by the flush, next to another client's folded refusal.
      cases.pathNulUnauthenticated = await fetch(`${env.base}/operations/%00x`, {
        headers: { Authorization: "Bearer not-a-key" },
      });
      cases.other = await fetch(`${env.base}/key`, { headers: { Authorization: "Bearer also-not-a-key" } });
      // Allowed: a run_context with NUL runs, with the NUL stripped from the stored run context.
      cases.runContextNulAllowed = await raw("/exec", {
        method: "POST",
        body: JSON.stringify({
          server_id: env.serverId,
          command: "echo ok",
          run_context: { provider: "gh\u0000actions", repository: "a\ud800b" },
        }),
      });
      expect(cases.runIdNul.status).toBe(422);
      expect(cases.runContextNulDenied.status).toBe(404);
      expect(cases.pathNulAuthenticated.status).toBe(404);
      expect(cases.pathNulUnauthenticated.status).toBe(401);
      expect(cases.other.status).toBe(401);
      expect(cases.runContextNulAllowed.status).toBe(200);
      await env.t.deps.audit.flush();

      const { text } = await dumpAllTables(env.db);
      const auditRows = text
        .split("\n")
        .filter((l) => l.startsWith("{") && l.includes('"outcome"'))
        .map((l) => JSON.parse(l) as Record<string, unknown>);
      const rowOf = (name: string) => {
        const requestId = cases[name]!.headers.get("x-request-id");
        const row = auditRows.find((r) => r.request_id === requestId);
        expect(row, `audit row of ${name}`).toBeDefined();
        return row!;
      };
      expect(rowOf("runIdNul")).toMatchObject({
        outcome: "denied",
        reason: "validation",
        run_id: "run\\u0000id",
      });
      expect(rowOf("runContextNulDenied")).toMatchObject({
        outcome: "denied",
        reason: "not_found",
        run_context_claimed: { provider: "gh\\u0000a", "k\\u0000ey": ["\\u0000", { deep: "\\u0000\ufffd" }] },
      });
      expect(rowOf("pathNulAuthenticated")).toMatchObject({ path: `${API_BASE_PATH}/operations/%00` });
      expect(rowOf("pathNulUnauthenticated")).toMatchObject({
        outcome: "denied",
        reason: "malformed_key",
        path: `${API_BASE_PATH}/operations/%00x`,
      });
      expect(rowOf("runContextNulAllowed")).toMatchObject({ outcome: "allowed" });
      expect(text).toMatch(/"provider": ?"ghactions"/);
    });
  });
});

describe("the parsers themselves, fed hostile input (seeded property tests)", () => {
  it("storableText leaves no NUL and no lone surrogate, and keeps everything else", () => {
    fc.assert(
      fc.property(fc.string({ unit: "binary" }), (s) => {
        const out = storableText(s);
        expect(out.includes("\u0000")).toBe(false);
        expect(out.isWellFormed()).toBe(true);
        if (!s.includes("\u0000") && s.isWellFormed()) expect(out).toBe(s);
      }),
      { seed: SEED, numRuns: 2_000 },
    );
  });

  it("storableJson never throws, bounds depth and size, and serialises without NUL", () => {
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 20 }), fc.string({ unit: "binary" }), (value, s) => {
        const out = storableJson({ v: value, s, [s]: [s] });
        const text = JSON.stringify(out);
        expect(text.length).toBeLessThanOrEqual(8192);
        expect(jsonDepthExceeds(text, 9)).toBe(false);
        const strings: string[] = [];
        JSON.parse(text, (k, v: unknown) => {
          strings.push(k);
          if (typeof v === "string") strings.push(v);
          return v;
        });
        for (const str of strings) expect(!str.includes("\u0000") && str.isWellFormed()).toBe(true);
      }),
      { seed: SEED, numRuns: 1_000 },
    );
    expect(storableJson(JSON.parse(deepArrays(5000)))).toBeDefined();
  });

  it("jsonDepthExceeds agrees with the real nesting depth of any JSON value", () => {
    const depthOf = (v: unknown): number =>
      v !== null && typeof v === "object" ? 1 + Math.max(0, ...Object.values(v).map(depthOf)) : 0;
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 12 }), fc.integer({ min: 0, max: 14 }), (value, max) => {
        expect(jsonDepthExceeds(JSON.stringify(value), max)).toBe(depthOf(value) > max);
      }),
      { seed: SEED, numRuns: 2_000 },
    );
  });

  it("parseLastEventId returns a non-negative 32-bit id or a 422, nothing else", () => {
    fc.assert(
      fc.property(fc.oneof(fc.string({ unit: "binary" }), fc.bigInt({ min: 0n }).map(String)), (s) => {
        try {
          const n = parseLastEventId(s);
          expect(Number.isInteger(n) && n >= 0 && n <= 2 ** 31 - 1).toBe(true);
        } catch (err) {
          expect(err).toBeInstanceOf(ServiceError);
          expect((err as ServiceError).status).toBe(422);
        }
      }),
      { seed: SEED, numRuns: 2_000 },
    );
  });

  it("decodeCursor returns a position it encoded, or a 422 for anything else", () => {
    const id = "0d9f1c5e-8a4b-4c2d-9e3f-112233445566";
    fc.assert(
      fc.property(fc.string({ unit: "binary", maxLength: 300 }), (s) => {
        try {
          const p = decodeCursor(s);
          expect(encodeCursor(p).length).toBeGreaterThan(0);
          expect(Date.parse(p.at)).toBeGreaterThanOrEqual(Date.UTC(2000, 0, 1));
        } catch (err) {
          expect((err as ServiceError).status).toBe(422);
        }
      }),
      { seed: SEED, numRuns: 2_000 },
    );
    for (const at of ["2026-01-02T03:04:05.678901Z", "2026-01-02T03:04:05.678Z"])
      expect(decodeCursor(encodeCursor({ at, id }))).toEqual({ at, id });
  });
});
