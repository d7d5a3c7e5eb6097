import { describe, expect, it } from "vitest";
import { canonicalCidr } from "../src/net/cidr";

describe("CIDR allowlist entries", () => {
  it.each([
    ["10.0.0.0/8", "10.0.0.0/8"],
    ["192.168.1.7", "192.168.1.7/32"],
    ["2001:DB8::/32", "2001:db8::/32"],
    ["::1", "::1/128"],
    ["::ffff:10.1.0.0/112", "10.1.0.0/16"],
  ])("stores %s as %s", (input, canonical) => {
    expect(canonicalCidr(input)).toEqual({ ok: true, cidr: canonical });
  });

  it.each([
    "127.1",
    "010.0.0.1/32",
    "0x7f.0.0.1",
    "10.0.0.0/33",
    "::/129",
    "10.0.0.1/8",
    "fe80::1%eth0",
    "",
    "10.0.0.0/-1",
    "a.b.c.d",
  ])("refuses %j with a reason", (input) => {
    const r = canonicalCidr(input);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.problem.length).toBeGreaterThan(10);
  });
});
