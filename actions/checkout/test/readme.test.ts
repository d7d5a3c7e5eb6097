// action.yml is the published interface of reoclo/checkout: these tests keep it what v1 users
// rely on (plus the documented `timeout`), and keep the README's generated tables in step.
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { parseActionYaml, prettierOptionsFor, renderReadme } from "../../scripts/action-docs";

const ACTION_DIR = join(dirname(fileURLToPath(import.meta.url)), "..");
const README = join(ACTION_DIR, "README.md");
const actionYaml = readFileSync(join(ACTION_DIR, "action.yml"), "utf8");
const action = parseActionYaml(actionYaml);

describe("checkout action.yml", () => {
  it("is a node24 action whose main and post bundles exist", () => {
    expect(action.runs.using).toBe("node24");
    for (const key of ["main", "post"]) {
      const file = action.runs[key];
      expect(typeof file, `runs.${key}`).toBe("string");
      expect(existsSync(join(ACTION_DIR, file as string)), `runs.${key}: ${String(file)}`).toBe(true);
    }
  });

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
    ]);
    expect(action.inputs.find((i) => i.name === "token")?.default).toBe("${{ github.token }}");
    expect(action.inputs.find((i) => i.name === "path")?.default).toBe("/opt/deploy/workspace");
    expect(action.outputs.map((o) => o.name)).toEqual(["commit_sha", "commit", "short_sha", "ref", "path"]);
  });
});

describe("checkout README", () => {
  it("has the inputs and outputs tables that action.yml produces", async () => {
    const readme = readFileSync(README, "utf8");
    const rendered = await renderReadme(readme, actionYaml, await prettierOptionsFor(README));
    expect(
      rendered.changed,
      "actions/checkout/README.md is stale: run `npx tsx actions/scripts/action-docs.ts actions/checkout`",
    ).toEqual([]);
    expect(rendered.text).toBe(readme);
  });
});
