import { describe, expect, it } from "vitest";
import { ENV_MAX_BYTES, ENV_MAX_KEYS, execRequestSchema } from "@reoclo/protocol";
import { fieldsOf, SERVER_ID } from "./helpers.js";

const withEnv = (env: unknown) => execRequestSchema.safeParse({ server_id: SERVER_ID, command: "env", env });

describe("env of POST /exec", () => {
  it("accepts shell identifiers with string values, including empty ones", () => {
    const result = withEnv({ _PRIVATE: "", DB_URL: "postgres://x", a1: "é" });
    expect(result.success && result.data.env).toEqual({ _PRIVATE: "", DB_URL: "postgres://x", a1: "é" });
  });

  it("keeps a variable named __proto__ as a plain variable", () => {
    const result = withEnv(JSON.parse('{"__proto__": "x"}'));
    expect(result.success).toBe(true);
    expect(result.success && Object.keys(result.data.env ?? {})).toEqual(["__proto__"]);
    expect(result.success && Object.getPrototypeOf(result.data.env)).toBe(Object.prototype);
  });

  it("refuses names that are not shell identifiers, quoting the name", () => {
    expect(fieldsOf(withEnv({ "1ABC": "x", "MY-VAR": "y", "": "z" }))).toEqual({
      env: [
        'env name "1ABC" is not a valid variable name: use letters, digits and underscores, not starting with a digit.',
        'env name "MY-VAR" is not a valid variable name: use letters, digits and underscores, not starting with a digit.',
        'env name "" is not a valid variable name: use letters, digits and underscores, not starting with a digit.',
      ],
    });
  });

  it("drops comment lines the published CLI sends as names starting with #, and still refuses other bad names", () => {
    const result = withEnv({ "# DEBUG": "1", "#": "", "  # note": "x", KEEP: "yes" });
    expect(result.success && result.data.env).toEqual({ KEEP: "yes" });
    expect(fieldsOf(withEnv({ "# DEBUG": "1", "A#B": "x" }))).toEqual({
      env: [
        'env name "A#B" is not a valid variable name: use letters, digits and underscores, not starting with a digit.',
      ],
    });
  });

  it("cuts a huge bad name short in the message", () => {
    const message = fieldsOf(withEnv({ ["-".repeat(10_000)]: "x" })).env?.[0] ?? "";
    expect(message.length).toBeLessThan(200);
  });

  it("refuses values that are not strings or that hold a NUL, under the variable's own field", () => {
    expect(fieldsOf(withEnv({ PORT: 8080, TOKEN: "a\u0000b" }))).toEqual({
      "env.PORT": ["env.PORT must be a string."],
      "env.TOKEN": ["env.TOKEN must not contain a NUL character."],
    });
  });

  it("refuses an env that is not an object", () => {
    for (const env of [["A=1"], "A=1", 3]) {
      expect(fieldsOf(withEnv(env))).toEqual({
        env: ["env must be an object mapping variable names to string values."],
      });
    }
  });

  it("accepts 200 variables and refuses 201", () => {
    const vars = (count: number) =>
      Object.fromEntries(Array.from({ length: count }, (_, i) => [`V${i}`, "1"]));
    expect(withEnv(vars(ENV_MAX_KEYS)).success).toBe(true);
    expect(fieldsOf(withEnv(vars(ENV_MAX_KEYS + 1)))).toEqual({
      env: ["env may hold at most 200 variables; it has 201."],
    });
  });

  it("accepts exactly 64 KiB of names plus values and refuses one byte more, counting UTF-8 bytes", () => {
    const exact = { BIG: "x".repeat(ENV_MAX_BYTES - 3) };
    expect(withEnv(exact).success).toBe(true);
    // "é" is two bytes in UTF-8 but one UTF-16 unit: the byte count is what is limited.
    const over = { BIG: "x".repeat(ENV_MAX_BYTES - 4) + "é" };
    expect(fieldsOf(withEnv(over))).toEqual({
      env: ["env must be at most 65536 bytes in total (names plus values); it has 65537."],
    });
  });
});
