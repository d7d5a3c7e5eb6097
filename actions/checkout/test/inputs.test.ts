import { describe, expect, it } from "vitest";
import { readSettings } from "../src/inputs";
import { parseRef } from "../src/refs";
import { checkoutEnv } from "../src/script";

const SERVER = "8c1f3f0e-58a4-4d1c-9a51-6f1f8d6f1a11";
const SHA = "0123456789abcdef0123456789abcdef01234567";
const inputs = (over: Record<string, string> = {}) => {
  const all: Record<string, string> = {
    api_key: "rca_x",
    server_id: SERVER,
    api_url: "https://r.example.com",
    repository: "acme/web",
    token: "ghs_exampletoken1234567890",
    ...over,
  };
  return (name: string) => all[name] ?? "";
};
const GH = {
  GITHUB_REPOSITORY: "acme/web",
  GITHUB_SHA: SHA,
  GITHUB_REF: "refs/heads/main",
  GITHUB_RUN_ID: "7",
};

describe("checkout inputs", () => {
  it("takes the job's OIDC token instead of api_key when the job may request one (issue 18)", () => {
    const oidc = {
      ...GH,
      ACTIONS_ID_TOKEN_REQUEST_URL: "http://127.0.0.1:1/t?v=1",
      ACTIONS_ID_TOKEN_REQUEST_TOKEN: "t",
    };
    expect(readSettings(inputs(), oidc).auth).toEqual({ kind: "api_key", apiKey: "rca_x" });
    expect(readSettings(inputs({ api_key: "", audience: "reoclo" }), oidc).auth).toEqual({
      kind: "oidc",
      audience: "reoclo",
    });
    expect(() => readSettings(inputs({ api_key: "" }), GH)).toThrow(/`permissions: id-token: write`/);
  });

  it("defaults to the triggering commit of this repository, with its ref as the ref output", () => {
    const s = readSettings(inputs(), GH);
    expect(s.target).toEqual({ kind: "sha", sha: SHA });
    expect(s.triggerRef).toBe("refs/heads/main");
    expect(s).toMatchObject({
      path: "/opt/deploy/workspace",
      depth: 1,
      clean: true,
      persistCredentials: false,
      repositoryUrl: "https://github.com/acme/web.git",
    });
    expect(readSettings(inputs({ repository: "acme/other" }), GH).target).toEqual({ kind: "default" });
  });

  it("reads branches, tags, full refs and SHAs", () => {
    expect(parseRef("main")).toEqual({ kind: "name", name: "main" });
    expect(parseRef("refs/heads/release/1.x")).toEqual({ kind: "branch", name: "release/1.x" });
    expect(parseRef("refs/tags/v1.0")).toEqual({ kind: "tag", name: "v1.0" });
    expect(parseRef("refs/pull/12/merge")).toEqual({ kind: "ref", ref: "refs/pull/12/merge" });
    expect(parseRef(SHA.toUpperCase())).toEqual({ kind: "sha", sha: SHA });
  });

  it.each([
    ["--upload-pack=touch /tmp/x", "starts with '-'"],
    ["$(id)", "shell character"],
    ["main;id", "shell character"],
    ["`id`", "shell character"],
    ["a..b", "'..'"],
    ["x@{1}", "shell character"],
    ["refs/heads/.hidden", "starting with '.'"],
    ["topic.lock", "'.lock'"],
    ["main\nid", "contains"],
  ])("refuses the ref %j, naming the input", (ref, why) => {
    expect(() => readSettings(inputs({ ref }), GH)).toThrow(/^Input "ref"/);
    expect(() => readSettings(inputs({ ref }), GH)).toThrow(why);
  });

  it.each([
    ["relative/dir", "absolute"],
    ["/srv/app/../../etc", '".."'],
    ["/srv/./app", '"."'],
    ["/", "system directory"],
    ["/etc", "system directory"],
    ["/srv/a\nb", "control characters"],
    ["-rf", "absolute"],
    ["/srv/x; touch /tmp/pwned", "shell characters"],
    ["/srv/$(id)", "shell characters"],
  ])("refuses the path %j", (path, why) => {
    expect(() => readSettings(inputs({ path }), GH)).toThrow(/^Input "path"/);
    expect(() => readSettings(inputs({ path }), GH)).toThrow(why);
  });

  it("refuses repositories, filters and options that are not what they claim", () => {
    expect(() => readSettings(inputs({ repository: "acme" }), GH)).toThrow(/"repository"/);
    expect(() => readSettings(inputs({ repository: "-x/y" }), GH)).toThrow(/"repository"/);
    expect(() => readSettings(inputs({ repository: "acme/../x" }), GH)).toThrow(/"repository"/);
    expect(() => readSettings(inputs({ filter: "blob:none --upload-pack=x" }), GH)).toThrow(/"filter"/);
    expect(() => readSettings(inputs({ submodules: "yes" }), GH)).toThrow(/"submodules"/);
    expect(() => readSettings(inputs({ depth: "-1" }), GH)).toThrow(/"depth"/);
    expect(() => readSettings(inputs({ clean: "maybe" }), GH)).toThrow(/"clean"/);
    expect(() => readSettings(inputs({ github_server_url: "https://user:pw@ghe.example.com" }), GH)).toThrow(
      /"github_server_url"/,
    );
  });

  it("passes every parameter as base64 data and the token on its own", () => {
    const env = checkoutEnv(readSettings(inputs({ ref: "v1.0", sparse_checkout: "src\n\ndocs\n" }), GH));
    expect(env.REOCLO_GIT_TOKEN).toBe("ghs_exampletoken1234567890");
    expect(Buffer.from(env.REOCLO_CO_REF!, "base64").toString()).toBe("v1.0");
    expect(Buffer.from(env.REOCLO_CO_KIND!, "base64").toString()).toBe("name");
    expect(Buffer.from(env.REOCLO_CO_SPARSE!, "base64").toString()).toBe("src\ndocs\n");
    for (const [name, value] of Object.entries(env))
      if (name !== "REOCLO_GIT_TOKEN") expect(value).not.toContain("ghs_");
  });
});
