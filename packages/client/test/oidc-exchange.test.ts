// exchangeOidcToken (spec §12): one POST without an API key, sent again only while nothing can
// have reached the service, because the service accepts a token once (its jti). Loopback servers
// that record what arrived; attempts are counted, never timed.
import { createServer, type IncomingHttpHeaders, type Server } from "node:http";
import { afterEach, describe, expect, it } from "vitest";
import { ReocloApiError, ReocloClient, ReocloUnreachableError } from "../src/index.js";
import { freePort, listenOnLoopback } from "@reoclo/testbed/net";

const TOKEN = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJyZXBvOmFjbWUvc2hvcCJ9.c2ln";
const ISSUED = {
  key: "rca_oidcoidcoidcoidcoidcoidcoidcoidc1234",
  expires_at: "2030-01-01T00:15:00.000Z",
  policy_id: "0b7f6a54-1c2d-4e5f-8a9b-0c1d2e3f4a5b",
};
const FAST_RETRY = { attempts: 8, baseDelayMs: 1, maxDelayMs: 5 };

interface Arrived {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  body: string;
}

const servers: Server[] = [];
afterEach(async () => {
  await Promise.all(
    servers.splice(0).map(
      (s) =>
        new Promise((resolve) => {
          s.closeAllConnections();
          s.close(resolve);
        }),
    ),
  );
});

/** A service stand-in answering every request with `status` and `body` (or dropping the connection). */
async function service(answer: { status: number; body?: unknown } | "drop") {
  const arrived: Arrived[] = [];
  const server = createServer((req, res) => {
    let body = "";
    req.on("data", (c: Buffer) => (body += c.toString()));
    req.on("end", () => {
      arrived.push({ method: req.method ?? "", url: req.url ?? "", headers: req.headers, body });
      if (answer === "drop") return req.socket.destroy();
      res.writeHead(answer.status, { "Content-Type": "application/json" }).end(JSON.stringify(answer.body));
    });
  });
  servers.push(server);
  const port = await listenOnLoopback(server);
  return { url: `http://127.0.0.1:${port}`, arrived };
}

const keyless = (apiUrl: string) =>
  new ReocloClient({ apiUrl, userAgent: "reoclo-github-action (test)", retry: FAST_RETRY });

const envelope = (error: string, detail: string) => ({ error, detail, request_id: "req-1" });

describe("exchangeOidcToken", () => {
  it("posts the token to /oidc/exchange without an API key and returns the key, its expiry and policy", async () => {
    const api = await service({ status: 200, body: ISSUED });
    await expect(keyless(api.url).exchangeOidcToken(TOKEN)).resolves.toEqual(ISSUED);
    expect(api.arrived).toHaveLength(1);
    const [req] = api.arrived;
    expect(req).toMatchObject({ method: "POST", url: "/api/automation/v1/oidc/exchange" });
    expect(JSON.parse(req!.body)).toEqual({ token: TOKEN });
    expect(req!.headers.authorization).toBeUndefined();
    expect(req!.headers["content-type"]).toBe("application/json");
    expect(req!.headers["user-agent"]).toBe("reoclo-github-action (test)");
  });

  it.each([
    ["a refused token (401)", 401, envelope("unauthorized", "The token was refused.")],
    [
      "an issuer the service cannot reach (503)",
      503,
      envelope("service_unavailable", "The issuer does not answer."),
    ],
    ["a rate limit (429)", 429, envelope("rate_limited", "Too many requests.")],
    ["a service without the route (404)", 404, envelope("route_not_found", "No route for POST …")],
  ])("rejects at once, never sending the token twice, on %s", async (_name, status, body) => {
    const api = await service({ status, body });
    const err = await keyless(api.url)
      .exchangeOidcToken(TOKEN)
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ReocloApiError);
    expect(err).toMatchObject({ status, code: body.error, detail: body.detail, requestId: "req-1" });
    expect(api.arrived).toHaveLength(1);
  });

  it("does not send the token again when the connection broke after the request left", async () => {
    const api = await service("drop");
    const err = await keyless(api.url)
      .exchangeOidcToken(TOKEN)
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Error);
    expect(err).not.toBeInstanceOf(ReocloUnreachableError);
    expect(api.arrived).toHaveLength(1);
  });

  it("retries a refused connection, which nothing can have received, then says nothing was sent", async () => {
    let fetches = 0;
    const port = await freePort();
    const client = new ReocloClient({
      apiUrl: `http://127.0.0.1:${port}`,
      retry: FAST_RETRY,
      fetch: (input, init) => {
        fetches++;
        return fetch(input, init);
      },
    });
    const err = await client.exchangeOidcToken(TOKEN).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ReocloUnreachableError);
    expect(fetches).toBeGreaterThan(1);
  });

  it("refuses an answer that is not a key, without echoing it", async () => {
    const api = await service({ status: 200, body: { ...ISSUED, key: "not-a-key-secret" } });
    const err = await keyless(api.url)
      .exchangeOidcToken(TOKEN)
      .catch((e: unknown) => e);
    expect(err).toMatchObject({ code: "unexpected_response" });
    expect(String((err as Error).message)).not.toContain("not-a-key-secret");
  });
});

describe("a client made without an API key", () => {
  it("refuses every other call before sending anything", async () => {
    const api = await service({ status: 200, body: {} });
    const client = keyless(api.url);
    await expect(client.getOperation("0b7f6a54-1c2d-4e5f-8a9b-0c1d2e3f4a5b")).rejects.toThrow(
      /needs an API key/,
    );
    await expect(client.exec({ server_id: ISSUED.policy_id, command: "true" })).rejects.toThrow(
      /needs an API key/,
    );
    expect(api.arrived).toEqual([]);
  });

  it("is told an empty key is a mistake, not a keyless client", () => {
    expect(() => new ReocloClient({ apiUrl: "http://127.0.0.1:1", apiKey: "" })).toThrow(/must not be empty/);
  });
});
