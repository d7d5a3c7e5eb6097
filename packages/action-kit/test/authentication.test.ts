// How a step gets its key (issue 18): the api_key input as always, else the job's OIDC token, else
// a failure saying what to add. And what a failed exchange tells the user, rule by rule.
import { describe, expect, it } from "vitest";
import { NOT_REOCLO_SERVICE, ReocloApiError, ReocloUnreachableError } from "@reoclo/client";
import { InputError, NO_CREDENTIALS, readAuthentication, readPostSettings } from "../src/inputs";
import { exchangeFailure } from "../src/oidc";

const inputs =
  (all: Record<string, string>) =>
  (name: string): string =>
    all[name] ?? "";
const MAY_REQUEST = {
  ACTIONS_ID_TOKEN_REQUEST_URL: "http://127.0.0.1:1/_apis/idtoken?api-version=2.0",
  ACTIONS_ID_TOKEN_REQUEST_TOKEN: "t",
};
const API = "https://reoclo.example.com";

describe("readAuthentication", () => {
  it.each([
    ["api_key given", { api_key: " rca_x " }, {}, API, { kind: "api_key", apiKey: "rca_x" }],
    [
      "api_key wins over an ID token",
      { api_key: "rca_x" },
      MAY_REQUEST,
      API,
      { kind: "api_key", apiKey: "rca_x" },
    ],
    ["OIDC, audience the api_url origin", {}, MAY_REQUEST, API, { kind: "oidc", audience: API }],
    [
      "OIDC, the origin of an api_url with a path",
      {},
      MAY_REQUEST,
      "https://ci.example.com:8443/reoclo",
      { kind: "oidc", audience: "https://ci.example.com:8443" },
    ],
    [
      "OIDC, the audience input",
      { audience: " reoclo-prod " },
      MAY_REQUEST,
      API,
      { kind: "oidc", audience: "reoclo-prod" },
    ],
  ])("%s", (_rule, given, environment, apiUrl, expected) => {
    expect(readAuthentication(inputs(given), environment, apiUrl)).toEqual(expected);
  });

  it.each([
    ["no ID token variables", {}],
    [
      "only the URL (no request token)",
      { ACTIONS_ID_TOKEN_REQUEST_URL: MAY_REQUEST.ACTIONS_ID_TOKEN_REQUEST_URL },
    ],
    ["only the request token", { ACTIONS_ID_TOKEN_REQUEST_TOKEN: "t" }],
  ])("without api_key and with %s, says to add id-token: write", (_rule, environment) => {
    const read = () => readAuthentication(inputs({}), environment, API);
    expect(read).toThrow(InputError);
    expect(read).toThrow(`No "api_key" input, and this job may not request an OIDC token. ${NO_CREDENTIALS}`);
    expect(NO_CREDENTIALS).toContain("`permissions: id-token: write`");
  });

  it("is what a post step reads too", () => {
    expect(readPostSettings(inputs({ api_url: `${API}/` }), MAY_REQUEST)).toEqual({
      apiUrl: API,
      auth: { kind: "oidc", audience: API },
    });
  });
});

describe("exchangeFailure", () => {
  const api = (status: number, code: string, detail: string) =>
    new ReocloApiError({ status, code, detail, requestId: "req-1" });

  it.each([
    [
      "refused token (401): check the trust policy and the audit log",
      api(401, "unauthorized", "The token was refused."),
      `The service at ${API} refused the OIDC token: The token was refused (request req-1). Check the trust policy for this repository (its issuer, audience "aud-x" and claim conditions such as repository and ref) and the service's audit log, which says which check failed.`,
    ],
    [
      "issuer unreachable (503)",
      api(503, "service_unavailable", "The issuer does not answer."),
      `The service at ${API} could not reach the OIDC issuer to verify the token: The issuer does not answer (request req-1). Re-run the job, or set api_key.`,
    ],
    [
      "no such route (404): an older service",
      api(404, "route_not_found", "No route for POST /api/automation/v1/oidc/exchange"),
      `The service at ${API} does not offer OIDC exchange (upgrade it, or set api_key).`,
    ],
    [
      "not a Reoclo service",
      api(
        404,
        NOT_REOCLO_SERVICE,
        "The server at https://x did not answer like a Reoclo service (HTTP 404, text/html).",
      ),
      "The OIDC token exchange failed: The server at https://x did not answer like a Reoclo service (HTTP 404, text/html).",
    ],
    [
      "another refusal keeps its code",
      api(429, "rate_limited", "Slow down."),
      `The service at ${API} refused the OIDC token exchange: rate_limited (HTTP 429): Slow down. (request req-1)`,
    ],
    [
      "an answer lost on the way: not sent twice",
      new TypeError("fetch failed"),
      `The OIDC token exchange with ${API} failed (fetch failed); it is not sent twice, re-run the job.`,
    ],
  ])("%s", (_rule, err, message) => {
    expect(exchangeFailure(err, API, "aud-x")).toBe(message);
  });

  it("names api_url when nothing listens there", () => {
    const err = new ReocloUnreachableError({
      url: `${API}/api/automation/v1/oidc/exchange`,
      reason: "connection_refused",
      attempts: 3,
      cause: new Error("ECONNREFUSED"),
    });
    expect(exchangeFailure(err, API, "aud-x")).toMatch(
      /^Could not reach the Reoclo API at https:\/\/reoclo\.example\.com to exchange the OIDC token: the connection to reoclo\.example\.com was refused/,
    );
  });
});
