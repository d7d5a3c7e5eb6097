import { describe, expect, it } from "vitest";
import {
  COMMAND_MAX_CHARS,
  createExecRequestSchema,
  execRequestSchema,
  execResponseSchema,
  validationDetail,
} from "@reoclo/protocol";
import { fieldsOf, SERVER_ID } from "./helpers.js";

describe("POST /exec body", () => {
  it("accepts a pretty-printed body of the published v1 client with unknown extra fields, and drops them", () => {
    const raw = JSON.stringify(
      {
        server_id: SERVER_ID,
        command: "docker compose build\ndocker compose up -d\n",
        working_directory: "/opt/deploy/workspace",
        env: { NODE_ENV: "production", API_TOKEN: "s3cr3t-value" },
        timeout_seconds: 600,
        run_id: "987654321",
        run_context: {
          provider: "github_actions",
          repository: "acme/web",
          workflow: "deploy",
          trigger: "push",
          actor: "octocat",
          sha: "a".repeat(40),
          ref: "refs/heads/main",
          job: "build",
        },
        client_version: "1.4.0",
      },
      null,
      2,
    );
    const parsed = execRequestSchema.parse(JSON.parse(raw));
    expect(parsed).toEqual({
      server_id: SERVER_ID,
      command: "docker compose build\ndocker compose up -d\n",
      working_directory: "/opt/deploy/workspace",
      env: { NODE_ENV: "production", API_TOKEN: "s3cr3t-value" },
      timeout_seconds: 600,
      run_id: "987654321",
      run_context: {
        provider: "github_actions",
        repository: "acme/web",
        workflow: "deploy",
        trigger: "push",
        actor: "octocat",
        sha: "a".repeat(40),
        ref: "refs/heads/main",
      },
    });
    expect(parsed).not.toHaveProperty("client_version");
  });

  it("needs only server_id and command, and defaults timeout_seconds to 60", () => {
    const parsed = execRequestSchema.parse({ server_id: SERVER_ID, command: "uptime" });
    expect(parsed.timeout_seconds).toBe(60);
    expect(parsed.env).toBeUndefined();
    expect(parsed.run_context).toBeUndefined();
  });

  it("treats null optional fields as absent, as a client that serialises unset values sends them", () => {
    const parsed = execRequestSchema.parse({
      server_id: SERVER_ID,
      command: "uptime",
      working_directory: null,
      env: null,
      timeout_seconds: null,
      run_id: null,
      run_context: null,
    });
    expect(parsed).toEqual({ server_id: SERVER_ID, command: "uptime", timeout_seconds: 60 });
  });

  it("lower-cases the server id so scope lists compare equal", () => {
    const parsed = execRequestSchema.parse({ server_id: SERVER_ID.toUpperCase(), command: "true" });
    expect(parsed.server_id).toBe(SERVER_ID);
  });

  it("names every missing required field, null counting as missing", () => {
    expect(fieldsOf(execRequestSchema.safeParse({ command: null }))).toEqual({
      server_id: ["server_id is required."],
      command: ["command is required."],
    });
  });

  it("refuses a body that is not an object, under the 'body' field", () => {
    expect(fieldsOf(execRequestSchema.safeParse([1, 2]))).toEqual({
      body: ["The request body must be a JSON object."],
    });
  });

  it("refuses a server_id that is not a UUID", () => {
    expect(fieldsOf(execRequestSchema.safeParse({ server_id: "prod-1", command: "true" }))).toEqual({
      server_id: ["server_id must be a UUID such as 123e4567-e89b-12d3-a456-426614174000."],
    });
  });

  it("accepts a command of exactly 8192 characters, counting an emoji as one", () => {
    const command = "🚀".repeat(COMMAND_MAX_CHARS);
    expect(execRequestSchema.safeParse({ server_id: SERVER_ID, command }).success).toBe(true);
  });

  it("refuses an empty command and one over 8192 characters, saying how long it is", () => {
    expect(fieldsOf(execRequestSchema.safeParse({ server_id: SERVER_ID, command: "" }))).toEqual({
      command: ["command must not be empty."],
    });
    const tooLong = "x".repeat(COMMAND_MAX_CHARS + 1);
    expect(fieldsOf(execRequestSchema.safeParse({ server_id: SERVER_ID, command: tooLong }))).toEqual({
      command: ["command must be at most 8192 characters long; it has 8193."],
    });
  });

  it("refuses a NUL in the command or the working directory", () => {
    const fields = fieldsOf(
      execRequestSchema.safeParse({
        server_id: SERVER_ID,
        command: "ls\u0000rm",
        working_directory: "/a\u0000b",
      }),
    );
    expect(fields).toEqual({
      command: ["command must not contain a NUL character."],
      working_directory: ["working_directory must not contain a NUL character."],
    });
  });

  it("accepts timeout_seconds from 1 to the configured maximum only, as whole seconds", () => {
    const body = (timeout_seconds: unknown) => ({ server_id: SERVER_ID, command: "true", timeout_seconds });
    expect(execRequestSchema.parse(body(1)).timeout_seconds).toBe(1);
    expect(execRequestSchema.parse(body(21600)).timeout_seconds).toBe(21600);
    for (const bad of [0, 21601, 1.5, "60", -5]) {
      expect(fieldsOf(execRequestSchema.safeParse(body(bad)))).toEqual({
        timeout_seconds: ["timeout_seconds must be a whole number of seconds from 1 to 21600."],
      });
    }
  });

  it("uses the service's configured maximum timeout", () => {
    const schema = createExecRequestSchema({ maxTimeoutSeconds: 900 });
    const result = schema.safeParse({ server_id: SERVER_ID, command: "true", timeout_seconds: 901 });
    expect(fieldsOf(result)).toEqual({
      timeout_seconds: ["timeout_seconds must be a whole number of seconds from 1 to 900."],
    });
  });

  it("refuses a configured maximum below 900 as a programming error", () => {
    expect(() => createExecRequestSchema({ maxTimeoutSeconds: 600 })).toThrow(RangeError);
  });

  it("accepts a numeric run_id from curl users and keeps it as a string", () => {
    const parsed = execRequestSchema.parse({ server_id: SERVER_ID, command: "true", run_id: 12345 });
    expect(parsed.run_id).toBe("12345");
  });

  it("refuses a run_id that is neither text nor a whole number", () => {
    for (const run_id of [1.5, -1, {}, true]) {
      const result = execRequestSchema.safeParse({ server_id: SERVER_ID, command: "true", run_id });
      expect(fieldsOf(result)).toEqual({ run_id: ["run_id must be a string."] });
    }
  });

  it("refuses a run_id over 256 characters", () => {
    const result = execRequestSchema.safeParse({
      server_id: SERVER_ID,
      command: "true",
      run_id: "r".repeat(257),
    });
    expect(fieldsOf(result)).toEqual({ run_id: ["run_id must be at most 256 characters long."] });
  });

  it("exposes each field's schema so the service can check scope before validating the rest", () => {
    expect(execRequestSchema.shape.server_id.safeParse(SERVER_ID).success).toBe(true);
  });

  it("sums several problems into one readable detail sentence", () => {
    const fields = fieldsOf(execRequestSchema.safeParse({ command: "" }));
    expect(validationDetail(fields)).toBe('server_id is required (and 1 more problem, see "fields").');
  });
});

describe("POST /exec answer", () => {
  it("reads a finished answer of an older or foreign service: outcome from its status, flags defaulted", () => {
    const answer = execResponseSchema.parse({
      operation_id: "op-1",
      status: "completed",
      exit_code: 0,
      stdout: "ok\n",
      stderr: "",
      duration_ms: 12,
    });
    expect(answer).toEqual({
      operation_id: "op-1",
      status: "completed",
      outcome: "completed",
      reason: null,
      exit_code: 0,
      stdout: "ok\n",
      stderr: "",
      duration_ms: 12,
      stdout_truncated: false,
      stderr_truncated: false,
    });
  });

  it("reads a still-running answer", () => {
    expect(execResponseSchema.parse({ operation_id: "op-1", status: "running" })).toEqual({
      operation_id: "op-1",
      status: "running",
      outcome: "running",
    });
  });

  it("reads an older service's cancelled and lost as status failed, keeping the end in the outcome", () => {
    for (const [old, code] of [
      ["cancelled", 130],
      ["lost", 255],
    ] as const) {
      const answer = execResponseSchema.parse({
        operation_id: "op-1",
        status: old,
        exit_code: code,
        stdout: "",
        stderr: "",
        duration_ms: 1,
      });
      expect(answer).toMatchObject({ status: "failed", outcome: old, exit_code: code });
    }
  });

  it("reads this service's answers as they are", () => {
    const answer = {
      operation_id: "op-1",
      status: "failed",
      outcome: "cancelled",
      reason: 'Cancelled by automation key "deploy" (rca_3kTm9x…); the command\'s process group was killed.',
      exit_code: 130,
      stdout: "",
      stderr: "",
      duration_ms: 4,
      stdout_truncated: false,
      stderr_truncated: false,
    };
    expect(execResponseSchema.parse(answer)).toEqual(answer);
    expect(execResponseSchema.safeParse({ ...answer, status: "cancelled" }).success).toBe(false);
  });

  it("refuses a finished answer without an exit code", () => {
    const result = execResponseSchema.safeParse({
      operation_id: "op-1",
      status: "failed",
      stdout: "",
      stderr: "",
    });
    expect(result.success).toBe(false);
  });
});
