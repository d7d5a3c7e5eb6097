// The run action without an api_key (issue 18, spec §12): it asks the runner for the job's OIDC
// ID token, exchanges it with the service for a key, masks both and runs the command with the
// key. Run as the runner runs a step (runner.ts, with its ID token endpoint), from source and the
// main case from the committed bundle too, with tokens signed by the test bed's issuer. Here the
// service's exchange is stood in for by a loopback server in front of the real service (it answers
// POST /oidc/exchange as the contract says and forwards everything else, so the command still runs
// through the real service on a real host), to give the action the answers a real service cannot
// be made to give on demand (an older service without the route, a refusal of a given shape).
// The same path through the service's real exchange and trust policies: oidc.e2e.test.ts.
import { writeFileSync } from "node:fs";
import { createServer, request, type IncomingHttpHeaders, type Server } from "node:http";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { startExecEnv, type ExecEnv } from "@reoclo/service/testing";
import { answeringServer, listenOnLoopback } from "@reoclo/testbed/net";
import { githubClaims, startOidcIssuer, type OidcIssuer } from "@reoclo/testbed/oidc-issuer";
import {
  actionDir,
  startIdTokenService,
  Workspace,
  type ActionBuild,
  type IdTokenService,
} from "@reoclo/testbed/runner";

const EXCHANGE = "/api/automation/v1/oidc/exchange";
const POLICY_ID = "3d0f1a52-7c1e-4b8a-9f60-1a2b3c4d5e6f";
const SERVER_ID = "6f1c2d3e-0000-4000-8000-000000000001";
const NO_CREDENTIALS =
  "Set `api_key`, or let the job request an OIDC token: add `permissions: id-token: write` to the job (GitHub Actions) and create a trust policy for this repository on the service (reoclo-admin trust-policies add …).";
/** The real service's answer to the exchange before it had the route (checked against it). */
const NO_ROUTE = {
  error: "route_not_found",
  detail:
    "No route for POST /api/automation/v1/oidc/exchange: the automation API lives under /api/automation/v1 (e.g. POST /api/automation/v1/exec).",
  request_id: "c94b782b-60ef-4b39-a69b-38067068a083",
};

interface Arrived {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  body: string;
}

/** The claims of a JWT, read without checking it (the stand-in only looks). */
const claimsOf = (jwt: string) =>
  JSON.parse(Buffer.from(jwt.split(".")[1] ?? "", "base64url").toString()) as Record<string, unknown>;

let issuer: OidcIssuer;
let env: ExecEnv;
const closers: (() => Promise<void>)[] = [];
const workspaces: Workspace[] = [];

beforeAll(async () => {
  [issuer, env] = await Promise.all([startOidcIssuer(), startExecEnv()]);
});
afterAll(async () => {
  await Promise.all([issuer?.close(), env?.close()]);
});
afterEach(async () => {
  for (const w of workspaces.splice(0)) w.remove();
  await Promise.all(closers.splice(0).map((close) => close()));
});

/** The runner's ID token endpoint, handing out tokens of acme/web signed by the issuer. */
async function idTokens(): Promise<IdTokenService> {
  const tokens = await startIdTokenService((aud) =>
    issuer.sign(githubClaims({ repository: "acme/web", ...(aud ? { aud } : {}) })),
  );
  closers.push(() => tokens.close());
  return tokens;
}

const workspace = (tokens?: IdTokenService, build: ActionBuild = "source") => {
  const w = new Workspace(actionDir("run"), build, tokens ? { idTokens: tokens } : {});
  workspaces.push(w);
  return w;
};

/**
 * A stand-in for the service's exchange in front of the real service: POST /oidc/exchange gets
 * `answer` (by default a key of the real service), everything else is forwarded as it came.
 */
async function exchangeStandIn(answer?: { status: number; body: unknown }) {
  const upstream = new URL(env.base);
  const arrived: Arrived[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks);
      arrived.push({
        method: req.method ?? "",
        url: req.url ?? "",
        headers: req.headers,
        body: body.toString(),
      });
      if (req.method === "POST" && req.url === EXCHANGE) {
        const { status, body: json } = answer ?? {
          status: 200,
          body: { key: env.key, expires_at: "2030-01-01T00:15:00.000Z", policy_id: POLICY_ID },
        };
        return res.writeHead(status, { "Content-Type": "application/json" }).end(JSON.stringify(json));
      }
      const out = request(
        {
          host: upstream.hostname,
          port: upstream.port,
          method: req.method,
          path: req.url,
          headers: req.headers,
        },
        (up) => {
          res.writeHead(up.statusCode ?? 502, up.headers);
          up.pipe(res);
        },
      );
      out.on("error", () => req.socket.destroy());
      out.end(body);
    });
  });
  const port = await listenOnLoopback(server);
  closers.push(
    () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  );
  return { url: `http://127.0.0.1:${port}`, arrived };
}

/** Log lines holding `secret` other than the runner's own add-mask command. */
const leaks = (log: string, secret: string) =>
  log.split("\n").filter((l) => l.includes(secret) && l !== `::add-mask::${secret}`);

describe("the run action without api_key", () => {
  it("fails before any request when the job may not request an ID token, saying to add id-token: write", async () => {
    const service = await answeringServer((_req, res) => res.writeHead(500).end());
    closers.push(() => new Promise((resolve) => service.server.close(() => resolve())));
    const w = workspace();
    const main = w.start("main", { server_id: SERVER_ID, command: "echo hi", api_url: service.url });
    expect(await main.exited).toBe(1);
    expect(main.log()).toContain(
      `::error::No "api_key" input, and this job may not request an OIDC token. ${NO_CREDENTIALS}`,
    );
    expect(service.requests).toEqual([]);
    const post = w.start("post", { server_id: SERVER_ID, command: "echo hi", api_url: service.url });
    expect(await post.exited).toBe(0);
    expect(post.log()).toContain("[reoclo] nothing left running");
    expect(service.requests).toEqual([]);
  });

  it("exchanges the job's ID token (audience: the api_url origin) and runs the command with the key", async () => {
    const tokens = await idTokens();
    const service = await exchangeStandIn();
    const w = workspace(tokens, "bundle"); // the committed dist, as the runner runs it
    const main = w.start("main", {
      server_id: env.serverId,
      command: "echo keyless-ok",
      api_url: `${service.url}/`,
    });
    expect(await main.exited).toBe(0);
    expect(w.outputs()).toMatchObject({ exit_code: "0", stdout: "keyless-ok\n" });

    expect(tokens.audiences).toEqual([service.url]);
    const [token] = tokens.issued;
    const exchange = service.arrived.filter((r) => r.url === EXCHANGE);
    expect(exchange).toHaveLength(1);
    expect(exchange[0]).toMatchObject({ method: "POST" });
    expect(JSON.parse(exchange[0]!.body)).toEqual({ token });
    expect(exchange[0]!.headers.authorization).toBeUndefined();
    expect(claimsOf(token!)).toMatchObject({ aud: service.url, iss: issuer.issuer, repository: "acme/web" });
    // Then the API as with any key: the exchange came first, and the key the service issued was used.
    expect(service.arrived[0]?.url).toBe(EXCHANGE);
    const execs = service.arrived.filter((r) => r.url === "/api/automation/v1/exec");
    expect(execs.length).toBeGreaterThan(0);
    for (const r of execs) expect(r.headers.authorization).toBe(`Bearer ${env.key}`);

    const log = main.log();
    expect(log).toContain(
      `[reoclo] Authenticated with OIDC: policy ${POLICY_ID}, key expires 2030-01-01T00:15:00.000Z`,
    );
    expect(log).toContain(`::add-mask::${token}`);
    expect(log).toContain(`::add-mask::${env.key}`);
    expect(leaks(log, token!)).toEqual([]);
    expect(leaks(log, env.key)).toEqual([]);
  });

  it("asks for the audience input when given, and says a refused token is the trust policy's to check", async () => {
    const tokens = await idTokens();
    const service = await exchangeStandIn({
      status: 401,
      body: { error: "unauthorized", detail: "The token was refused.", request_id: "req-401" },
    });
    const w = workspace(tokens);
    const main = w.start("main", {
      server_id: env.serverId,
      command: "echo never",
      api_url: service.url,
      audience: "https://reoclo.example.com",
    });
    expect(await main.exited).toBe(1);
    expect(tokens.audiences).toEqual(["https://reoclo.example.com"]);
    expect(main.log()).toContain(
      `::error::The service at ${service.url} refused the OIDC token: The token was refused (request req-401). ` +
        `Check the trust policy for this repository (its issuer, audience "https://reoclo.example.com" and claim conditions such as repository and ref) ` +
        `and the service's audit log, which says which check failed.`,
    );
    // Refused once, never sent again, and nothing else asked.
    expect(service.arrived.map((r) => `${r.method} ${r.url}`)).toEqual([`POST ${EXCHANGE}`]);
    expect(leaks(main.log(), tokens.issued[0]!)).toEqual([]);
  });

  it("says so when the service could not reach the token's issuer (503)", async () => {
    const tokens = await idTokens();
    const service = await exchangeStandIn({
      status: 503,
      body: {
        error: "service_unavailable",
        detail: "The OIDC issuer does not answer.",
        request_id: "req-503",
      },
    });
    const w = workspace(tokens);
    const main = w.start("main", { server_id: env.serverId, command: "echo never", api_url: service.url });
    expect(await main.exited).toBe(1);
    expect(main.log()).toContain(
      `::error::The service at ${service.url} could not reach the OIDC issuer to verify the token: The OIDC issuer does not answer (request req-503). Re-run the job, or set api_key.`,
    );
    expect(service.arrived).toHaveLength(1);
  });

  it("tells a service that predates OIDC exchange (route_not_found) from a refused token", async () => {
    const tokens = await idTokens();
    const service = await exchangeStandIn({ status: 404, body: NO_ROUTE });
    const w = workspace(tokens);
    const main = w.start("main", { server_id: env.serverId, command: "echo never", api_url: service.url });
    expect(await main.exited).toBe(1);
    expect(main.log()).toContain(
      `::error::The service at ${service.url} does not offer OIDC exchange (upgrade it, or set api_key).`,
    );
    expect(service.arrived).toHaveLength(1);
  });

  it("uses api_key as before when it is given, even where the job could request an ID token", async () => {
    const tokens = await idTokens();
    const service = await exchangeStandIn();
    const w = workspace(tokens);
    const main = w.start("main", {
      api_key: env.key,
      server_id: env.serverId,
      command: "echo with-key",
      api_url: service.url,
    });
    expect(await main.exited).toBe(0);
    expect(tokens.audiences).toEqual([]);
    expect(service.arrived.filter((r) => r.url === EXCHANGE)).toEqual([]);
    expect(main.log()).not.toContain("OIDC");
  });

  it("has the post step exchange a token of its own to look for an operation main may have left", async () => {
    const tokens = await idTokens();
    const service = await exchangeStandIn();
    const w = workspace(tokens);
    // What a main step killed during its first request leaves in the state file.
    writeFileSync(w.files.state, "idempotency_key<<EOF_k\nreoclo-run-never-started\nEOF_k\n");
    const post = w.start("post", { server_id: env.serverId, command: "echo never", api_url: service.url });
    expect(await post.exited).toBe(0);
    expect(post.log()).toContain("[reoclo] the main step's request never started an operation");
    expect(post.log()).not.toContain("::warning::");
    expect(tokens.audiences).toEqual([service.url]);
    expect(service.arrived.map((r) => `${r.method} ${r.url.split("?")[0]}`)).toEqual([
      `POST ${EXCHANGE}`,
      "GET /api/automation/v1/operations",
    ]);
    expect(leaks(post.log(), tokens.issued[0]!)).toEqual([]);
    expect(leaks(post.log(), env.key)).toEqual([]);
  });
});
