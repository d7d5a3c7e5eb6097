import { describe, expect, it } from "vitest";
import {
  deployRequestSchema,
  gitRefProblem,
  isValidGitRef,
  rebootRequestSchema,
  restartRequestSchema,
} from "@reoclo/protocol";
import { fieldsOf, OTHER_ID, SERVER_ID } from "./helpers.js";

describe("isValidGitRef", () => {
  it.each([
    "main",
    "HEAD",
    "feature/x",
    "refs/heads/feature/login-form",
    "refs/tags/v1.2.3",
    "refs/pull/12/merge",
    "release-2024.05",
    "v1.0.0+build.5",
    "user@host-branch",
    "a".repeat(40),
    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
    "abcd",
  ])("accepts %s", (ref) => {
    expect(isValidGitRef(ref)).toBe(true);
  });

  it.each([
    ["--upload-pack=x", 'must not start with "-"'],
    ["-b", 'must not start with "-"'],
    ["$(id)", "may contain only"],
    ["`id`", "may contain only"],
    ["main;rm -rf /", "must not contain spaces"],
    ["a..b", 'must not contain ".."'],
    ["main.lock", '".lock"'],
    ["refs/heads/x.lock/y", '".lock"'],
    ["feature/", 'must not start or end with "/"'],
    ["/main", 'must not start or end with "/"'],
    ["a//b", 'contain "//"'],
    ["main.", 'must not end with "."'],
    [".hidden", 'starts with "."'],
    ["refs/.x", 'starts with "."'],
    ["main@{1}", 'must not contain "@{"'],
    ["@", '"@" alone'],
    ["a b", "must not contain spaces"],
    ["a~1", "~ ^ :"],
    ["a^", "~ ^ :"],
    ["a:b", "~ ^ :"],
    ["a?", "~ ^ :"],
    ["a*", "~ ^ :"],
    ["a[b", "~ ^ :"],
    ["a\\b", "~ ^ :"],
    ["a\tb", "control characters"],
    ["a\u007fb", "control characters"],
    ["", "must not be empty"],
    ["r".repeat(1025), "at most 1024"],
  ])("refuses %j", (ref, why) => {
    expect(isValidGitRef(ref)).toBe(false);
    expect(gitRefProblem(ref)).toContain(why);
  });
});

describe("POST /deploy body", () => {
  it("accepts an application and a ref, waiting for a running deploy by default", () => {
    expect(
      deployRequestSchema.parse({ application_id: OTHER_ID, commit_ref: "refs/tags/v1.2.3", extra: 1 }),
    ).toEqual({
      application_id: OTHER_ID,
      commit_ref: "refs/tags/v1.2.3",
      wait: true,
    });
  });

  it("lets the caller ask not to wait", () => {
    expect(
      deployRequestSchema.parse({ application_id: OTHER_ID, commit_ref: "main", wait: false }).wait,
    ).toBe(false);
  });

  it("explains why a ref is refused, naming the field", () => {
    expect(
      fieldsOf(deployRequestSchema.safeParse({ application_id: OTHER_ID, commit_ref: "--upload-pack=x" })),
    ).toEqual({
      commit_ref: ['commit_ref must not start with "-", so it can never be read as an option.'],
    });
  });

  it("requires application_id and commit_ref", () => {
    expect(fieldsOf(deployRequestSchema.safeParse({ wait: "yes" }))).toEqual({
      application_id: ["application_id is required."],
      commit_ref: ["commit_ref is required."],
      wait: ["wait must be true or false."],
    });
  });
});

describe("POST /restart and /reboot bodies", () => {
  it("restart takes an application id", () => {
    expect(restartRequestSchema.parse({ application_id: OTHER_ID, run_id: "7" })).toEqual({
      application_id: OTHER_ID,
      run_id: "7",
    });
  });

  it("reboot takes a server id", () => {
    expect(rebootRequestSchema.parse({ server_id: SERVER_ID })).toEqual({ server_id: SERVER_ID });
    expect(fieldsOf(rebootRequestSchema.safeParse({ application_id: OTHER_ID }))).toEqual({
      server_id: ["server_id is required."],
    });
  });
});
