import { describe, expect, it } from "vitest";
import type { InputError } from "../src/inputs";
import { parseEnvLines, readSettings } from "../src/inputs";

const SERVER = "8c1f3f0e-58a4-4d1c-9a51-6f1f8d6f1a11";
const inputs = (over: Record<string, string> = {}) => {
  const all: Record<string, string> = {
    api_key: "rca_x",
    server_id: SERVER,
    command: "echo hi",
    api_url: "https://r.example.com/",
    ...over,
  };
  return (name: string) => all[name] ?? "";
};
const GH = {
  GITHUB_RUN_ID: "77",
  GITHUB_RUN_ATTEMPT: "1",
  GITHUB_JOB: "deploy",
  GITHUB_ACTION: "__run",
  GITHUB_REPOSITORY: "acme/web",
};

describe("run action inputs", () => {
  it("builds one settings object with defaults", () => {
    const s = readSettings(inputs(), GH);
    expect(s).toMatchObject({
      apiUrl: "https://r.example.com",
      serverId: SERVER,
      timeoutSeconds: 60,
      runId: "77",
      workingDirectory: undefined,
    });
    expect(s.runContext).toMatchObject({ provider: "github_actions", repository: "acme/web" });
  });

  it("derives the idempotency key from run, attempt, job and step", () => {
    const a = readSettings(inputs(), GH).idempotencyKey;
    expect(readSettings(inputs(), GH).idempotencyKey).toBe(a);
    expect(readSettings(inputs(), { ...GH, GITHUB_RUN_ATTEMPT: "2" }).idempotencyKey).not.toBe(a);
    expect(readSettings(inputs(), { ...GH, GITHUB_ACTION: "__run_2" }).idempotencyKey).not.toBe(a);
    // Two legs of a matrix: same run, job and step, each with its own file-command path.
    const leg = (n: number) => ({
      ...GH,
      GITHUB_OUTPUT: `/runner/_temp/_runner_file_commands/set_output_${n}`,
    });
    expect(readSettings(inputs(), leg(1)).idempotencyKey).not.toBe(
      readSettings(inputs(), leg(2)).idempotencyKey,
    );
  });

  it("parses KEY=VALUE env lines, skipping blanks and comments, keeping = in values", () => {
    expect(parseEnvLines("A=1\n\n# note\nB=x=y\r\n  C=\n")).toEqual({ A: "1", B: "x=y", C: "" });
  });

  it("names the bad env line without echoing its value", () => {
    let message = "";
    try {
      parseEnvLines("GOOD=1\n1BAD=supersecret");
    } catch (e) {
      message = (e as InputError).message;
    }
    expect(message).toContain("env line 2");
    expect(message).not.toContain("supersecret");
  });

  it("takes the job's OIDC token instead of api_key when the job may request one (issue 18)", () => {
    const oidc = {
      ...GH,
      ACTIONS_ID_TOKEN_REQUEST_URL: "http://127.0.0.1:1/t?v=1",
      ACTIONS_ID_TOKEN_REQUEST_TOKEN: "t",
    };
    expect(readSettings(inputs(), oidc).auth).toEqual({ kind: "api_key", apiKey: "rca_x" });
    expect(readSettings(inputs({ api_key: "" }), oidc).auth).toEqual({
      kind: "oidc",
      audience: "https://r.example.com",
    });
    expect(() => readSettings(inputs({ api_key: "" }), GH)).toThrow(/`permissions: id-token: write`/);
  });

  it("refuses missing or malformed inputs with a message naming the input", () => {
    expect(() => readSettings(inputs({ api_key: "" }), GH)).toThrow(/"api_key"/);
    expect(() => readSettings(inputs({ server_id: "web-1" }), GH)).toThrow(/"server_id"/);
    expect(() => readSettings(inputs({ timeout: "0" }), GH)).toThrow(/"timeout"/);
    expect(() => readSettings(inputs({ timeout: "5m" }), GH)).toThrow(/"timeout"/);
    expect(() => readSettings(inputs({ api_url: "" }), GH)).toThrow(/REOCLO_API_URL/);
    expect(
      readSettings(inputs({ api_url: "" }), { ...GH, REOCLO_API_URL: "http://127.0.0.1:8080" }).apiUrl,
    ).toBe("http://127.0.0.1:8080");
  });
});
