// action.yml is the published interface of reoclo/docker-auth: these tests keep it what v1 users
// rely on, and keep the README's generated tables in step.
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { parseActionYaml, prettierOptionsFor, renderReadme } from "../../scripts/action-docs";

const ACTION_DIR = join(dirname(fileURLToPath(import.meta.url)), "..");
const README = join(ACTION_DIR, "README.md");
const actionYaml = readFileSync(join(ACTION_DIR, "action.yml"), "utf8");
const action = parseActionYaml(actionYaml);

describe("docker-auth action.yml", () => {
  it("is a node24 action whose main and post bundles exist", () => {
    expect(action.runs.using).toBe("node24");
    for (const key of ["main", "post"]) {
      const file = action.runs[key];
      expect(typeof file, `runs.${key}`).toBe("string");
      expect(existsSync(join(ACTION_DIR, file as string)), `runs.${key}: ${String(file)}`).toBe(true);
    }
  });

  it("declares exactly the published inputs and outputs", () => {
    expect(action.inputs.map((i) => i.name)).toEqual([
      "api_key",
      "server_id",
      "credential_id",
      "cleanup",
      "api_url",
    ]);
    expect(action.inputs.find((i) => i.name === "cleanup")?.default).toBe("true");
    expect(action.outputs.map((o) => o.name)).toEqual(["operation_id", "registry_url", "registry_type"]);
  });
});

describe("docker-auth README", () => {
  it("has the inputs and outputs tables that action.yml produces", async () => {
    const readme = readFileSync(README, "utf8");
    const rendered = await renderReadme(readme, actionYaml, await prettierOptionsFor(README));
    expect(
      rendered.changed,
      "actions/docker-auth/README.md is stale: run `npx tsx actions/scripts/action-docs.ts actions/docker-auth`",
    ).toEqual([]);
    expect(rendered.text).toBe(readme);
  });
});
