// A real git HTTP server on loopback for the checkout tests: a Node HTTP server that runs the
// real `git http-backend` as a CGI for every request, behind the Basic authentication GitHub
// uses for tokens (`x-access-token:<token>`; a wrong or missing token gets 401 with
// `WWW-Authenticate`). The fixture repositories are built with the real git CLI when the
// server starts; nothing is mocked.
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";

/** Facts about the fixture repositories, as full 40-hex SHAs. */
export interface FixtureRepos {
  /**
   * `acme/app`: default branch `main` with `commitCount` commits (first: README.md,
   * src/app.txt, src/nested/deep.txt; second, tagged `v1.0` (annotated): docs/guide.md,
   * other/x.txt; third: the submodule `vendor/lib` at the relative url `../lib.git`), and a
   * branch `feature` with one more commit adding feature.txt.
   */
  readonly app: {
    readonly path: "acme/app";
    readonly mainSha: string;
    readonly firstSha: string;
    /** The commit the annotated tag `v1.0` points to. */
    readonly secondSha: string;
    readonly featureSha: string;
    /** Commits on main. */
    readonly commitCount: number;
  };
  /** `acme/lib`: one commit on `main` with lib.txt; the submodule of app. */
  readonly lib: { readonly path: "acme/lib"; readonly sha: string };
}

export interface GitServer {
  /** e.g. http://127.0.0.1:PORT (no trailing slash); a repository is `${url}/acme/app.git`. */
  readonly url: string;
  /** The only token accepted, as the password of Basic authentication (any username). */
  readonly token: string;
  /** Every request in arrival order; `path` is the request target (path and query). */
  readonly requests: { method: string; path: string; authorized: boolean }[];
  /** The fixture repositories, created when the server started. */
  readonly repos: FixtureRepos;
  /** Stops the server, kills running backends and removes the temp root. */
  close(): Promise<void>;
}

/** Git run with no machine or user config, a fixed identity and (when given) fixed dates. */
function makeGit(home: string) {
  let tick = 0;
  return (cwd: string, args: string[], opts: { dated?: boolean } = {}): string => {
    const date = opts.dated ? `${1_700_000_000 + 60 * ++tick} +0000` : undefined;
    return execFileSync(
      "git",
      ["-c", "user.name=Fixture Author", "-c", "user.email=fixture@example.com", ...args],
      {
        cwd,
        encoding: "utf8",
        stdio: ["ignore", "pipe", "pipe"],
        env: {
          PATH: process.env.PATH ?? "",
          HOME: home,
          GIT_CONFIG_NOSYSTEM: "1",
          ...(date ? { GIT_AUTHOR_DATE: date, GIT_COMMITTER_DATE: date } : {}),
        },
      },
    ).trim();
  };
}

function writeFiles(dir: string, files: Record<string, string>): void {
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, name)), { recursive: true });
    writeFileSync(join(dir, name), text);
  }
}

/** Directories 0755, files readable by all, whatever the umask. */
function makeWorldReadable(path: string): void {
  const st = statSync(path);
  if (st.isDirectory()) {
    chmodSync(path, 0o755);
    for (const entry of readdirSync(path)) makeWorldReadable(join(path, entry));
  } else {
    chmodSync(path, (st.mode & 0o777) | 0o444);
  }
}

/** Builds acme/lib.git and acme/app.git under `projectRoot` from working copies in `work`. */
function createFixtureRepos(projectRoot: string, work: string, home: string): FixtureRepos {
  const git = makeGit(home);
  const bare = (name: string) => {
    const path = join(projectRoot, `${name}.git`);
    mkdirSync(path, { recursive: true });
    git(path, ["init", "-q", "--bare", "-b", "main"]);
    // Fetching a commit by SHA that no ref points to (checkout of a SHA, depth 1), and
    // partial clones (the `filter` input).
    git(path, ["config", "uploadpack.allowReachableSHA1InWant", "true"]);
    git(path, ["config", "uploadpack.allowAnySHA1InWant", "true"]);
    git(path, ["config", "uploadpack.allowFilter", "true"]);
    return path;
  };

  const libWork = join(work, "lib");
  mkdirSync(libWork, { recursive: true });
  git(libWork, ["init", "-q", "-b", "main"]);
  writeFiles(libWork, { "lib.txt": "the library\n" });
  git(libWork, ["add", "-A"]);
  git(libWork, ["commit", "-q", "-m", "lib: first commit"], { dated: true });
  const libSha = git(libWork, ["rev-parse", "HEAD"]);
  git(libWork, ["push", "-q", bare("acme/lib"), "main"]);

  const appWork = join(work, "app");
  mkdirSync(appWork, { recursive: true });
  git(appWork, ["init", "-q", "-b", "main"]);
  writeFiles(appWork, {
    "README.md": "# app\n",
    "src/app.txt": "app v1\n",
    "src/nested/deep.txt": "deep\n",
  });
  git(appWork, ["add", "-A"]);
  git(appWork, ["commit", "-q", "-m", "app: first commit"], { dated: true });
  const firstSha = git(appWork, ["rev-parse", "HEAD"]);

  writeFiles(appWork, { "docs/guide.md": "# guide\n", "other/x.txt": "x\n" });
  git(appWork, ["add", "-A"]);
  git(appWork, ["commit", "-q", "-m", "app: docs and other"], { dated: true });
  const secondSha = git(appWork, ["rev-parse", "HEAD"]);
  git(appWork, ["tag", "-a", "v1.0", "-m", "release 1.0"], { dated: true });

  // The submodule as `git submodule add` records it: .gitmodules and a gitlink, with a url
  // relative to the superproject's, so it is fetched from this server with the same auth.
  writeFiles(appWork, { "README.md": "# app\n\nNow with vendor/lib.\n" });
  git(appWork, ["config", "-f", ".gitmodules", "submodule.vendor/lib.path", "vendor/lib"]);
  git(appWork, ["config", "-f", ".gitmodules", "submodule.vendor/lib.url", "../lib.git"]);
  git(appWork, ["add", "-A"]);
  // After `add -A`, which would stage the gitlink's removal (vendor/lib is not checked out here).
  git(appWork, ["update-index", "--add", "--cacheinfo", `160000,${libSha},vendor/lib`]);
  git(appWork, ["commit", "-q", "-m", "app: add vendor/lib"], { dated: true });
  const mainSha = git(appWork, ["rev-parse", "HEAD"]);

  git(appWork, ["switch", "-q", "-c", "feature"]);
  writeFiles(appWork, { "feature.txt": "feature\n" });
  git(appWork, ["add", "feature.txt"]); // not -A: that would drop the gitlink again
  git(appWork, ["commit", "-q", "-m", "feature: add feature.txt"], { dated: true });
  const featureSha = git(appWork, ["rev-parse", "HEAD"]);

  git(appWork, ["push", "-q", bare("acme/app"), "main", "feature", "refs/tags/v1.0"]);
  const commitCount = Number(git(appWork, ["rev-list", "--count", "main"]));

  return {
    app: { path: "acme/app", mainSha, firstSha, secondSha, featureSha, commitCount },
    lib: { path: "acme/lib", sha: libSha },
  };
}

/** The Basic credentials of a request, or undefined. */
function basicCredentials(header: string | undefined): { user: string; password: string } | undefined {
  const m = /^basic\s+(\S+)\s*$/i.exec(header ?? "");
  if (!m?.[1]) return undefined;
  const decoded = Buffer.from(m[1], "base64").toString("utf8");
  const colon = decoded.indexOf(":");
  if (colon < 0) return undefined;
  return { user: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}

/** Splits a CGI response at the blank line after its headers; undefined until it has arrived. */
function splitCgiHead(
  buf: Buffer,
): { status: number; headers: Record<string, string[]>; rest: Buffer } | undefined {
  const text = buf.toString("latin1");
  const m = /\r?\n\r?\n/.exec(text);
  if (!m) return undefined;
  let status = 200;
  const headers: Record<string, string[]> = {};
  for (const line of text.slice(0, m.index).split(/\r?\n/)) {
    const colon = line.indexOf(":");
    if (colon <= 0) continue;
    const name = line.slice(0, colon).trim();
    const value = line.slice(colon + 1).trim();
    if (name.toLowerCase() === "status") status = Number.parseInt(value, 10) || 500;
    else (headers[name] ??= []).push(value);
  }
  return { status, headers, rest: buf.subarray(m.index + m[0].length) };
}

export async function startGitServer(opts: { token?: string } = {}): Promise<GitServer> {
  // Shaped like a GitHub installation token, so output redaction treats it as one.
  const token = opts.token ?? `ghs_${randomBytes(27).toString("base64url").replace(/[-_]/g, "0")}`;
  const base = mkdtempSync(join(tmpdir(), "reoclo-git-server-"));
  const projectRoot = join(base, "repos");
  const home = join(base, "home");
  let repos: FixtureRepos;
  try {
    mkdirSync(projectRoot);
    mkdirSync(home);
    repos = createFixtureRepos(projectRoot, join(base, "work"), home);
    rmSync(join(base, "work"), { recursive: true, force: true });
    makeWorldReadable(base);
  } catch (err) {
    rmSync(base, { recursive: true, force: true });
    throw err;
  }

  const requests: GitServer["requests"] = [];
  const backends = new Set<ChildProcess>();

  const fail = (res: ServerResponse, status: number, text: string) => {
    if (res.headersSent) return void res.destroy();
    res.writeHead(status, { "Content-Type": "text/plain; charset=utf-8" });
    res.end(text);
  };

  const runBackend = (req: IncomingMessage, res: ServerResponse, user: string) => {
    const target = new URL(req.url ?? "/", "http://127.0.0.1");
    let pathInfo: string;
    try {
      pathInfo = decodeURIComponent(target.pathname);
    } catch {
      req.resume();
      return fail(res, 400, "bad path\n");
    }
    const header = (name: string) => {
      const v = req.headers[name];
      return Array.isArray(v) ? v.join(", ") : v;
    };
    const cgiEnv: Record<string, string | undefined> = {
      PATH: process.env.PATH ?? "",
      HOME: home,
      GIT_CONFIG_NOSYSTEM: "1",
      GIT_PROJECT_ROOT: projectRoot,
      GIT_HTTP_EXPORT_ALL: "1",
      GATEWAY_INTERFACE: "CGI/1.1",
      SERVER_PROTOCOL: `HTTP/${req.httpVersion}`,
      REQUEST_METHOD: req.method ?? "GET",
      PATH_INFO: pathInfo,
      QUERY_STRING: target.search.replace(/^\?/, ""),
      CONTENT_TYPE: header("content-type"),
      CONTENT_LENGTH: header("content-length"),
      HTTP_CONTENT_ENCODING: header("content-encoding"),
      GIT_PROTOCOL: header("git-protocol"),
      REMOTE_USER: user,
      REMOTE_ADDR: req.socket.remoteAddress ?? "127.0.0.1",
    };
    const env = Object.fromEntries(
      Object.entries(cgiEnv).filter((e): e is [string, string] => e[1] !== undefined),
    );

    const child = spawn("git", ["http-backend"], { env, stdio: ["pipe", "pipe", "pipe"] });
    backends.add(child);
    let stderr = "";
    let head: Buffer = Buffer.alloc(0);
    let answered = false;
    child.stderr.on("data", (c: Buffer) => {
      if (stderr.length < 16_384) stderr += c.toString();
    });
    child.on("error", (err) => {
      backends.delete(child);
      if (!answered) fail(res, 502, `git http-backend: ${err.message}\n`);
    });
    child.on("close", (code, signal) => {
      backends.delete(child);
      if (!answered)
        fail(res, 502, `git http-backend ended (${signal ?? code}) before its headers:\n${stderr}`);
    });
    child.stdin.on("error", () => {}); // EPIPE when the backend does not read the whole body
    req.on("error", () => child.kill("SIGKILL"));
    req.pipe(child.stdin);
    res.on("close", () => {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    });

    const onHead = (chunk: Buffer) => {
      head = Buffer.concat([head, chunk]);
      const parsed = splitCgiHead(head);
      if (!parsed) return;
      answered = true;
      child.stdout.off("data", onHead);
      child.stdout.pause();
      res.writeHead(parsed.status, parsed.headers);
      if (parsed.rest.length > 0) res.write(parsed.rest);
      child.stdout.pipe(res);
    };
    child.stdout.on("data", onHead);
  };

  const server: Server = createServer((req, res) => {
    try {
      const creds = basicCredentials(req.headers.authorization);
      const authorized = creds !== undefined && creds.password === token;
      requests.push({ method: req.method ?? "", path: req.url ?? "", authorized });
      if (!creds || !authorized) {
        req.resume();
        res.writeHead(401, {
          "WWW-Authenticate": 'Basic realm="git"',
          "Content-Type": "text/plain; charset=utf-8",
        });
        return void res.end("Authentication required\n");
      }
      runBackend(req, res, creds.user || "x-access-token");
    } catch (err) {
      fail(res, 500, `${String(err)}\n`);
    }
  });
  server.on("clientError", (_err, socket) => socket.destroy());
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      server.off("error", reject);
      resolve();
    });
  });
  server.on("error", () => {}); // nothing after listen may crash the test process
  const { port } = server.address() as AddressInfo;

  let closed: Promise<void> | undefined;
  return {
    url: `http://127.0.0.1:${port}`,
    token,
    requests,
    repos,
    close: () =>
      (closed ??= new Promise<void>((resolve) => {
        for (const child of backends) child.kill("SIGKILL");
        server.closeAllConnections();
        server.close(() => {
          rmSync(base, { recursive: true, force: true, maxRetries: 3 });
          resolve();
        });
      })),
  };
}
