// `POST /deploy`, `/restart` and `/reboot` (spec §5): they answer like `/exec` (execResponseSchema:
// HTTP 200 with a finished result or `{"operation_id", "status": "running"}`) and are polled the same way.
import { z } from "zod";
import { requestBody, requiredString, runIdSchema, uuidField } from "./common.js";
import { COMMIT_REF_MAX_CHARS } from "./limits.js";
import { optionalRunContextSchema } from "./operations.js";

/** An abbreviated or full commit id: SHA-1 is 40 hex digits, SHA-256 64; git accepts 4 or more. */
const COMMIT_SHA_PATTERN = /^[0-9a-fA-F]{4,64}$/;

/**
 * Characters a ref may use here: a subset of what `git check-ref-format` allows. Deploy
 * scripts receive the ref as `$REOCLO_COMMIT_REF` and may use it unquoted, so `$`, quotes,
 * backticks, parentheses, `;`, `|`, `&`, `<`, `>` and non-ASCII stay out.
 */
const SAFE_REF_CHARACTERS = /^[A-Za-z0-9._/+@#=,-]+$/;

/**
 * Why `ref` is not an acceptable branch, tag, full ref or commit id, as the end of a
 * sentence ("must not …"), or undefined when it is. Follows git-check-ref-format(1) with
 * one-level names allowed, and refuses a leading "-" so a ref can never become an option.
 */
export function gitRefProblem(ref: string): string | undefined {
  if (ref.length === 0) return "must not be empty.";
  if (ref.length > COMMIT_REF_MAX_CHARS) return `must be at most ${COMMIT_REF_MAX_CHARS} characters long.`;
  if (ref.startsWith("-")) return 'must not start with "-", so it can never be read as an option.';
  if (COMMIT_SHA_PATTERN.test(ref)) return undefined;
  // eslint-disable-next-line no-control-regex -- refusing control characters is the point
  if (/[\u0000-\u0020\u007f~^:?*[\\]/.test(ref)) {
    return "must not contain spaces, control characters or any of ~ ^ : ? * [ \\.";
  }
  if (ref.includes("..")) return 'must not contain "..".';
  if (ref.includes("@{")) return 'must not contain "@{".';
  if (ref === "@") return 'must not be "@" alone.';
  if (ref.startsWith("/") || ref.endsWith("/") || ref.includes("//")) {
    return 'must not start or end with "/" or contain "//".';
  }
  if (ref.endsWith(".")) return 'must not end with ".".';
  for (const component of ref.split("/")) {
    if (component.startsWith(".")) return 'must not have a part that starts with ".".';
    if (component.endsWith(".lock")) return 'must not have a part that ends with ".lock".';
  }
  if (!SAFE_REF_CHARACTERS.test(ref)) {
    return "may contain only letters, digits and the characters . _ - / + @ # = , (for example main, v1.2.3 or refs/heads/feature/x).";
  }
  return undefined;
}

/** True for a branch, tag, full ref (`refs/tags/v1.2.3`) or commit id that is safe to pass to git. */
export function isValidGitRef(ref: string): boolean {
  return gitRefProblem(ref) === undefined;
}

/** Schema for a ref field; messages start with the field's name. */
function gitRefSchema(name: string) {
  return z.string({ error: requiredString(name) }).superRefine((ref, ctx) => {
    const problem = gitRefProblem(ref);
    if (problem !== undefined) ctx.addIssue({ code: "custom", message: `${name} ${problem}` });
  });
}

export const deployRequestSchema = requestBody({
  application_id: uuidField("application_id").describe("The application to deploy."),
  /** Passed to the deploy script as data, in `REOCLO_COMMIT_REF`. */
  commit_ref: gitRefSchema("commit_ref").describe(
    "A branch, tag, full ref or commit id, passed to the deploy script as data in REOCLO_COMMIT_REF.",
  ),
  /** false: answer 409 `application_busy` instead of queueing behind a running deploy. */
  wait: z
    .boolean({ error: "wait must be true or false." })
    .nullish()
    .transform((wait) => wait ?? true)
    .describe(
      "false: answer 409 application_busy instead of waiting behind a running deploy (default true).",
    ),
  run_id: runIdSchema,
  run_context: optionalRunContextSchema,
});

export const restartRequestSchema = requestBody({
  application_id: uuidField("application_id").describe("The application to restart."),
  run_id: runIdSchema,
  run_context: optionalRunContextSchema,
});

export const rebootRequestSchema = requestBody({
  server_id: uuidField("server_id").describe("The server to reboot."),
  run_id: runIdSchema,
  run_context: optionalRunContextSchema,
});

/** Parsed bodies, as the service's verbs take them. */
export type DeployRequest = z.output<typeof deployRequestSchema>;
export type RestartRequest = z.output<typeof restartRequestSchema>;
export type RebootRequest = z.output<typeof rebootRequestSchema>;
