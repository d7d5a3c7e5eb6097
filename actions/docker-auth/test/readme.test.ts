// action.yml is the published interface of reoclo/docker-auth: these tests keep it what v1 users
// rely on, and keep the README's generated tables in step.
import { describe, expect, it } from "vitest";
import { describeActionContract } from "../../testing/action-contract";

const action = describeActionContract("docker-auth");

describe("docker-auth action.yml", () => {
  it("declares the published inputs and outputs, plus the OIDC audience", () => {
    expect(action.inputs.map((i) => i.name)).toEqual([
      "api_key",
      "server_id",
      "credential_id",
      "cleanup",
      "api_url",
      "audience",
    ]);
    expect(action.inputs.find((i) => i.name === "cleanup")?.default).toBe("true");
    // Optional since issue 18: without it the job's OIDC token is exchanged for a key.
    expect(action.inputs.find((i) => i.name === "api_key")?.required).toBe(false);
    expect(action.outputs.map((o) => o.name)).toEqual(["operation_id", "registry_url", "registry_type"]);
  });
});
