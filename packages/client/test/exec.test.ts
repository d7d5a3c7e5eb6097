// Behaviour of ReocloClient.exec against an in-process fake of the API (see fake-api.ts
// for why a fake): retries, idempotency, stream resume, polling fallback, errors, abort.
import { afterEach, describe, expect, it } from "vitest";
import { ReocloApiError, ReocloClient, type ClientOptions } from "../src/index.js";
import { API_KEY, REVOKED_DETAIL, startFake, type Chunk, type FakeOptions } from "./fake-api.js";

const SERVER_ID = "6f1c2d3e-0000-4000-8000-000000000001";
const OUTPUTS: Chunk[] = [
  { stream: "stdout", data: "one\n" },
  { stream: "stderr", data: "warn: two\n" },
  { stream: "stdout", data: "three \u{1F680}\n" },
  { stream: "stdout", data: "four\n" },
  { stream: "stderr", data: "five\n" },
  { stream: "stdout", data: "six\n" },
];

let fake: Awaited<ReturnType<typeof startFake>> | undefined;
afterEach(async () => {
  await fake?.close();
  fake = undefined;
});

async function setup(opts: FakeOptions, client: Partial<ClientOptions> = {}) {
  fake = await startFake(opts);
  const logs: string[] = [];
  const c = new ReocloClient({
    apiUrl: `${fake.url}/`,
    apiKey: API_KEY,
    retry: { baseDelayMs: 1, maxDelayMs: 10 },
    pollIntervalMs: 5,
    log: (m) => logs.push(m),
    ...client,
  });
  const seen: Chunk[] = [];
  const ids: string[] = [];
  const run = (signal?: AbortSignal) =>
    c.exec(
      { server_id: SERVER_ID, command: "echo hi" },
      { onOutput: (e) => seen.push(e), onOperation: (id) => ids.push(id), ...(signal ? { signal } : {}) },
    );
  return { fake, client: c, logs, seen, ids, run };
}

describe("ReocloClient.exec", () => {
  it("streams every output chunk once and resolves with the final result", async () => {
    const t = await setup({ outputs: OUTPUTS });
    const result = await t.run();
    expect(t.seen).toEqual(OUTPUTS);
    expect(result).toEqual({
      operation_id: t.ids[0],
      status: "completed",
      outcome: "completed",
      reason: null,
      ...t.fake.expectedResult,
    });
    expect(t.ids).toHaveLength(1);
    // One streaming POST: the id comes in its X-Operation-Id header.
    expect(t.fake.posts().map((p) => p.accept)).toEqual(["text/event-stream"]);
    expect(t.fake.seen.every((s) => s.userAgent === "reoclo-client")).toBe(true);
  });

  it("learns the id by a replay from a service that does not send X-Operation-Id", async () => {
    const t = await setup({ outputs: OUTPUTS, noOperationIdHeader: true, dropAfter: 2 });
    const result = await t.run();
    expect(t.seen).toEqual(OUTPUTS);
    expect(t.ids).toHaveLength(1);
    expect(result.operation_id).toBe(t.ids[0]);
    // The replay without the SSE Accept header runs nothing.
    expect(t.fake.posts().map((p) => p.accept)).toEqual(["text/event-stream", "application/json"]);
    expect(t.fake.commandsRun).toBe(1);
  });

  it("resumes a stream that goes silent, then polls when it stays silent", async () => {
    const t = await setup({ outputs: OUTPUTS, holdOpen: true }, { streamIdleMs: 50 });
    const result = await t.run();
    expect(result.exit_code).toBe(3);
    expect(t.seen).toEqual(OUTPUTS);
    expect(t.logs.some((l) => l.includes("no data for"))).toBe(true);
    expect(t.fake.seen.filter((s) => s.path.endsWith("/events")).length).toBeGreaterThan(0);
  });

  it("retries 503 with Retry-After, resumes a dropped stream from Last-Event-ID, runs the command once", async () => {
    const unavailable = { status: 503, retryAfter: "1", body: '{"error":"service_unavailable"}' };
    const t = await setup({ outputs: OUTPUTS, faults: [unavailable, unavailable], dropAfter: 3 });
    const started = performance.now();
    const result = await t.run();
    expect(performance.now() - started).toBeGreaterThanOrEqual(1990); // two Retry-After: 1
    expect(t.seen).toEqual(OUTPUTS); // no gap, no duplicate across the drop
    expect(result.exit_code).toBe(3);
    expect(t.fake.commandsRun).toBe(1);
    expect(new Set(t.fake.posts().map((p) => p.idempotencyKey)).size).toBe(1);
    expect(t.fake.posts()[0]?.idempotencyKey).toMatch(/^[\x21-\x7e]+$/);
    const resumes = t.fake.seen.filter((s) => s.path.endsWith("/events"));
    expect(resumes.map((r) => r.lastEventId)).toEqual(["3"]);
    expect(resumes[0]?.path).toBe(`/operations/${t.ids[0]}/events`);
    expect(t.logs.some((l) => l.includes("503") && l.includes("retry"))).toBe(true);
    expect(t.logs.join("\n")).not.toContain(API_KEY);
  });

  it("re-sends the same key when the answer of a created operation is lost", async () => {
    const t = await setup({ outputs: OUTPUTS, faults: [{ lostAnswer: true }] });
    await t.run();
    expect(t.fake.commandsRun).toBe(1);
    expect(new Set(t.fake.posts().map((p) => p.idempotencyKey)).size).toBe(1);
    expect(t.seen).toEqual(OUTPUTS);
  });

  it("uses a caller-supplied idempotency key", async () => {
    const t = await setup({ outputs: OUTPUTS });
    await t.client.exec({ server_id: SERVER_ID, command: "true" }, { idempotencyKey: "run-1-1-build-3" });
    expect(t.fake.posts().map((p) => p.idempotencyKey)).toEqual(["run-1-1-build-3"]);
  });

  it("honours Retry-After on 429", async () => {
    const limited = {
      status: 429,
      retryAfter: "1",
      body: '{"error":"rate_limited","detail":"Slow down.","request_id":"r"}',
    };
    const t = await setup({ outputs: OUTPUTS, faults: [limited] });
    const started = performance.now();
    await t.run();
    expect(performance.now() - started).toBeGreaterThanOrEqual(990);
    expect(t.fake.commandsRun).toBe(1);
  });

  it("does not retry a 422 and keeps the envelope", async () => {
    const body = JSON.stringify({
      error: "validation",
      detail: "command must not be empty.",
      request_id: "req-422",
      fields: { command: ["command must not be empty."] },
    });
    const t = await setup({ outputs: OUTPUTS, faults: [{ status: 422, body }] });
    const err = await t.run().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ReocloApiError);
    expect(err).toMatchObject({
      status: 422,
      code: "validation",
      detail: "command must not be empty.",
      requestId: "req-422",
      fields: { command: ["command must not be empty."] },
    });
    expect(t.fake.posts()).toHaveLength(1);
  });

  it("turns an error answer without the envelope into not_reoclo_service with a short excerpt", async () => {
    const html = { status: 502, body: "<html>Bad gateway</html>", contentType: "text/html" };
    const t = await setup(
      { outputs: OUTPUTS, faults: [html, html] },
      { retry: { attempts: 2, baseDelayMs: 1 } },
    );
    const err = await t.run().catch((e: unknown) => e);
    expect(err).toMatchObject({
      status: 502,
      code: "not_reoclo_service",
      detail: `The server at ${t.fake.url} did not answer like a Reoclo service (HTTP 502, text/html; a proxy there may not reach the service): "Bad gateway"`,
    });
    expect(t.fake.posts()).toHaveLength(2);
  });

  it("falls back to polling when the answer is not an event stream", async () => {
    const t = await setup({ outputs: OUTPUTS, noStreaming: true, pollsBeforeDone: 2 });
    const result = await t.run();
    expect(result.status).toBe("completed");
    expect(t.ids).toHaveLength(1);
    const polls = t.fake.seen.filter((s) => s.method === "GET");
    expect(polls.map((p) => p.path)).toEqual(Array(3).fill(`/operations/${t.ids[0]}`));
    // The polled result is handed to onOutput once, stdout then stderr.
    expect(t.seen).toEqual([
      { stream: "stdout", data: t.fake.expectedResult.stdout },
      { stream: "stderr", data: t.fake.expectedResult.stderr },
    ]);
  });

  it("polls after repeated stream failures and completes the output from the polled result", async () => {
    const t = await setup({ outputs: OUTPUTS, dropAfter: 1, dropResumed: true });
    const result = await t.run();
    expect(result).toMatchObject({ status: "completed", exit_code: 3 });
    const text = (stream: string) =>
      t.seen
        .filter((c) => c.stream === stream)
        .map((c) => c.data)
        .join("");
    expect(text("stdout")).toBe(t.fake.expectedResult.stdout);
    expect(text("stderr")).toBe(t.fake.expectedResult.stderr);
    const resumes = t.fake.seen.filter((s) => s.path.endsWith("/events"));
    // Progress in the first stream, then four resumes without any: the fifth failure polls; once
    // the operation is final one more try for the stored events, which fails too: the tail completes it.
    expect(resumes.map((r) => r.lastEventId)).toEqual(["1", "1", "1", "1", "1"]);
    expect(t.fake.seen.at(-2)).toMatchObject({ method: "GET", path: `/operations/${t.ids[0]}` });
    expect(t.fake.commandsRun).toBe(1);
  });

  it("after polling, gets exactly the output it missed from the stored events, however long", async () => {
    const long: Chunk[] = Array.from({ length: 40 }, (_, i) => ({
      stream: "stdout",
      data: `line ${i} ${"x".repeat(4000)}\n`,
    }));
    const t = await setup({ outputs: long, dropAfter: 1, dropResumes: 4 });
    await t.run();
    expect(t.seen.map((c) => c.data).join("")).toBe(long.map((c) => c.data).join(""));
    expect(t.fake.seen.at(-1)).toMatchObject({ method: "GET", path: `/operations/${t.ids[0]}/events` });
  });

  it("stops at an error event (key revoked): no resume, no polling, and rejects with its code", async () => {
    const t = await setup({ outputs: OUTPUTS, revokeAfter: 2 });
    const err = await t.run().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ReocloApiError);
    expect(err).toMatchObject({
      status: 401,
      code: "key_revoked",
      detail: REVOKED_DETAIL,
      requestId: "req-stream",
    });
    // Everything sent before the error event was handed over; the operation was announced.
    expect(t.seen).toEqual(OUTPUTS.slice(0, 2));
    expect(t.ids).toHaveLength(1);
    // The streaming POST was the only request: nothing more was sent with the revoked key.
    expect(t.fake.seen.map((s) => `${s.method} ${s.path}`)).toEqual(["POST /exec"]);
    expect(t.fake.commandsRun).toBe(1);
  });

  it("rejects with an AbortError when the signal aborts mid-stream", async () => {
    const t = await setup({ outputs: OUTPUTS.slice(0, 2), holdOpen: true });
    const controller = new AbortController();
    let chunks = 0;
    const err = await t.client
      .exec(
        { server_id: SERVER_ID, command: "sleep 100" },
        {
          signal: controller.signal,
          onOutput: () => {
            if (++chunks === 2) controller.abort();
          },
        },
      )
      .catch((e: unknown) => e);
    expect(err).toMatchObject({ name: "AbortError" });
    expect(t.fake.commandsRun).toBe(1);
  });
});
