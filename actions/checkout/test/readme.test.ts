// action.yml is the published interface of reoclo/checkout: these tests keep it what v1 users
// rely on (plus the documented `timeout`), and keep the README's generated tables in step.
import { describe, expect, it } from "vitest";
import { describeActionContract } from "../../testing/action-contract";

const action = describeActionContract("checkout");

describe("checkout action.yml", () => {
  it("declares the published inputs and outputs, with the workflow's token as the default token", () => {
    expect(action.inputs.map((i) => i.name)).toEqual([
      "api_key",
      "server_id",
      "repository",
      "ref",
      "path",
      "token",
      "clean",
      "depth",
      "fetch_tags",
      "filter",
      "sparse_checkout",
      "sparse_checkout_cone_mode",
      "submodules",
      "lfs",
      "persist_credentials",
      "github_server_url",
      "api_url",
      "timeout",
      "audience",
    ]);
    expect(action.inputs.find((i) => i.name === "token")?.default).toBe("${{ github.token }}");
    expect(action.inputs.find((i) => i.name === "path")?.default).toBe("/opt/deploy/workspace");
    // Optional since issue 18: without it the job's OIDC token is exchanged for a key.
    expect(action.inputs.find((i) => i.name === "api_key")?.required).toBe(false);
    expect(action.outputs.map((o) => o.name)).toEqual(["commit_sha", "commit", "short_sha", "ref", "path"]);
  });
});
