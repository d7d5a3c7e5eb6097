import { describe, expect, it } from "vitest";
import { parseEnvFile } from "../src/admin/env-file";

// `apps add --env-file` reads dotenv as Node does (util.parseEnv), and names a bad line, never a value.

describe("parseEnvFile", () => {
  it("reads export, quotes, comments, empty and multi-line values as dotenv does", () => {
    const text = [
      "# settings",
      "export A=1",
      'Q="ab"',
      "S='x y'",
      "   # an indented comment",
      "E=",
      "SPACED = around the equals sign ",
      "T=value # a trailing comment",
      'H="a#b"',
      'M="line 1',
      "line 2",
      'line 3"',
      "B=`back ticks`",
      "export  TWO_SPACES=2",
      "CRLF=yes\r",
      "",
    ].join("\n");
    expect(parseEnvFile(text)).toEqual({
      ok: true,
      env: {
        A: "1",
        Q: "ab",
        S: "x y",
        E: "",
        SPACED: "around the equals sign",
        T: "value",
        H: "a#b",
        M: "line 1\nline 2\nline 3",
        B: "back ticks",
        TWO_SPACES: "2",
        CRLF: "yes",
      },
    });
  });

  it("keeps the last value of a name set twice, as Node does", () => {
    expect(parseEnvFile("A=1\nA=2\n")).toEqual({ ok: true, env: { A: "2" } });
  });

  it("keeps a multi-line value as written, without swallowing the entries after it", () => {
    expect(parseEnvFile('M="x  \n  y"\nN=2\n')).toEqual({ ok: true, env: { M: "x  \n  y", N: "2" } });
  });

  it.each([
    ["no equals sign", "A=1\nnot an assignment\n", 2, "is not NAME=value"],
    ["a space in the name", "A B=1\n", 1, "is not NAME=value"],
    ["no name", "=secret-value\n", 1, "is not NAME=value"],
    ["a name starting with a digit", "1A=secret-value\n", 1, "is not NAME=value"],
    ["a dash in the name", "A-B=secret-value\n", 1, "is not NAME=value"],
    ["export without an assignment", "export SECRET\n", 1, "is not NAME=value"],
    ["an unclosed double quote", 'OK=1\n\nP="secret-value\nQ=2\n', 3, 'opens a " quote that is never closed'],
    ["an unclosed single quote", "P='secret-value\n", 1, "opens a ' quote that is never closed"],
  ])("refuses %s, naming the line and not the value", (_rule, text, line, problem) => {
    const result = parseEnvFile(text);
    expect(result).toEqual({ ok: false, line, problem });
    expect(JSON.stringify(result)).not.toContain("secret");
  });
});
