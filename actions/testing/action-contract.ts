// The checks every action's published interface gets: node24 with main and post bundles that
// exist, and a README whose generated tables match action.yml.
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { actionDir } from "@reoclo/testbed/runner";
import {
  parseActionYaml,
  prettierOptionsFor,
  renderReadme,
  type ActionMetadata,
} from "../scripts/action-docs";

/** Declares the shared tests for actions/<name>; returns action.yml as parsed, for the action's own checks. */
export function describeActionContract(name: string): ActionMetadata {
  const dir = actionDir(name);
  const readmePath = join(dir, "README.md");
  const actionYaml = readFileSync(join(dir, "action.yml"), "utf8");
  const action = parseActionYaml(actionYaml);

  describe(`${name} action.yml and README`, () => {
    it("is a node24 action whose main and post bundles exist", () => {
      expect(action.runs.using).toBe("node24");
      for (const key of ["main", "post"]) {
        const file = action.runs[key];
        expect(typeof file, `runs.${key}`).toBe("string");
        expect(existsSync(join(dir, file as string)), `runs.${key}: ${String(file)}`).toBe(true);
      }
    });

    it("has the inputs and outputs tables that action.yml produces", async () => {
      const readme = readFileSync(readmePath, "utf8");
      const rendered = await renderReadme(readme, actionYaml, await prettierOptionsFor(readmePath));
      expect(
        rendered.changed,
        `actions/${name}/README.md is stale: run \`npx tsx actions/scripts/action-docs.ts actions/${name}\``,
      ).toEqual([]);
      expect(rendered.text).toBe(readme);
    });
  });
  return action;
}
