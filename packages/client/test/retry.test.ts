import { describe, expect, it } from "vitest";
import { apiBaseUrl } from "../src/client.js";
import { isRetryable } from "../src/http.js";
import { backoffDelay, parseRetryAfter, ReocloApiError } from "../src/index.js";

describe("parseRetryAfter", () => {
  const now = Date.parse("2025-01-31T12:00:00Z");

  it("reads delay-seconds", () => {
    expect(parseRetryAfter("1", now)).toBe(1000);
    expect(parseRetryAfter(" 120 ", now)).toBe(120_000);
    expect(parseRetryAfter("0", now)).toBe(0);
  });

  it("reads an HTTP date relative to now, and a past date as 0", () => {
    expect(parseRetryAfter("Fri, 31 Jan 2025 12:00:30 GMT", now)).toBe(30_000);
    expect(parseRetryAfter("Fri, 31 Jan 2025 11:00:00 GMT", now)).toBe(0);
  });

  it("returns undefined for absent or unreadable values", () => {
    for (const value of [null, "", "soon", "-1", "1.5", "12abc", "Not a date"]) {
      expect(parseRetryAfter(value, now), String(value)).toBeUndefined();
    }
  });
});

describe("backoffDelay", () => {
  it("draws uniformly below base·2^attempt (full jitter)", () => {
    expect(backoffDelay(0, 500, 15_000, () => 0)).toBe(0);
    expect(backoffDelay(0, 500, 15_000, () => 0.5)).toBe(250);
    expect(backoffDelay(3, 500, 15_000, () => 0.999999)).toBe(3999);
  });

  it("never exceeds max, even for large attempts", () => {
    expect(backoffDelay(5, 500, 15_000, () => 0.999999)).toBe(14_999);
    expect(backoffDelay(10_000, 500, 15_000, () => 0.999999)).toBe(14_999);
  });

  it("stays within bounds with the real random source", () => {
    for (let attempt = 0; attempt < 20; attempt++) {
      const d = backoffDelay(attempt, 100, 2000);
      expect(d).toBeGreaterThanOrEqual(0);
      expect(d).toBeLessThan(Math.min(2000, 100 * 2 ** attempt));
    }
  });
});

describe("isRetryable", () => {
  const err = (status: number, code = `http_${status}`) => new ReocloApiError({ status, code, detail: "x" });

  it("retries 5xx, 408, 429 and an idempotency key still in progress, nothing else", () => {
    for (const s of [500, 502, 503, 504, 408, 429]) expect(isRetryable(err(s)), String(s)).toBe(true);
    expect(isRetryable(err(409, "idempotency_in_progress"))).toBe(true);
    for (const s of [400, 401, 403, 404, 413, 422]) expect(isRetryable(err(s)), String(s)).toBe(false);
    expect(isRetryable(err(409, "application_busy"))).toBe(false);
  });
});

describe("apiBaseUrl", () => {
  it("appends the base path once and tolerates trailing slashes", () => {
    expect(apiBaseUrl("https://r.example.com")).toBe("https://r.example.com/api/automation/v1");
    expect(apiBaseUrl("https://r.example.com//")).toBe("https://r.example.com/api/automation/v1");
    expect(apiBaseUrl("https://r.example.com/api/automation/v1/")).toBe(
      "https://r.example.com/api/automation/v1",
    );
  });
});
