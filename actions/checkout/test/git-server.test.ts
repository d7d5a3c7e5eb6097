// The git HTTP server fixture (@reoclo/testbed/git-server, packages/testbed/src/git-server.ts) checked with the real git CLI, as
// the checkout action will use it: the token goes in `http.extraheader` (on the command line,
// or through GIT_CONFIG_* so it reaches submodule fetches too), never in a URL.
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startGitServer, type GitServer } from "@reoclo/testbed/git-server";

interface GitResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

const basic = (token: string) => Buffer.from(`x-access-token:${token}`).toString("base64");
const extraHeader = (token: string) => `AUTHORIZATION: basic ${basic(token)}`;
/** The header as actions/checkout passes it: in the environment, so child gits inherit it. */
const headerEnv = (token: string) => ({
  GIT_CONFIG_COUNT: "1",
  GIT_CONFIG_KEY_0: "http.extraheader",
  GIT_CONFIG_VALUE_0: extraHeader(token),
});

let server: GitServer;
let home: string;
let dirs = 0;
/** A fresh empty directory under the temp HOME. */
const freshDir = () => {
  const dir = join(home, `w${++dirs}`);
  mkdirSync(dir);
  return dir;
};

/** Runs git asynchronously (the server lives in this process), isolated from the machine's config. */
function git(cwd: string, args: string[], env: Record<string, string> = {}): Promise<GitResult> {
  return new Promise((resolve) => {
    const child = spawn("git", args, {
      cwd,
      timeout: 20_000,
      stdio: ["ignore", "pipe", "pipe"],
      env: {
        PATH: process.env.PATH ?? "",
        HOME: home,
        GIT_CONFIG_NOSYSTEM: "1",
        GIT_TERMINAL_PROMPT: "0",
        ...env,
      },
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (c: Buffer) => (stdout += c.toString()));
    child.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
    child.on("error", (err) => resolve({ code: -1, stdout, stderr: stderr + String(err) }));
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}
/** Runs git and returns its trimmed stdout; fails with its stderr when it fails. */
async function ok(cwd: string, args: string[], env: Record<string, string> = {}): Promise<string> {
  const r = await git(cwd, args, env);
  if (r.code !== 0) throw new Error(`git ${args.join(" ")} exited ${r.code}:\n${r.stderr}`);
  return r.stdout.trim();
}
/** The requests the server saw while `fn` ran. */
async function requestsDuring<T>(
  fn: () => Promise<T>,
): Promise<{ result: T; requests: GitServer["requests"] }> {
  const from = server.requests.length;
  const result = await fn();
  return { result, requests: server.requests.slice(from) };
}
const appUrl = () => `${server.url}/acme/app.git`;

beforeAll(async () => {
  home = mkdtempSync(join(tmpdir(), "reoclo-git-client-"));
  server = await startGitServer();
});
afterAll(async () => {
  await server?.close();
  if (home) rmSync(home, { recursive: true, force: true });
});

describe("git server fixture", () => {
  it("describes its repositories with full SHAs", () => {
    const { app, lib } = server.repos;
    expect(app.path).toBe("acme/app");
    expect(lib.path).toBe("acme/lib");
    for (const sha of [app.mainSha, app.firstSha, app.secondSha, app.featureSha, lib.sha])
      expect(sha).toMatch(/^[0-9a-f]{40}$/);
    expect(new Set([app.mainSha, app.firstSha, app.secondSha, app.featureSha]).size).toBe(4);
    expect(app.commitCount).toBeGreaterThanOrEqual(3);
    expect(server.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
  });

  it("answers 401 with WWW-Authenticate without the token, and serves git with it (any username)", async () => {
    const path = "/acme/app.git/info/refs?service=git-upload-pack";
    const anonymous = await fetch(`${server.url}${path}`);
    expect(anonymous.status).toBe(401);
    expect(anonymous.headers.get("www-authenticate")).toBe('Basic realm="git"');
    await anonymous.body?.cancel();

    const wrong = await fetch(`${server.url}${path}`, {
      headers: { Authorization: `Basic ${basic("nope")}` },
    });
    expect(wrong.status).toBe(401);
    await wrong.body?.cancel();

    const anyUser = Buffer.from(`someone:${server.token}`).toString("base64");
    const res = await fetch(`${server.url}${path}`, { headers: { Authorization: `Basic ${anyUser}` } });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("application/x-git-upload-pack-advertisement");
    expect(await res.text()).toContain("# service=git-upload-pack");

    const missing = await fetch(`${server.url}/acme/nothing.git/info/refs?service=git-upload-pack`, {
      headers: { Authorization: `Basic ${basic(server.token)}` },
    });
    expect(missing.status).toBe(404); // the backend's own Status: header
    await missing.body?.cancel();
  });

  it("clones main with the token over protocol v2: full history and every file", async () => {
    const dir = freshDir();
    const { requests } = await requestsDuring(() =>
      ok(dir, [
        "-c",
        `http.extraheader=${extraHeader(server.token)}`,
        "-c",
        "protocol.version=2",
        "clone",
        appUrl(),
        "app",
      ]),
    );
    const app = join(dir, "app");
    expect(await ok(app, ["rev-parse", "HEAD"])).toBe(server.repos.app.mainSha);
    expect(await ok(app, ["symbolic-ref", "--short", "HEAD"])).toBe("main");
    expect(Number(await ok(app, ["rev-list", "--count", "HEAD"]))).toBe(server.repos.app.commitCount);
    expect((await ok(app, ["ls-tree", "-r", "--name-only", "HEAD"])).split("\n").sort()).toEqual([
      ".gitmodules",
      "README.md",
      "docs/guide.md",
      "other/x.txt",
      "src/app.txt",
      "src/nested/deep.txt",
      "vendor/lib",
    ]);
    expect(await ok(app, ["ls-tree", "HEAD", "vendor/lib"])).toBe(
      `160000 commit ${server.repos.lib.sha}\tvendor/lib`,
    );
    expect(await ok(app, ["config", "-f", ".gitmodules", "submodule.vendor/lib.url"])).toBe("../lib.git");
    expect(existsSync(join(app, "vendor/lib/lib.txt"))).toBe(false); // not without submodule update
    expect(requests.length).toBeGreaterThanOrEqual(2);
    expect(requests.every((r) => r.authorized)).toBe(true);
    expect(requests.some((r) => r.method === "POST" && r.path === "/acme/app.git/git-upload-pack")).toBe(
      true,
    );
  });

  it("speaks protocol v2 (the Git-Protocol header reaches the backend)", async () => {
    const r = await git(
      home,
      [
        "-c",
        `http.extraheader=${extraHeader(server.token)}`,
        "-c",
        "protocol.version=2",
        "ls-remote",
        appUrl(),
      ],
      { GIT_TRACE_PACKET: "1" },
    );
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/< version 2$/m);
    expect(r.stderr).toMatch(/< ls-refs/);
    const { app } = server.repos;
    expect(r.stdout).toContain(`${app.mainSha}\tHEAD\n`);
    expect(r.stdout).toContain(`${app.featureSha}\trefs/heads/feature\n`);
    expect(r.stdout).toContain(`${app.secondSha}\trefs/tags/v1.0^{}\n`);
  });

  it("fetches feature, the tag v1.0 and, by SHA, commits no ref points to, at depth 1", async () => {
    const repo = freshDir();
    const { app } = server.repos;
    await ok(repo, ["init", "-q"]);
    await ok(repo, ["remote", "add", "origin", appUrl()]);
    const auth = ["-c", `http.extraheader=${extraHeader(server.token)}`];

    await ok(repo, [
      ...auth,
      "fetch",
      "--depth",
      "1",
      "origin",
      "+refs/heads/feature:refs/remotes/origin/feature",
    ]);
    expect(await ok(repo, ["rev-parse", "refs/remotes/origin/feature"])).toBe(app.featureSha);
    expect(await ok(repo, ["rev-list", "--count", "refs/remotes/origin/feature"])).toBe("1");
    expect(await ok(repo, ["rev-parse", "--is-shallow-repository"])).toBe("true");

    expect(await ok(repo, ["ls-tree", "--name-only", "refs/remotes/origin/feature"])).toBe(
      [".gitmodules", "README.md", "docs", "feature.txt", "other", "src", "vendor"].join("\n"),
    );
    expect(await ok(repo, ["ls-tree", "refs/remotes/origin/feature", "vendor/lib"])).toBe(
      `160000 commit ${server.repos.lib.sha}\tvendor/lib`,
    );

    await ok(repo, [...auth, "fetch", "--depth", "1", "origin", "+refs/tags/v1.0:refs/tags/v1.0"]);
    expect(await ok(repo, ["rev-parse", "v1.0^{commit}"])).toBe(app.secondSha);

    // By SHA over protocol v2 and over v0 (which needs uploadpack.allowReachableSHA1InWant).
    for (const [sha, version] of [
      [app.secondSha, "2"],
      [app.firstSha, "0"],
    ] as const) {
      await ok(repo, [...auth, "-c", `protocol.version=${version}`, "fetch", "--depth", "1", "origin", sha]);
      expect(await ok(repo, ["rev-parse", "FETCH_HEAD"])).toBe(sha);
      expect(await ok(repo, ["rev-list", "--count", "FETCH_HEAD"])).toBe("1");
    }
    await ok(repo, ["checkout", "-q", "--detach", app.secondSha]);
    expect(readFileSync(join(repo, "docs/guide.md"), "utf8")).toBe("# guide\n");
    expect(existsSync(join(repo, ".gitmodules"))).toBe(false);
  });

  it("submodule update --init fetches vendor/lib from the same server with the header from GIT_CONFIG_*", async () => {
    const dir = freshDir();
    const env = headerEnv(server.token);
    await ok(dir, ["clone", "-q", appUrl(), "app"], env);
    const app = join(dir, "app");
    const { requests } = await requestsDuring(() => ok(app, ["submodule", "update", "--init"], env));
    expect(await ok(join(app, "vendor/lib"), ["rev-parse", "HEAD"])).toBe(server.repos.lib.sha);
    expect(readFileSync(join(app, "vendor/lib/lib.txt"), "utf8")).toBe("the library\n");
    expect(requests.filter((r) => r.path.startsWith("/acme/lib.git/")).length).toBeGreaterThan(0);
    expect(requests.every((r) => r.authorized)).toBe(true);

    // Without the header the submodule fetch is refused, so the header is what carried it.
    const bare = freshDir();
    await ok(bare, ["clone", "-q", appUrl(), "app"], env);
    const denied = await git(join(bare, "app"), ["submodule", "update", "--init"]);
    expect(denied.code).not.toBe(0);
    expect(denied.stderr).toMatch(/terminal prompts disabled/);
  });

  it("fetches with a gzip-compressed request body (many haves)", async () => {
    const dir = freshDir();
    const auth = ["-c", `http.extraheader=${extraHeader(server.token)}`];
    await ok(dir, [...auth, "clone", "-q", "--single-branch", "-b", "main", appUrl(), "app"]);
    const app = join(dir, "app");
    // 60 local commits, made in one process, so the negotiation sends more than 1 KiB of haves.
    const stream = Array.from(
      { length: 60 },
      (_, i) =>
        `commit refs/heads/local\ncommitter L <l@example.com> ${1_700_100_000 + i} +0000\ndata 8\nlocal${String(i).padStart(2, "0")}\n` +
        (i === 0 ? `from ${server.repos.app.mainSha}\n` : "") +
        "\n",
    ).join("");
    await new Promise<void>((resolve, reject) => {
      const child = spawn("git", ["fast-import", "--quiet"], {
        cwd: app,
        stdio: ["pipe", "ignore", "pipe"],
        env: { PATH: process.env.PATH ?? "", HOME: home, GIT_CONFIG_NOSYSTEM: "1" },
      });
      let stderr = "";
      child.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
      child.on("error", reject);
      child.on("close", (code) => (code === 0 ? resolve() : reject(new Error(`fast-import: ${stderr}`))));
      child.stdin.end(stream);
    });
    const r = await git(app, [...auth, "fetch", "origin", "feature"], {
      GIT_TRACE_CURL: "1",
      GIT_TRACE_CURL_NO_DATA: "1",
    });
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/=> Send header: Content-Encoding: gzip/);
    expect(await ok(app, ["rev-parse", "FETCH_HEAD"])).toBe(server.repos.app.featureSha);
  });

  it("refuses a wrong token: git fails with an authentication error, without a prompt", async () => {
    const dir = freshDir();
    const { result, requests } = await requestsDuring(() =>
      git(dir, ["-c", `http.extraheader=${extraHeader("ghs_wrong")}`, "clone", appUrl(), "app"]),
    );
    expect(result.code).toBe(128);
    // The header is not a credential git knows about: on 401 it asks for one, and with
    // GIT_TERMINAL_PROMPT=0 (and no credential helper) that is where it stops.
    expect(result.stderr).toMatch(
      /fatal: could not read Username for 'http:\/\/127\.0\.0\.1:\d+': terminal prompts disabled/,
    );
    expect(existsSync(join(dir, "app"))).toBe(false);
    expect(requests).toEqual([
      { method: "GET", path: "/acme/app.git/info/refs?service=git-upload-pack", authorized: false },
    ]);

    // With the credentials in the URL git knows they were refused, and says so.
    const url = new URL(appUrl());
    url.username = "x-access-token";
    url.password = "ghs_wrong";
    const inUrl = await git(dir, ["clone", url.href, "app2"]);
    expect(inUrl.code).toBe(128);
    expect(inUrl.stderr).toMatch(
      /fatal: Authentication failed for 'http:\/\/127\.0\.0\.1:\d+\/acme\/app\.git\/'/,
    );
    expect(inUrl.stderr).not.toContain("ghs_wrong");
  });

  it("records authorized and unauthorized requests, never the token or the Authorization header", async () => {
    await ok(home, ["-c", `http.extraheader=${extraHeader(server.token)}`, "ls-remote", appUrl()]);
    await git(home, ["ls-remote", appUrl()]);
    const { requests } = server;
    expect(requests.some((r) => r.authorized)).toBe(true);
    expect(requests.some((r) => !r.authorized)).toBe(true);
    for (const r of requests) expect(Object.keys(r).sort()).toEqual(["authorized", "method", "path"]);
    const recorded = JSON.stringify(requests);
    expect(recorded).not.toContain(server.token);
    expect(recorded).not.toContain(basic(server.token));
    expect(recorded.toLowerCase()).not.toContain("basic");
  });

  it("accepts a chosen token and stops listening on close", async () => {
    const other = await startGitServer({ token: "chosen-token" });
    try {
      expect(other.token).toBe("chosen-token");
      expect(
        await ok(home, [
          "-c",
          `http.extraheader=${extraHeader("chosen-token")}`,
          "ls-remote",
          `${other.url}/acme/lib.git`,
        ]),
      ).toBe(`${other.repos.lib.sha}\tHEAD\n${other.repos.lib.sha}\trefs/heads/main`);
    } finally {
      await other.close();
    }
    await expect(fetch(`${other.url}/acme/lib.git/info/refs`)).rejects.toThrow();
    await other.close(); // twice is fine
  });
});
