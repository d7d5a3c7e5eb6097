// The bundled checkout action, run as the GitHub runner runs it, against the real service, a
// real sshd host and a real git HTTP server (git http-backend) that requires the token. What is
// checked is what a user would see: outputs, the files on the host, and where the token is not.
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { dumpAllTables, startExecEnv, type ExecEnv } from "@reoclo/service/testing";
import { startGitServer, type GitServer } from "@reoclo/testbed/git-server";
import { actionDir, Workspace, type ActionRun } from "@reoclo/testbed/runner";
import { commandLines } from "@reoclo/testbed/process-tree";

/** git as the host user sees it, on the checkout the action made. */
const git = (dir: string, ...args: string[]) =>
  execFileSync("git", ["-c", `safe.directory=${dir}`, "-C", dir, ...args], { encoding: "utf8" }).trim();

let env: ExecEnv;
let gitServer: GitServer;
const workspaces: Workspace[] = [];
const dirs: string[] = [];

beforeAll(async () => {
  [env, gitServer] = await Promise.all([startExecEnv(), startGitServer()]);
});
afterAll(async () => {
  await Promise.all([env?.close(), gitServer?.close()]);
});
afterEach(() => {
  for (const w of workspaces.splice(0)) w.remove();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const newDir = () => {
  const d = `/tmp/reoclo-co-${randomBytes(4).toString("hex")}`;
  dirs.push(d);
  return `${d}/ws`;
};
const basic = () => Buffer.from(`x-access-token:${gitServer.token}`).toString("base64");

/** Runs main (sampling `ps` while it runs) and returns the step and what ps showed. */
async function checkout(inputs: Record<string, string>, w = newWorkspace()) {
  const step = w.start("main", {
    api_key: env.key,
    server_id: env.serverId,
    api_url: env.base.replace(/\/api\/automation\/v1$/, ""),
    github_server_url: gitServer.url,
    repository: "acme/app",
    token: gitServer.token,
    ...inputs,
  });
  const samples: string[] = [];
  let done = false;
  void step.exited.then(() => (done = true));
  while (!done) {
    samples.push(commandLines());
    await new Promise((r) => setTimeout(r, 20));
  }
  const code = await step.exited;
  // After every run: the token is in no process's arguments, not in the log (but the runner's
  // add-mask lines) and not in .git/config unless it was asked to persist there.
  const token = inputs.token ?? gitServer.token;
  expectNoToken(token, step, samples, inputs.persist_credentials === "true" ? undefined : inputs.path);
  return { step, samples, code, outputs: step.outputs() };
}
function newWorkspace() {
  const w = new Workspace(actionDir("checkout"));
  workspaces.push(w);
  return w;
}
function expectNoToken(token: string, step: ActionRun, samples: string[], dir: string | undefined) {
  const secrets = [token, Buffer.from(`x-access-token:${token}`).toString("base64")];
  for (const s of samples) for (const secret of secrets) expect(s).not.toContain(secret);
  const log = step.log();
  for (const secret of secrets)
    for (const line of log.split("\n").filter((l) => l.includes(secret)))
      expect(line).toBe(`::add-mask::${secret}`);
  if (dir !== undefined && existsSync(`${dir}/.git/config`)) {
    const config = readFileSync(`${dir}/.git/config`, "utf8");
    for (const secret of secrets) expect(config).not.toContain(secret);
    expect(config).not.toContain("extraheader");
  }
}

describe("the checkout action against a real git server", () => {
  it("checks out a branch at depth 1 in one operation, with the token nowhere it should not be", async () => {
    const dir = newDir();
    const { step, samples, code, outputs } = await checkout({ ref: "main", path: dir });
    expect(code, step.log()).toBe(0);
    const { mainSha } = gitServer.repos.app;
    expect(outputs).toEqual({
      commit_sha: mainSha,
      commit: mainSha,
      short_sha: mainSha.slice(0, 7),
      ref: "refs/heads/main",
      path: dir,
    });
    expect(git(dir, "rev-parse", "HEAD")).toBe(mainSha);
    expect(git(dir, "rev-list", "--count", "HEAD")).toBe("1");
    expect(git(dir, "branch", "--show-current")).toBe("main");
    expect(readFileSync(`${dir}/src/app.txt`, "utf8")).not.toBe("");
    // The sampling saw git at work, and never the token.
    expect(samples.some((s) => /git.*(fetch|remote-http|index-pack)/.test(s))).toBe(true);
    // One operation did it all.
    expect(step.log().match(/\[reoclo\] operation [0-9a-f-]{36}/g)).toHaveLength(1);
    expect(step.summary()).toContain(mainSha.slice(0, 12));
  });

  it("checks out a tag, and a commit SHA with the whole history", async () => {
    const { secondSha, firstSha, commitCount, mainSha } = gitServer.repos.app;
    const tagDir = newDir();
    const tag = await checkout({ ref: "v1.0", path: tagDir });
    expect(tag.code, tag.step.log()).toBe(0);
    expect(tag.outputs).toMatchObject({ commit_sha: secondSha, ref: "refs/tags/v1.0" });
    expect(git(tagDir, "rev-parse", "HEAD")).toBe(secondSha);

    const shaDir = newDir();
    const bySha = await checkout({ ref: firstSha, path: shaDir, depth: "0" });
    expect(bySha.code, bySha.step.log()).toBe(0);
    expect(bySha.outputs).toMatchObject({ commit_sha: firstSha, ref: firstSha });
    expect(git(shaDir, "rev-parse", "HEAD")).toBe(firstSha);

    const fullDir = newDir();
    const full = await checkout({ ref: "refs/heads/main", path: fullDir, depth: "0" });
    expect(full.code, full.step.log()).toBe(0);
    expect(git(fullDir, "rev-parse", "HEAD")).toBe(mainSha);
    expect(git(fullDir, "rev-list", "--count", "HEAD")).toBe(String(commitCount));
  });

  it("with clean false reuses the repository and keeps untracked files; with clean true starts afresh", async () => {
    const dir = newDir();
    expect((await checkout({ ref: "main", path: dir })).code).toBe(0);
    writeFileSync(`${dir}/untracked.txt`, "keep me");
    const reuse = await checkout({ ref: "feature", path: dir, clean: "false" });
    expect(reuse.code, reuse.step.log()).toBe(0);
    expect(reuse.step.log()).toContain(`reusing the repository in ${dir}`);
    expect(git(dir, "rev-parse", "HEAD")).toBe(gitServer.repos.app.featureSha);
    expect(existsSync(`${dir}/feature.txt`)).toBe(true);
    expect(readFileSync(`${dir}/untracked.txt`, "utf8")).toBe("keep me");

    // From a shallow checkout to the whole history, in the same repository.
    const deepen = await checkout({ ref: "main", path: dir, clean: "false", depth: "0" });
    expect(deepen.code, deepen.step.log()).toBe(0);
    expect(git(dir, "rev-list", "--count", "HEAD")).toBe(String(gitServer.repos.app.commitCount));

    const fresh = await checkout({ ref: "main", path: dir });
    expect(fresh.code, fresh.step.log()).toBe(0);
    expect(existsSync(`${dir}/untracked.txt`)).toBe(false);
  });

  it("checks out sparsely in cone and non-cone mode, and with submodules", async () => {
    const cone = newDir();
    const c = await checkout({ ref: "main", path: cone, sparse_checkout: "src\n" });
    expect(c.code, c.step.log()).toBe(0);
    expect(existsSync(`${cone}/src/nested/deep.txt`)).toBe(true);
    expect(existsSync(`${cone}/README.md`)).toBe(true); // cone mode keeps the top-level files
    expect(existsSync(`${cone}/docs/guide.md`)).toBe(false);

    const patterns = newDir();
    const p = await checkout({
      ref: "main",
      path: patterns,
      sparse_checkout: "/docs/guide.md\n",
      sparse_checkout_cone_mode: "false",
    });
    expect(p.code, p.step.log()).toBe(0);
    expect(existsSync(`${patterns}/docs/guide.md`)).toBe(true);
    expect(existsSync(`${patterns}/README.md`)).toBe(false);
    expect(existsSync(`${patterns}/src`)).toBe(false);

    const sub = newDir();
    const s = await checkout({ ref: "main", path: sub, submodules: "true" });
    expect(s.code, s.step.log()).toBe(0);
    expect(git(`${sub}/vendor/lib`, "rev-parse", "HEAD")).toBe(gitServer.repos.lib.sha);
    expect(existsSync(`${sub}/vendor/lib/lib.txt`)).toBe(true);
  });

  it("keeps the token in .git/config only when persist_credentials is true", async () => {
    const dir = newDir();
    const r = await checkout({ ref: "main", path: dir, persist_credentials: "true" });
    expect(r.code, r.step.log()).toBe(0);
    expect(readFileSync(`${dir}/.git/config`, "utf8")).toContain(
      `extraheader = AUTHORIZATION: basic ${basic()}`,
    );
    // A later checkout without it removes it again.
    const again = await checkout({ ref: "main", path: dir, clean: "false" });
    expect(again.code, again.step.log()).toBe(0);
    expect(readFileSync(`${dir}/.git/config`, "utf8")).not.toContain("extraheader");
  });

  it("refuses to remove the account's home directory with clean true", async () => {
    const home = execFileSync("getent", ["passwd", env.host.username], { encoding: "utf8" }).split(":")[5]!;
    const r = await checkout({ ref: "main", path: home });
    expect(r.code).toBe(2);
    expect(r.step.log()).toContain(`path ${home} holds this account's home directory`);
    expect(existsSync(`${home}/.profile`) || existsSync(home)).toBe(true);
  });

  it("fails with a clear message when the token cannot read the repository", async () => {
    const dir = newDir();
    const r = await checkout({ ref: "main", path: dir, token: "ghs_" + "w".repeat(36) });
    expect(r.code).not.toBe(0);
    expect(r.step.log()).toMatch(
      /::error title=Checkout of acme\/app@main failed.*check that the token can read the repository/s,
    );
    expect(Object.keys(r.outputs)).toEqual([]);
  });

  it("leaves the tokens of all these checkouts in no table: not the stored commands, output or audit log", async () => {
    const dump = await dumpAllTables(env.db);
    expect(dump.text).toContain("reoclo-checkout: checked out");
    expect(dump.text).toContain("reoclo-github-action-checkout"); // the audit rows are there
    for (const token of [gitServer.token, "ghs_" + "w".repeat(36)]) {
      expect(dump.text).not.toContain(token);
      expect(dump.text).not.toContain(Buffer.from(`x-access-token:${token}`).toString("base64"));
    }
  });

  it.each([
    ["path", "/tmp/reoclo-co-x; touch /tmp/reoclo-pwned-PID"],
    ["path", "/tmp/reoclo-co-$(touch /tmp/reoclo-pwned-PID)"],
    ["ref", "--upload-pack=touch /tmp/reoclo-pwned-PID"],
    ["ref", "$(touch /tmp/reoclo-pwned-PID)"],
    ["ref", "main`touch /tmp/reoclo-pwned-PID`"],
  ])("refuses a %s carrying a payload before anything runs: %s", async (input, payload) => {
    const marker = `/tmp/reoclo-pwned-${process.pid}`;
    const value = payload.replace("PID", String(process.pid));
    const before = gitServer.requests.length;
    const r = await checkout({ ref: "main", path: newDir(), [input]: value });
    expect(r.code).toBe(1);
    expect(r.step.log()).toMatch(new RegExp(`::error::Input "${input}"`));
    expect(r.step.log()).not.toContain("[reoclo] operation");
    expect(gitServer.requests.length).toBe(before);
    expect(existsSync(marker)).toBe(false);
  });
});
