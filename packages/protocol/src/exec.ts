// `POST /exec` (spec §3): the body the published `reoclo/run@v1` sends, and the answers.
import { z } from "zod";
import {
  codePointLength,
  hasNul,
  nullAsAbsent,
  requestBody,
  requiredString,
  runIdSchema,
  uuidField,
} from "./common.js";
import {
  COMMAND_MAX_CHARS,
  DEFAULT_MAX_TIMEOUT_SECONDS,
  DEFAULT_TIMEOUT_SECONDS,
  ENV_MAX_BYTES,
  ENV_MAX_KEYS,
  ENV_NAME_PATTERN,
  MIN_MAX_TIMEOUT_SECONDS,
  WORKING_DIRECTORY_MAX_CHARS,
} from "./limits.js";
import {
  operationResultSchema,
  optionalRunContextSchema,
  terminalStatusSchema,
  withOutcome,
} from "./operations.js";

const utf8 = new TextEncoder();

/** Quotes a caller-supplied name for a message, cut short so a 64 KiB name cannot flood the answer. */
function quoteName(name: string): string {
  return JSON.stringify(name.length > 64 ? `${name.slice(0, 64)}…` : name);
}

const commandSchema = z
  .string({ error: requiredString("command") })
  .superRefine((command, ctx) => {
    const length = codePointLength(command);
    if (length === 0) ctx.addIssue({ code: "custom", message: "command must not be empty." });
    if (length > COMMAND_MAX_CHARS) {
      ctx.addIssue({
        code: "custom",
        message: `command must be at most ${COMMAND_MAX_CHARS} characters long; it has ${length}.`,
      });
    }
    // A NUL would cut the command short on the host, so what runs would differ from what is stored.
    if (hasNul(command))
      ctx.addIssue({ code: "custom", message: "command must not contain a NUL character." });
  })
  .describe(`Run by a shell on the host; multi-line scripts allowed; 1 to ${COMMAND_MAX_CHARS} characters.`);

/** Optional directory the command starts in; an empty string means "the login directory". */
const workingDirectorySchema = nullAsAbsent(
  z
    .string({ error: "working_directory must be a string." })
    .refine((dir) => !hasNul(dir), { error: "working_directory must not contain a NUL character." })
    .refine((dir) => codePointLength(dir) <= WORKING_DIRECTORY_MAX_CHARS, {
      error: `working_directory must be at most ${WORKING_DIRECTORY_MAX_CHARS} characters long.`,
    })
    .transform((dir) => (dir === "" ? undefined : dir)),
).describe("The directory the command starts in; empty or absent: the remote user's login directory.");

/**
 * `env`: names are portable shell identifiers (POSIX XBD 8.1), values are strings without
 * NUL (they travel as C strings); at most ENV_MAX_KEYS names and ENV_MAX_BYTES of
 * names plus values (UTF-8).
 */
const envSchema = z
  // Not z.record: it drops a "__proto__" key, and silently losing a variable is worse than refusing it.
  .custom<Record<string, string>>(
    (value) => typeof value === "object" && value !== null && !Array.isArray(value),
    {
      error: "env must be an object mapping variable names to string values.",
    },
  )
  .transform((env, ctx) => {
    // The published CLI sends every line of the action's env input, `# DEBUG=1` included (spec
    // §7b): a name starting with `#` is a comment, dropped, never sent to the host.
    const entries: Array<[string, unknown]> = Object.entries(env).filter(
      ([name]) => !name.trimStart().startsWith("#"),
    );
    if (entries.length > ENV_MAX_KEYS) {
      ctx.addIssue({
        code: "custom",
        message: `env may hold at most ${ENV_MAX_KEYS} variables; it has ${entries.length}.`,
      });
    }
    let bytes = 0;
    const clean: Array<[string, string]> = [];
    for (const [name, value] of entries) {
      const validName = ENV_NAME_PATTERN.test(name);
      if (!validName) {
        ctx.addIssue({
          code: "custom",
          message: `env name ${quoteName(name)} is not a valid variable name: use letters, digits and underscores, not starting with a digit.`,
        });
      }
      const path = validName ? [name] : [];
      const label = validName ? `env.${name}` : `env value of ${quoteName(name)}`;
      if (typeof value !== "string") {
        ctx.addIssue({ code: "custom", path, message: `${label} must be a string.` });
        continue;
      }
      if (hasNul(value))
        ctx.addIssue({ code: "custom", path, message: `${label} must not contain a NUL character.` });
      bytes += utf8.encode(name).length + utf8.encode(value).length;
      clean.push([name, value]);
    }
    if (bytes > ENV_MAX_BYTES) {
      ctx.addIssue({
        code: "custom",
        message: `env must be at most ${ENV_MAX_BYTES} bytes in total (names plus values); it has ${bytes}.`,
      });
    }
    // fromEntries defines own properties, so a variable named __proto__ stays a variable.
    return Object.fromEntries(clean);
  })
  // z.custom has no JSON Schema of its own: say what it accepts.
  .meta({
    type: "object",
    additionalProperties: { type: "string" },
    description: `Environment variables of the command: names like ${ENV_NAME_PATTERN.source}, values strings without NUL; at most ${ENV_MAX_KEYS} names and ${ENV_MAX_BYTES / 1024} KiB. Values are passed as data, never in the command line, and masked in output from 8 characters on. Names starting with # are ignored.`,
  });

type ExecRequestSchemaOptions = {
  /** `REOCLO_MAX_TIMEOUT_SECONDS`: the largest `timeout_seconds` accepted, at least 900. */
  readonly maxTimeoutSeconds: number;
};

function timeoutSecondsSchema(maxTimeoutSeconds: number) {
  const error = `timeout_seconds must be a whole number of seconds from 1 to ${maxTimeoutSeconds}.`;
  return z
    .number({ error })
    .int({ error })
    .min(1, { error })
    .max(maxTimeoutSeconds, { error })
    .nullish()
    .transform((seconds) => seconds ?? DEFAULT_TIMEOUT_SECONDS)
    .describe(
      `Seconds before the command's whole process tree is killed (exit code 124); default ${DEFAULT_TIMEOUT_SECONDS}.`,
    );
}

/** Builds the `/exec` body schema for the service's configured maximum timeout. */
export function createExecRequestSchema(options: ExecRequestSchemaOptions) {
  const { maxTimeoutSeconds } = options;
  if (!Number.isInteger(maxTimeoutSeconds) || maxTimeoutSeconds < MIN_MAX_TIMEOUT_SECONDS) {
    throw new RangeError(`maxTimeoutSeconds must be an integer of at least ${MIN_MAX_TIMEOUT_SECONDS}.`);
  }
  return requestBody({
    server_id: uuidField("server_id").describe("The server to run the command on."),
    command: commandSchema,
    working_directory: workingDirectorySchema,
    env: nullAsAbsent(envSchema),
    timeout_seconds: timeoutSecondsSchema(maxTimeoutSeconds),
    run_id: runIdSchema,
    run_context: optionalRunContextSchema,
  });
}

type ExecRequestSchema = ReturnType<typeof createExecRequestSchema>;

/** The `/exec` body schema with the default maximum timeout (21,600 s). */
export const execRequestSchema: ExecRequestSchema = createExecRequestSchema({
  maxTimeoutSeconds: DEFAULT_MAX_TIMEOUT_SECONDS,
});
/** What a client may send. */
export type ExecRequestInput = z.input<ExecRequestSchema>;
/** A parsed /exec body, as the service's verbs take it. */
export type ExecRequest = z.output<ExecRequestSchema>;

/** Finished within the synchronous window: the result, flat (spec §3, §7). */
export const execFinishedResponseSchema = z.object({
  operation_id: z.string(),
  status: terminalStatusSchema,
  ...operationResultSchema.shape,
});
export type ExecFinishedResponse = z.output<typeof execFinishedResponseSchema>;

/** Still running when the window ended: poll `GET /operations/{id}` or stream its events. */
export const execRunningResponseSchema = z.object({
  operation_id: z.string(),
  status: z.literal("running"),
  outcome: z.literal("running").default("running"),
});

/** Always HTTP 200, whichever of the two (spec §7: a 201 or 202 fails the published step). */
export const execResponseSchema = z.preprocess(
  withOutcome,
  z.discriminatedUnion("status", [execFinishedResponseSchema, execRunningResponseSchema]),
);
export type ExecResponse = z.output<typeof execResponseSchema>;
