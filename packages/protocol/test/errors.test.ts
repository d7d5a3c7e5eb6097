import { describe, expect, it } from "vitest";
import { z } from "zod";
import {
  ERROR_CODE_LIST,
  ERROR_CODES,
  errorEnvelopeSchema,
  errorStatus,
  isErrorCode,
  validationDetail,
  zodIssuesToFields,
} from "@reoclo/protocol";

describe("error codes", () => {
  it("maps every code of the contract to its status", () => {
    expect(ERROR_CODES).toEqual({
      unauthorized: 401,
      key_revoked: 401,
      key_expired: 401,
      ip_not_allowed: 403,
      operation_not_allowed: 403,
      server_not_in_scope: 403,
      credential_not_in_scope: 403,
      application_not_in_scope: 403,
      forbidden: 403,
      not_found: 404,
      oidc_issuer_unavailable: 503,
      route_not_found: 404,
      method_not_allowed: 405,
      request_timeout: 408,
      idempotency_in_progress: 409,
      application_busy: 409,
      conflict: 409,
      payload_too_large: 413,
      unsupported_media_type: 415,
      malformed_json: 400,
      bad_request: 400,
      validation: 422,
      idempotency_key_mismatch: 422,
      rate_limited: 429,
      internal_error: 500,
      secrets_unavailable: 503,
      database_unavailable: 503,
      audit_unavailable: 503,
      service_unavailable: 503,
    });
  });

  it("spells every code in snake_case and gives each an error status", () => {
    for (const code of ERROR_CODE_LIST) {
      expect(code).toMatch(/^[a-z]+(_[a-z]+)*$/);
      expect(errorStatus(code)).toBeGreaterThanOrEqual(400);
      expect(errorStatus(code)).toBeLessThan(600);
    }
  });

  it("uses 500 only for internal_error: bad input never answers 500", () => {
    expect(ERROR_CODE_LIST.filter((code) => ERROR_CODES[code] === 500)).toEqual(["internal_error"]);
  });

  it("recognises known codes only, ignoring inherited properties", () => {
    expect(isErrorCode("rate_limited")).toBe(true);
    expect(isErrorCode("toString")).toBe(false);
    expect(isErrorCode(429)).toBe(false);
  });
});

describe("error envelope", () => {
  it("reads the one error shape, with optional fields", () => {
    const body = {
      error: "validation",
      detail: "command must not be empty.",
      request_id: "req_1",
      fields: { command: ["command must not be empty."] },
    };
    expect(errorEnvelopeSchema.parse(body)).toEqual(body);
    expect(
      errorEnvelopeSchema.parse({ error: "not_found", detail: "Operation not found", request_id: "r" }),
    ).toEqual({
      error: "not_found",
      detail: "Operation not found",
      request_id: "r",
    });
  });

  it("still reads a code this client does not know yet", () => {
    expect(errorEnvelopeSchema.safeParse({ error: "teapot", detail: "x", request_id: "r" }).success).toBe(
      true,
    );
  });
});

describe("zodIssuesToFields", () => {
  const schema = z.object({ a: z.object({ b: z.string({ error: "a.b must be a string." }) }) });

  it("joins nested paths with dots and puts root problems under 'body'", () => {
    const nested = schema.safeParse({ a: { b: 1 } });
    expect(!nested.success && zodIssuesToFields(nested.error)).toEqual({ "a.b": ["a.b must be a string."] });
    const root = z.string({ error: "Must be text." }).safeParse(1);
    expect(!root.success && zodIssuesToFields(root.error)).toEqual({ body: ["Must be text."] });
  });

  it("reports the same problem once per field", () => {
    const twice = z
      .string()
      .superRefine((_, ctx) => {
        ctx.addIssue({ code: "custom", message: "Bad." });
        ctx.addIssue({ code: "custom", message: "Bad." });
      })
      .safeParse("x");
    expect(!twice.success && zodIssuesToFields(twice.error)).toEqual({ body: ["Bad."] });
  });
});

describe("validationDetail", () => {
  it("is the single problem itself, or the first one with a count", () => {
    expect(validationDetail({ command: ["command must not be empty."] })).toBe("command must not be empty.");
    expect(validationDetail({ a: ["a is required."], b: ["b is required.", "b is odd."] })).toBe(
      'a is required (and 2 more problems, see "fields").',
    );
    expect(validationDetail({})).toBe("The request body is invalid.");
  });
});
