import { describe, expect, it } from "vitest";
import {
  isTerminalOutcome,
  isTerminalStatus,
  OPERATION_OUTCOMES,
  OPERATION_STATUSES,
  statusOfOutcome,
  TERMINAL_OUTCOMES,
  operationListQuerySchema,
  operationListResponseSchema,
  operationSchema,
  runContextSchema,
  TERMINAL_STATUSES,
} from "@reoclo/protocol";
import { fieldsOf, SERVER_ID } from "./helpers.js";

const finished = {
  operation_id: "5d1c0f7e-2b3a-4c5d-8e9f-0a1b2c3d4e5f",
  operation_type: "exec",
  server_id: SERVER_ID,
  server_name: "prod-1",
  status: "timeout",
  outcome: "timeout",
  reason: "Killed after its timeout of 60 s.",
  result: {
    outcome: "timeout",
    reason: "Killed after its timeout of 60 s.",
    exit_code: 124,
    stdout: "",
    stderr: "killed after 60 s",
    duration_ms: 60003,
    stdout_truncated: false,
    stderr_truncated: false,
  },
  run_id: "42",
  run_context: { provider: "github_actions", sha: "" },
  started_at: "2025-01-31T12:00:00.000Z",
  completed_at: "2025-01-31T12:01:00.003Z",
};

describe("operation statuses and outcomes", () => {
  it("speaks the published status vocabulary on the wire: running, then completed, failed or timeout", () => {
    expect(OPERATION_STATUSES.filter((status) => !isTerminalStatus(status))).toEqual(["running"]);
    expect([...TERMINAL_STATUSES].sort()).toEqual(["completed", "failed", "timeout"]);
    expect(isTerminalStatus("queued")).toBe(false);
    expect(isTerminalStatus("cancelled")).toBe(false);
  });

  it.each([
    ["running", "running"],
    ["completed", "completed"],
    ["timeout", "timeout"],
    ["failed", "failed"],
    ["cancelled", "failed"],
    ["lost", "failed"],
  ] as const)("says outcome %s as status %s", (outcome, status) => {
    expect(statusOfOutcome(outcome)).toBe(status);
  });

  it("keeps the precise end in the outcome", () => {
    expect(OPERATION_OUTCOMES.filter((o) => !isTerminalOutcome(o))).toEqual(["running"]);
    expect([...TERMINAL_OUTCOMES].sort()).toEqual(["cancelled", "completed", "failed", "lost", "timeout"]);
  });
});

describe("run_context", () => {
  it("keeps the seven known keys, strips unknown ones and tolerates empty and null values", () => {
    expect(
      runContextSchema.parse({
        provider: "github_actions",
        repository: "",
        workflow: null,
        trigger: "push",
        actor: "octocat",
        ref: "refs/heads/main",
        job_id: 99,
        nested: { deep: true },
      }),
    ).toEqual({
      provider: "github_actions",
      repository: "",
      trigger: "push",
      actor: "octocat",
      ref: "refs/heads/main",
    });
  });

  it("never refuses metadata it can turn into text, and cuts long values", () => {
    const parsed = runContextSchema.parse({ sha: 123, trigger: true, workflow: "w".repeat(5000) });
    expect(parsed).toEqual({ sha: "123", trigger: "true", workflow: "w".repeat(1024) });
  });

  it("accepts an empty object", () => {
    expect(runContextSchema.parse({})).toEqual({});
  });

  it("refuses a run_context that is not an object, with a readable message", () => {
    expect(fieldsOf(runContextSchema.safeParse("github"))).toEqual({
      body: ["run_context must be an object."],
    });
  });
});

describe("GET /operations/{id} answer", () => {
  it("reads a finished operation with its nested result", () => {
    expect(operationSchema.parse(finished)).toEqual(finished);
  });

  it("reads a running operation without result, run id or context", () => {
    const running = {
      ...finished,
      status: "running",
      result: undefined,
      run_id: null,
      run_context: null,
      completed_at: null,
    };
    const parsed = operationSchema.parse(running);
    expect(parsed.result).toBeUndefined();
    expect(parsed.run_context).toBeNull();
    expect(parsed.completed_at).toBeNull();
  });

  it("refuses a timestamp that is not ISO-8601", () => {
    expect(operationSchema.safeParse({ ...finished, started_at: "yesterday" }).success).toBe(false);
  });
});

describe("GET /operations?run_id=", () => {
  it("reads query strings, defaulting the page size", () => {
    expect(operationListQuerySchema.parse({ run_id: "42" })).toEqual({ run_id: "42", limit: 50 });
    expect(operationListQuerySchema.parse({ run_id: "42", limit: "10", cursor: "abc" })).toEqual({
      run_id: "42",
      limit: 10,
      cursor: "abc",
    });
  });

  it("requires a run_id and a sane limit", () => {
    expect(fieldsOf(operationListQuerySchema.safeParse({ limit: "0" }))).toEqual({
      run_id: ["run_id is required."],
      limit: ["limit must be at least 1."],
    });
    expect(fieldsOf(operationListQuerySchema.safeParse({ run_id: "1", limit: "many" }))).toEqual({
      limit: ["limit must be a whole number."],
    });
  });

  it("reads a page of operations with its cursor", () => {
    expect(operationListResponseSchema.parse({ items: [finished], next_cursor: null })).toEqual({
      items: [finished],
      next_cursor: null,
    });
  });
});
