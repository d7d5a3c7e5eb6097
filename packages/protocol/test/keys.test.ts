import { describe, expect, it } from "vitest";
import {
  automationKeyPattern,
  isAutomationKeyShape,
  KEY_CHECKSUM_LENGTH,
  KEY_PREFIX,
  KEY_RANDOM_LENGTH,
  KEY_TOTAL_LENGTH,
} from "@reoclo/protocol";

const body = "aZ09".repeat(9); // 36 base62 characters: 30 random + 6 checksum

describe("automation key shape", () => {
  it("is rca_ followed by 30 random and 6 checksum base62 characters, 40 in all", () => {
    expect(KEY_PREFIX).toBe("rca_");
    expect(KEY_RANDOM_LENGTH + KEY_CHECKSUM_LENGTH).toBe(36);
    expect(KEY_TOTAL_LENGTH).toBe(40);
    expect(isAutomationKeyShape(`rca_${body}`)).toBe(true);
  });

  it("carries at least 160 bits of randomness", () => {
    expect(KEY_RANDOM_LENGTH * Math.log2(62)).toBeGreaterThanOrEqual(160);
  });

  it("has room for any CRC32 value in the checksum", () => {
    expect(62 ** KEY_CHECKSUM_LENGTH).toBeGreaterThan(2 ** 32);
  });

  it.each([
    ["a wrong prefix", `rk_${body}`],
    ["a missing character", `rca_${body.slice(1)}`],
    ["an extra character", `rca_${body}x`],
    ["a non-base62 character", `rca_${body.slice(1)}-`],
    ["surrounding whitespace", ` rca_${body}`],
    ["a trailing newline", `rca_${body}\n`],
    ["the Bearer prefix left in", `Bearer rca_${body}`],
  ])("refuses %s", (_, key) => {
    expect(automationKeyPattern.test(key)).toBe(false);
  });
});
