import { describe, expect, it } from "vitest";
import { ConfigError, parseConfig } from "../src/config";

describe("settings", () => {
  it("has the defaults of spec §9", () => {
    const c = parseConfig({});
    expect(c).toMatchObject({
      host: "127.0.0.1",
      port: 8080,
      databaseUrl: undefined,
      masterKey: undefined,
      syncWaitSeconds: 20,
      maxTimeoutSeconds: 21_600,
      outputCapBytes: 10_485_760,
      trustedProxies: [],
    });
    expect(c.dataDir).toMatch(/\.reoclo$/);
  });

  it("stores trusted proxies canonical", () => {
    expect(
      parseConfig({ REOCLO_TRUSTED_PROXIES: " 10.0.0.0/8 , ::ffff:192.0.2.0/120 " }).trustedProxies,
    ).toEqual(["10.0.0.0/8", "192.0.2.0/24"]);
  });

  it("accepts a master key as hex or base64", () => {
    const hex = "ab".repeat(32);
    expect(parseConfig({ REOCLO_MASTER_KEY: hex }).masterKey?.toString("hex")).toBe(hex);
    const b64 = Buffer.from(hex, "hex").toString("base64");
    expect(parseConfig({ REOCLO_MASTER_KEY: b64 }).masterKey?.toString("hex")).toBe(hex);
  });

  it("lists every invalid setting by name", () => {
    let err: unknown;
    try {
      parseConfig({
        PORT: "eighty",
        DATABASE_URL: "mysql://x",
        REOCLO_MASTER_KEY: "short",
        REOCLO_MAX_TIMEOUT_SECONDS: "60",
        REOCLO_TRUSTED_PROXIES: "10.0.0.0/8,127.1",
      });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    const text = (err as ConfigError).problems.join("\n");
    for (const name of [
      "PORT",
      "DATABASE_URL",
      "REOCLO_MASTER_KEY",
      "REOCLO_MAX_TIMEOUT_SECONDS",
      "REOCLO_TRUSTED_PROXIES",
    ]) {
      expect(text).toContain(name);
    }
    expect(text).not.toContain("short"); // a bad key is never echoed back
  });
});
