import { describe, expect, it } from "vitest";
import { KEY_PREFIX } from "@reoclo/protocol";
import {
  displayPrefix,
  generateAutomationKey,
  hashAutomationKey,
  isWellFormedAutomationKey,
} from "../src/keys/key-format";

describe("automation key format", () => {
  it("generates rca_ keys of 40 base62 characters whose checksum verifies", () => {
    const { key, prefix, hash } = generateAutomationKey();
    expect(key).toMatch(/^rca_[0-9A-Za-z]{36}$/);
    expect(key.startsWith(KEY_PREFIX)).toBe(true);
    expect(isWellFormedAutomationKey(key)).toBe(true);
    expect(prefix).toBe(key.slice(0, 10));
    expect(displayPrefix(key)).toBe(prefix);
    expect(hash.equals(hashAutomationKey(key))).toBe(true);
  });

  it("never repeats a key across many generations", () => {
    const keys = new Set(Array.from({ length: 2000 }, () => generateAutomationKey().key));
    expect(keys.size).toBe(2000);
  });

  it("rejects every single-character typo through the checksum", () => {
    const { key } = generateAutomationKey();
    let rejected = 0;
    for (let i = KEY_PREFIX.length; i < key.length; i++) {
      const c = key[i] === "a" ? "b" : "a";
      const typo = key.slice(0, i) + c + key.slice(i + 1);
      if (!isWellFormedAutomationKey(typo)) rejected++;
    }
    expect(rejected).toBe(key.length - KEY_PREFIX.length);
  });

  it("rejects wrong prefixes, lengths and characters", () => {
    const { key } = generateAutomationKey();
    for (const bad of [
      "",
      "rca_",
      key.slice(0, -1),
      key + "0",
      "rcb_" + key.slice(4),
      key.replace(/.$/, "-"),
      ` ${key}`,
    ]) {
      expect(isWellFormedAutomationKey(bad), bad).toBe(false);
    }
  });

  it("hashes are 32-byte SHA-256 values that differ per key", () => {
    const a = generateAutomationKey();
    const b = generateAutomationKey();
    expect(a.hash).toHaveLength(32);
    expect(a.hash.equals(b.hash)).toBe(false);
  });
});
