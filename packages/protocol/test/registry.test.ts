import { describe, expect, it } from "vitest";
import {
  registryLoginRequestSchema,
  registryLoginResponseSchema,
  registryLogoutRequestSchema,
  registryLogoutResponseSchema,
} from "@reoclo/protocol";
import { fieldsOf, OTHER_ID, SERVER_ID } from "./helpers.js";

const runContext = {
  provider: "github_actions",
  repository: "acme/web",
  workflow: "ci",
  trigger: "push",
  actor: "me",
};

describe("registry login", () => {
  it("accepts the body reoclo/docker-auth@v1 sends", () => {
    expect(
      registryLoginRequestSchema.parse({
        server_id: SERVER_ID,
        credential_id: OTHER_ID,
        run_id: "1",
        run_context: runContext,
      }),
    ).toEqual({ server_id: SERVER_ID, credential_id: OTHER_ID, run_id: "1", run_context: runContext });
  });

  it("requires a credential id", () => {
    expect(fieldsOf(registryLoginRequestSchema.safeParse({ server_id: SERVER_ID }))).toEqual({
      credential_id: ["credential_id is required."],
    });
  });

  it("answers running with the registry's url and type", () => {
    const answer = { operation_id: "op", status: "running", registry_url: "ghcr.io", registry_type: "ghcr" };
    expect(registryLoginResponseSchema.parse(answer)).toEqual({ ...answer, outcome: "running" });
    expect(registryLoginResponseSchema.safeParse({ ...answer, registry_type: "quay" }).success).toBe(false);
  });
});

describe("registry logout", () => {
  it("accepts a registry host, with or without scheme and port", () => {
    for (const registry_url of ["ghcr.io", "registry.example.com:5000", "https://index.docker.io/v1/"]) {
      expect(registryLogoutRequestSchema.parse({ server_id: SERVER_ID, registry_url }).registry_url).toBe(
        registry_url,
      );
    }
  });

  it("refuses a registry_url that could become an option or split into words", () => {
    expect(
      fieldsOf(registryLogoutRequestSchema.safeParse({ server_id: SERVER_ID, registry_url: "--help" })),
    ).toEqual({
      registry_url: ['registry_url must not start with "-".'],
    });
    expect(
      fieldsOf(registryLogoutRequestSchema.safeParse({ server_id: SERVER_ID, registry_url: "a b\n" })),
    ).toEqual({
      registry_url: ["registry_url must not contain spaces or control characters."],
    });
    expect(fieldsOf(registryLogoutRequestSchema.safeParse({ server_id: SERVER_ID }))).toEqual({
      registry_url: ["registry_url is required."],
    });
  });

  it("answers like /exec plus the registry_url", () => {
    const done = {
      operation_id: "op",
      status: "completed",
      exit_code: 0,
      stdout: "Removing login credentials for ghcr.io\n",
      stderr: "",
      duration_ms: 300,
      stdout_truncated: false,
      stderr_truncated: false,
      registry_url: "ghcr.io",
    };
    expect(registryLogoutResponseSchema.parse(done)).toEqual({ ...done, outcome: "completed", reason: null });
    const running = { operation_id: "op", status: "running", registry_url: "ghcr.io" };
    expect(registryLogoutResponseSchema.parse(running)).toEqual({ ...running, outcome: "running" });
  });
});
