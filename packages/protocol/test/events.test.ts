import { describe, expect, it } from "vitest";
import {
  endEventSchema,
  errorEventSchema,
  outputEventSchema,
  SSE_EVENT_NAMES,
  sseEventDataSchemas,
  statusEventSchema,
} from "@reoclo/protocol";

describe("SSE events", () => {
  it("are output, status, end and error, each with a payload schema", () => {
    expect(SSE_EVENT_NAMES).toEqual(["output", "status", "end", "error"]);
    expect(Object.keys(sseEventDataSchemas).sort()).toEqual([...SSE_EVENT_NAMES].sort());
  });

  it("output names its stream", () => {
    expect(outputEventSchema.parse({ stream: "stderr", data: "warn\n" })).toEqual({
      stream: "stderr",
      data: "warn\n",
    });
    expect(outputEventSchema.safeParse({ stream: "stdin", data: "" }).success).toBe(false);
  });

  it("status carries the wire status and the precise outcome", () => {
    expect(statusEventSchema.parse({ status: "failed", outcome: "cancelled" })).toEqual({
      status: "failed",
      outcome: "cancelled",
    });
    expect(statusEventSchema.safeParse({ status: "cancelled", outcome: "cancelled" }).success).toBe(false);
    expect(statusEventSchema.safeParse({ status: "done" }).success).toBe(false);
  });

  it("end is the operation result", () => {
    const result = {
      exit_code: 130,
      stdout: "",
      stderr: "",
      duration_ms: 5,
      stdout_truncated: false,
      stderr_truncated: true,
    };
    // An older service's end has no outcome and no reason: its status event said how it ended.
    expect(endEventSchema.parse(result)).toEqual({ ...result, reason: null });
    const now = { ...result, outcome: "cancelled", reason: "Cancelled by a person." };
    expect(sseEventDataSchemas.end.parse(now)).toEqual(now);
  });

  it("error is the error envelope, ending the stream while the operation goes on", () => {
    const revoked = {
      error: "key_revoked",
      detail: "The automation key was revoked: the operation goes on, but this event stream ends here.",
      request_id: "req-1",
    };
    expect(errorEventSchema.parse(revoked)).toEqual(revoked);
    expect(sseEventDataSchemas.error.safeParse({ error: "key_revoked" }).success).toBe(false);
  });
});
