// action.yml is the published interface of reoclo/run: it stays what v1 users rely on, and the
// README's generated tables stay in step with it.
import { describe, expect, it } from "vitest";
import { describeActionContract } from "../../testing/action-contract";

const action = describeActionContract("run");

describe("run action.yml", () => {
  it("declares the published inputs and outputs, plus the OIDC audience", () => {
    expect(action.inputs.map((i) => i.name)).toEqual([
      "api_key",
      "server_id",
      "command",
      "working_directory",
      "env",
      "timeout",
      "api_url",
      "audience",
    ]);
    // Optional since issue 18: without it the job's OIDC token is exchanged for a key.
    expect(action.inputs.find((i) => i.name === "api_key")?.required).toBe(false);
    expect(action.outputs.map((o) => o.name)).toEqual([
      "exit_code",
      "stdout",
      "stderr",
      "operation_id",
      "duration_ms",
    ]);
  });
});
