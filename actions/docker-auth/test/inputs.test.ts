import { describe, expect, it } from "vitest";
import { readSettings } from "../src/inputs";

const SERVER = "8c1f3f0e-58a4-4d1c-9a51-6f1f8d6f1a11";
const CREDENTIAL = "1d2c3b4a-58a4-4d1c-9a51-6f1f8d6f1a11";
const inputs = (over: Record<string, string> = {}) => {
  const all: Record<string, string> = {
    api_key: "rca_x",
    server_id: SERVER,
    credential_id: CREDENTIAL,
    api_url: "https://r.example.com/",
    ...over,
  };
  return (name: string) => all[name] ?? "";
};
const OIDC = {
  ACTIONS_ID_TOKEN_REQUEST_URL: "http://127.0.0.1:1/t?v=1",
  ACTIONS_ID_TOKEN_REQUEST_TOKEN: "t",
};

describe("docker-auth inputs", () => {
  it("takes the job's OIDC token instead of api_key when the job may request one (issue 18)", () => {
    expect(readSettings(inputs(), OIDC).auth).toEqual({ kind: "api_key", apiKey: "rca_x" });
    expect(readSettings(inputs({ api_key: "" }), OIDC).auth).toEqual({
      kind: "oidc",
      audience: "https://r.example.com",
    });
    expect(() => readSettings(inputs({ api_key: "" }), {})).toThrow(/`permissions: id-token: write`/);
  });

  it("checks the ids before anything else", () => {
    expect(() => readSettings(inputs({ api_key: "", server_id: "web" }), {})).toThrow(/"server_id"/);
  });
});
