// The run action with an api_url that does not lead to the service (issue 14): a closed port, a
// server that is something else, a path prefix the service does not have. Run from source (the
// shared packages as they are now; the committed bundle is rebuilt from the same source), as the
// runner runs a step: INPUT_* variables, state and outputs files, the post step after main.
import { writeFileSync } from "node:fs";
import type { Server } from "node:http";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { startExecEnv, type ExecEnv } from "@reoclo/service/testing";
import { actionDir, Workspace } from "@reoclo/testbed/runner";
import { answeringServer, freePort } from "@reoclo/testbed/net";

const KEY = "rca_testkeytestkeytestkeytestkey123456";
const SERVER_ID = "6f1c2d3e-0000-4000-8000-000000000001";
/** The most retries ACTION_RETRY allows (8 attempts). */
const MAX_RETRIES = 7;

const workspaces: Workspace[] = [];
const servers: Server[] = [];
afterEach(async () => {
  for (const w of workspaces.splice(0)) w.remove();
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

const workspace = () => {
  const w = new Workspace(actionDir("run"), "source");
  workspaces.push(w);
  return w;
};

/** An answering server (@reoclo/testbed/net), closed after each test. */
async function httpServer(answer: Parameters<typeof answeringServer>[0], port = 0) {
  const s = await answeringServer(answer, port);
  servers.push(s.server);
  return s;
}

const retriesLogged = (log: string) => log.match(/^\[reoclo\] POST \/exec: .*; retry \d+ of/gm) ?? [];
const delaysLogged = (log: string) =>
  [...log.matchAll(/^\[reoclo\] POST \/exec: .*; retry \d+ of \d+ in (\d+) ms$/gm)].map((m) => Number(m[1]));

describe("the run action with an api_url where nothing listens", () => {
  it("fails after a few quick attempts naming api_url, and its post step neither looks up nor warns", async () => {
    const port = await freePort();
    const apiUrl = `http://127.0.0.1:${port}`;
    const inputs = { api_key: KEY, server_id: SERVER_ID, command: "echo hi", api_url: apiUrl };
    const w = workspace();
    const main = w.start("main", inputs);
    expect(await main.exited).toBe(1);
    const log = main.log();
    expect(log).toMatch(
      new RegExp(
        `^::error::Could not reach the Reoclo API at ${apiUrl} after \\d+ attempts: the connection to 127\\.0\\.0\\.1:${port} was refused on every attempt \\(ECONNREFUSED\\).*check the API URL \\(api_url\\)`,
        "m",
      ),
    );
    // A bound on attempts, and on the waits the client announced (not on a clock).
    expect(retriesLogged(log).length).toBeGreaterThan(0);
    expect(retriesLogged(log).length).toBeLessThanOrEqual(MAX_RETRIES);
    expect(delaysLogged(log)).toHaveLength(retriesLogged(log).length);
    expect(delaysLogged(log).reduce((a, b) => a + b, 0)).toBeLessThanOrEqual(5_000);
    expect(w.state()).toMatchObject({ nothing_sent: "true" });
    expect(w.state().operation_id).toBeUndefined();

    // Something listens there now: the post step must not ask it about an operation.
    const later = await httpServer((_req, res) => res.writeHead(500).end(), port);
    const post = w.start("post", inputs);
    expect(await post.exited).toBe(0);
    expect(post.log()).toContain(
      "[reoclo] nothing left running: no request of the main step reached the service",
    );
    expect(post.log()).not.toMatch(/::warning::|operation/i);
    expect(later.requests).toEqual([]);
  });

  it("has the post step stay silent when main recorded that nothing was sent", async () => {
    const counting = await httpServer((_req, res) => res.writeHead(500).end());
    const w = workspace();
    // What a main step whose every request was refused leaves in the state file.
    const state = (name: string, value: string) => `${name}<<EOF_${name}\n${value}\nEOF_${name}\n`;
    writeFileSync(w.files.state, state("idempotency_key", "reoclo-run-abc") + state("nothing_sent", "true"));
    const post = w.start("post", {
      api_key: KEY,
      server_id: SERVER_ID,
      command: "unused",
      api_url: counting.url,
    });
    expect(await post.exited).toBe(0);
    expect(post.log()).toContain("nothing left running: no request of the main step reached the service");
    expect(post.log()).not.toContain("::warning::");
    expect(counting.requests).toEqual([]);
  });
});

describe("the run action with an api_url that is not a Reoclo service", () => {
  const page = (title: string) =>
    `<!DOCTYPE html><html><head><title>${title}</title><style>body{font:serif}</style></head>` +
    `<body><h1>${title}</h1><p>Unsupported method ('POST').</p>` +
    `<script>var tracking = "${"x".repeat(5000)}END-OF-PAGE";</script></body></html>`;

  it("fails at the first answer of a web server, saying so with a short excerpt, never the page", async () => {
    const site = await httpServer((_req, res) =>
      res.writeHead(501, { "Content-Type": "text/html; charset=utf-8" }).end(page("Not Implemented")),
    );
    const w = workspace();
    const main = w.start("main", {
      api_key: KEY,
      server_id: SERVER_ID,
      command: "echo hi",
      api_url: site.url,
    });
    expect(await main.exited).toBe(1);
    const log = main.log();
    expect(log).toContain(
      `The server at ${site.url} did not answer like a Reoclo service (HTTP 501, text/html): "Not Implemented Unsupported method ('POST')."`,
    );
    expect(log).not.toContain("END-OF-PAGE");
    expect(log).not.toContain("<html");
    expect(site.requests).toEqual(["POST /api/automation/v1/exec"]);
    expect(retriesLogged(log)).toEqual([]);
  });

  it("gives a proxy's 502 page a few brief retries only", async () => {
    const proxy = await httpServer((_req, res) =>
      res.writeHead(502, { "Content-Type": "text/html" }).end(page("502 Bad Gateway")),
    );
    const w = workspace();
    const main = w.start("main", {
      api_key: KEY,
      server_id: SERVER_ID,
      command: "echo hi",
      api_url: proxy.url,
    });
    expect(await main.exited).toBe(1);
    expect(main.log()).toContain(
      `did not answer like a Reoclo service (HTTP 502, text/html; a proxy there may not reach the service)`,
    );
    expect(proxy.requests.length).toBeGreaterThan(1);
    expect(proxy.requests.length).toBeLessThanOrEqual(4);
    expect(delaysLogged(main.log())).toHaveLength(proxy.requests.length - 1);
    expect(delaysLogged(main.log()).every((d) => d <= 2_000)).toBe(true);
  });
});

describe("the run action with a path prefix the service does not have", () => {
  let env: ExecEnv;
  beforeAll(async () => {
    env = await startExecEnv();
  });
  afterAll(async () => {
    await env?.close();
  });

  it("is told the route does not exist, not that the server is unknown", async () => {
    const origin = env.base.replace(/\/api\/automation\/v1$/, "");
    const w = workspace();
    const main = w.start("main", {
      api_key: env.key,
      server_id: env.serverId,
      command: "echo hi",
      api_url: `${origin}/reoclo`,
    });
    expect(await main.exited).toBe(1);
    const log = main.log();
    expect(log).toMatch(
      /::error::The Reoclo API refused the command: route_not_found \(HTTP 404\): No route for POST \/reoclo\/api\/automation\/v1\/exec: the automation API lives under \/api\/automation\/v1/,
    );
    expect(log).not.toContain("check the `server_id` input");
    expect(retriesLogged(log)).toEqual([]);
  });
});
