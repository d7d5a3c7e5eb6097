// The client pointed at something that is not the automation API (issue 14): a closed port, an
// unknown host, a web server, a proxy without the service, a wrong path prefix. Each is a small
// loopback server; the assertions count attempts (never a clock).
import type { Server } from "node:http";
import { afterEach, describe, expect, it } from "vitest";
import { bodyExcerpt } from "../src/errors.js";
import { ReocloApiError, ReocloClient, type ClientOptions } from "../src/index.js";
import { answeringServer, freePort } from "@reoclo/testbed/net";

const KEY = "rca_testkeytestkeytestkeytestkey123456";
const SERVER_ID = "6f1c2d3e-0000-4000-8000-000000000001";
/** The actions' retry policy (action-kit ACTION_RETRY): 8 attempts, delays up to 15 s. */
const ACTION_RETRY = { attempts: 8, baseDelayMs: 1_000, maxDelayMs: 15_000 };
const FAST_RETRY = { attempts: 8, baseDelayMs: 1, maxDelayMs: 5 };

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

/** An answering server (@reoclo/testbed/net), closed after each test. */
async function httpServer(answer: Parameters<typeof answeringServer>[0]) {
  const s = await answeringServer(answer);
  servers.push(s.server);
  return s;
}

/** A client whose every fetch is counted, and whose retry log is kept. */
function client(apiUrl: string, retry: ClientOptions["retry"] = FAST_RETRY) {
  const logs: string[] = [];
  let fetches = 0;
  const c = new ReocloClient({
    apiUrl,
    apiKey: KEY,
    retry,
    log: (m) => logs.push(m),
    fetch: (input, init) => {
      fetches++;
      return fetch(input, init);
    },
  });
  const exec = () => c.exec({ server_id: SERVER_ID, command: "echo hi" }).catch((e: unknown) => e);
  /** The waits the retry lines announced ("… in 730 ms"), one per retry. */
  const announcedDelays = () =>
    logs.flatMap((l) => {
      const m = / in (\d+) ms$/.exec(l);
      return m ? [Number(m[1])] : [];
    });
  return { exec, logs, announcedDelays, fetches: () => fetches };
}

const page = (title: string, tail = "") =>
  `<!DOCTYPE html><html><head><title>${title}</title><style>h1{color:red}</style></head>` +
  `<body><h1>${title}</h1>${tail}<script>var t = "${"x".repeat(10_000)}END-OF-PAGE";</script></body></html>`;

describe("a closed port or an unknown host", () => {
  it("gives up after the attempts, a few seconds of announced waits, saying nothing was sent", async () => {
    const port = await freePort();
    const t = client(`http://127.0.0.1:${port}`, ACTION_RETRY);
    const err = await t.exec();
    expect(err).toMatchObject({
      name: "ReocloUnreachableError",
      reason: "connection_refused",
      nothingSent: true,
      attempts: ACTION_RETRY.attempts,
    });
    expect((err as Error).message).toBe(
      `the connection to 127.0.0.1:${port} was refused on every attempt (ECONNREFUSED): nothing listens there; check the API URL (api_url) and that the service runs. No request reached the service.`,
    );
    expect(t.fetches()).toBe(ACTION_RETRY.attempts);
    // Enough tries to meet a service that is just starting, all within 5 s of waiting.
    expect(t.announcedDelays()).toHaveLength(ACTION_RETRY.attempts - 1);
    expect(t.announcedDelays().reduce((a, b) => a + b, 0)).toBeLessThanOrEqual(5_000);
  });

  it("says a host name that does not resolve is unknown, and that nothing was sent", async () => {
    const t = client("http://reoclo-nowhere.invalid");
    const err = await t.exec();
    expect(err).toMatchObject({ name: "ReocloUnreachableError", reason: "unknown_host", nothingSent: true });
    expect((err as Error).message).toContain(
      "the host name reoclo-nowhere.invalid does not resolve (ENOTFOUND)",
    );
    expect(t.fetches()).toBe(FAST_RETRY.attempts);
  });
});

describe("a server that is not a Reoclo service", () => {
  it("is not retried: an HTML 501 is said in one sentence with a short excerpt, never the page", async () => {
    const site = await httpServer((_req, res) =>
      res
        .writeHead(501, { "Content-Type": "text/html; charset=utf-8" })
        .end(page("Not Implemented", "<p>Unsupported method (&#39;POST&#39;).</p>")),
    );
    const t = client(site.url);
    const err = await t.exec();
    expect(err).toBeInstanceOf(ReocloApiError);
    expect(err).toMatchObject({
      status: 501,
      code: "not_reoclo_service",
      detail: `The server at ${site.url} did not answer like a Reoclo service (HTTP 501, text/html): "Not Implemented Unsupported method ('POST')."`,
    });
    expect(site.requests).toEqual(["POST /api/automation/v1/exec"]);
    expect(t.fetches()).toBe(1);
  });

  it("is not retried when it answers 404 without the envelope", async () => {
    const site = await httpServer((req, res) =>
      res.writeHead(404, { "Content-Type": "text/plain" }).end(`Cannot ${req.method} ${req.url}`),
    );
    const t = client(`${site.url}/`);
    const err = await t.exec();
    expect(err).toMatchObject({
      status: 404,
      code: "not_reoclo_service",
      detail: `The server at ${site.url} did not answer like a Reoclo service (HTTP 404, text/plain): "Cannot POST /api/automation/v1/exec"`,
    });
    expect(t.fetches()).toBe(1);
  });

  it("is not retried when it answers 200 with a web page", async () => {
    const site = await httpServer((_req, res) =>
      res.writeHead(200, { "Content-Type": "text/html" }).end(page("Welcome")),
    );
    const t = client(site.url);
    const err = await t.exec();
    expect(err).toMatchObject({
      status: 200,
      code: "not_reoclo_service",
      detail: `The server at ${site.url} did not answer like a Reoclo service (HTTP 200, text/html): "Welcome"`,
    });
    expect(t.fetches()).toBe(1);
  });

  it("gives a proxy's own 502 a few brief retries, then says a proxy may not reach the service", async () => {
    const proxy = await httpServer((_req, res) =>
      res
        .writeHead(502, { "Content-Type": "text/html" })
        .end(page("502 Bad Gateway", "<hr><center>nginx</center>")),
    );
    const t = client(proxy.url, ACTION_RETRY);
    const err = await t.exec();
    expect(err).toMatchObject({
      status: 502,
      code: "not_reoclo_service",
      detail: `The server at ${proxy.url} did not answer like a Reoclo service (HTTP 502, text/html; a proxy there may not reach the service): "502 Bad Gateway nginx"`,
    });
    expect(t.fetches()).toBeGreaterThan(1);
    expect(t.fetches()).toBeLessThanOrEqual(4);
    expect(t.announcedDelays()).toHaveLength(t.fetches() - 1);
    expect(t.announcedDelays().every((d) => d <= 2_000)).toBe(true);
  });

  it("retries a 429 without the envelope only when it says when to come back", async () => {
    const bare = await httpServer((_req, res) =>
      res.writeHead(429, { "Content-Type": "text/plain" }).end("slow down"),
    );
    const noHint = client(bare.url, { attempts: 3, baseDelayMs: 1, maxDelayMs: 5 });
    expect(await noHint.exec()).toMatchObject({ status: 429, code: "not_reoclo_service" });
    expect(noHint.fetches()).toBe(1);

    const hinted = await httpServer((_req, res) =>
      res.writeHead(429, { "Content-Type": "text/plain", "Retry-After": "0" }).end("slow down"),
    );
    const withHint = client(hinted.url, { attempts: 3, baseDelayMs: 1, maxDelayMs: 5 });
    expect(await withHint.exec()).toMatchObject({ status: 429, code: "not_reoclo_service" });
    expect(withHint.fetches()).toBe(3);
  });
});

describe("a Reoclo service under another path", () => {
  it("keeps the service's route_not_found and does not retry it", async () => {
    const detail =
      "No route for POST /reoclo/api/automation/v1/exec: the automation API lives under /api/automation/v1 (e.g. POST /api/automation/v1/exec).";
    const service = await httpServer((_req, res) =>
      res
        .writeHead(404, { "Content-Type": "application/json", "X-Request-Id": "req-404" })
        .end(JSON.stringify({ error: "route_not_found", detail, request_id: "req-404" })),
    );
    const t = client(`${service.url}/reoclo`);
    const err = await t.exec();
    expect(err).toMatchObject({ status: 404, code: "route_not_found", detail, requestId: "req-404" });
    expect(service.requests).toEqual(["POST /reoclo/api/automation/v1/exec"]);
  });
});

describe("bodyExcerpt", () => {
  it("keeps the words of a page: no head, script, style, tags or entities", () => {
    expect(bodyExcerpt(page("502 Bad Gateway", "<hr><center>nginx &amp; co</center>"))).toBe(
      "502 Bad Gateway nginx & co",
    );
  });

  it("cuts a long body to a short line and drops control characters", () => {
    const excerpt = bodyExcerpt(`${"word ".repeat(200)}\u0007\u001b[31m`);
    expect(excerpt.length).toBeLessThanOrEqual(120);
    expect(excerpt.endsWith("…")).toBe(true);
    expect(excerpt).not.toMatch(/\p{Cc}/u);
  });

  it("never repeats an automation key a server echoes back", () => {
    expect(bodyExcerpt(`{"headers":{"authorization":"Bearer ${KEY}"}}`)).toBe(
      '{"headers":{"authorization":"Bearer rca_***"}}',
    );
  });
});
