// The README table generator: escaping, Prettier-stable output, marker handling, warnings.
import * as prettier from "prettier";
import { describe, expect, it } from "vitest";
import { ActionDocsError, parseActionYaml, renderReadme } from "../action-docs";

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
