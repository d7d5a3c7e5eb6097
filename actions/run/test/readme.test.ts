// action.yml is the published interface of reoclo/run: these tests keep it what v1 users rely
// on, and keep the README's generated tables in step with it.
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import * as prettier from "prettier";
import { describe, expect, it } from "vitest";
import {
  ActionDocsError,
  parseActionYaml,
  prettierOptionsFor,
  renderReadme,
} from "../../scripts/action-docs";

const ACTION_DIR = join(dirname(fileURLToPath(import.meta.url)), "..");
const README = join(ACTION_DIR, "README.md");
const actionYaml = readFileSync(join(ACTION_DIR, "action.yml"), "utf8");
const action = parseActionYaml(actionYaml);

describe("run action.yml", () => {
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
      "command",
      "working_directory",
      "env",
      "timeout",
      "api_url",
    ]);
    expect(action.outputs.map((o) => o.name)).toEqual([
      "exit_code",
      "stdout",
      "stderr",
      "operation_id",
      "duration_ms",
    ]);
  });
});

describe("run README", () => {
  it("has the inputs and outputs tables that action.yml produces", async () => {
    const readme = readFileSync(README, "utf8");
    const rendered = await renderReadme(readme, actionYaml, await prettierOptionsFor(README));
    expect(
      rendered.changed,
      "actions/run/README.md is stale: run `npx tsx actions/scripts/action-docs.ts actions/run`",
    ).toEqual([]);
    expect(rendered.text).toBe(readme);
  });
});

describe("action-docs generator", () => {
  const yml = `
inputs:
  pattern:
    description: "a|b, or a \\\\| b"
    required: true
  shell:
    description: |
      Runs the
      command.
    default: "\`echo\` | sh"
outputs:
  result:
    description: The result.
`;
  const readme = [
    "# x",
    "",
    "<!-- action-docs:inputs -->",
    "stale",
    "<!-- /action-docs:inputs -->",
    "",
    "<!--action-docs:outputs--><!--/action-docs:outputs-->",
    "",
  ].join("\n");

  it("escapes | in cells, joins multi-line descriptions and leaves the rest of the README alone", async () => {
    const { text, changed } = await renderReadme(readme, yml);
    expect(changed).toEqual(["inputs", "outputs"]);
    expect(text).toContain("| `pattern` | yes      |                    | a\\|b, or a \\| b   |");
    expect(text).toContain("| `shell`   | no       | `` `echo` \\| sh `` | Runs the command. |");
    expect(text.startsWith("# x\n\n<!-- action-docs:inputs -->\n\n| Input")).toBe(true);
    expect(text).toContain("| `result` | The result. |");
    expect((await renderReadme(text, yml)).changed).toEqual([]);
    expect(await prettier.format(text, { parser: "markdown" }), "Prettier-stable").toBe(text);
  });

  it("refuses a README without markers, or with unpaired ones", async () => {
    await expect(renderReadme("# x\n", yml)).rejects.toThrow(ActionDocsError);
    await expect(renderReadme("<!-- action-docs:inputs -->\n", yml)).rejects.toThrow(/never closed/);
    await expect(renderReadme("<!-- action-docs:env --><!-- /action-docs:env -->", yml)).rejects.toThrow(
      /unknown marker/,
    );
  });

  it("warns when an unquoted # cuts a description short", () => {
    const { inputs, warnings } = parseActionYaml(
      "inputs:\n  env:\n    description: lines starting with # are skipped\n",
    );
    expect(inputs[0]?.description).toBe("lines starting with");
    expect(warnings).toEqual([expect.stringContaining("inputs.env.description")]);
  });
});
