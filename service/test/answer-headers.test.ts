import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DRIVERS } from "@reoclo/testbed/postgres-database";
import { generateAutomationKey } from "../src/keys/key-format";
import { readEvents, startExecEnv, type ExecEnv } from "./fixtures/exec-env";

// Spec §1: every answer carries X-Request-Id, every authenticated one the RateLimit-* headers,
// a replay Idempotent-Replayed, whether the body is JSON or an event stream; a 401 names the
// scheme (RFC 9110 §11.6.1, RFC 6750 §3).

const RATE_HEADERS = ["ratelimit-limit", "ratelimit-remaining", "ratelimit-reset"];

function expectCommonHeaders(res: Response) {
  expect(res.headers.get("x-request-id")).toMatch(/^[0-9a-f-]{36}$/);
  for (const h of RATE_HEADERS) expect(res.headers.get(h), h).toMatch(/^\d+$/);
}

describe.each(DRIVERS)("answer headers on %s", (driver) => {
  let env: ExecEnv;
  beforeAll(async () => {
    env = await startExecEnv({ driver });
  });
  afterAll(async () => {
    await env?.close();
  });

  it("sends the request id, the rate limit and the operation id on a streamed /exec, and Idempotent-Replayed on its replay", async () => {
    const key = `headers-${randomBytes(6).toString("hex")}`;
    const body = { server_id: env.serverId, command: "echo streamed" };
    const headers = { Accept: "text/event-stream", "Idempotency-Key": key };
    const first = await env.post("/exec", body, headers);
    expect(first.headers.get("content-type")).toMatch(/^text\/event-stream/);
    expectCommonHeaders(first);
    expect(first.headers.get("x-operation-id")).toMatch(/^[0-9a-f-]{36}$/);
    expect(first.headers.get("idempotent-replayed")).toBeNull();
    const events = await readEvents(first);
    expect(events.at(-1)?.event).toBe("end");

    const replay = await env.post("/exec", body, headers);
    expect(replay.headers.get("content-type")).toMatch(/^text\/event-stream/);
    expectCommonHeaders(replay);
    expect(replay.headers.get("idempotent-replayed")).toBe("true");
    expect(replay.headers.get("x-operation-id")).toBe(first.headers.get("x-operation-id"));
    expect(replay.headers.get("x-request-id")).not.toBe(first.headers.get("x-request-id"));
    await readEvents(replay);
  });

  it("sends the request id and the rate limit on GET /operations/{id}/events", async () => {
    const res = await env.post("/exec", { server_id: env.serverId, command: "echo polled" });
    const { operation_id } = (await res.json()) as { operation_id: string };
    const events = await env.get(`/operations/${operation_id}/events`);
    expect(events.status).toBe(200);
    expect(events.headers.get("content-type")).toMatch(/^text\/event-stream/);
    expectCommonHeaders(events);
    await readEvents(events);
  });

  it.each([
    ["no Authorization header", undefined, 'Bearer realm="reoclo"'],
    ["a malformed key", "Bearer rca_not-a-key", 'Bearer realm="reoclo", error="invalid_token"'],
    ["an unknown well-formed key", "unknown", 'Bearer realm="reoclo", error="invalid_token"'],
    ["another scheme", "Basic dXNlcjpwYXNz", 'Bearer realm="reoclo", error="invalid_token"'],
  ])("answers a 401 for %s with WWW-Authenticate: Bearer", async (_case, authorization, challenge) => {
    const value = authorization === "unknown" ? `Bearer ${generateAutomationKey().key}` : authorization;
    const res = await fetch(`${env.base}/key`, { headers: value ? { Authorization: value } : {} });
    expect(res.status).toBe(401);
    expect(res.headers.get("www-authenticate")).toMatch(
      new RegExp(`^${challenge.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}`),
    );
    expect(res.headers.get("x-request-id")).toMatch(/^[0-9a-f-]{36}$/);
  });
});
