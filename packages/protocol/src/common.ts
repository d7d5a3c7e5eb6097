// Field builders shared by every request body, so each field refuses bad input with the
// same kind of sentence: "<field> must …", naming the field and the limit.
import { z } from "zod";
import { RUN_ID_MAX_CHARS, UUID_PATTERN } from "./limits.js";

/** Objects strip unknown keys (zod's default): unknown fields are ignored, never an error (spec §1). */
export function requestBody<Shape extends z.ZodRawShape>(shape: Shape) {
  return z.object(shape, { error: "The request body must be a JSON object." });
}

/** True for an id of the API's form ({@link UUID_PATTERN}, any case): what {@link uuidField} accepts. */
export function isUuid(value: unknown): value is string {
  return typeof value === "string" && UUID_PATTERN.test(value);
}

/**
 * A required id. Accepts any 8-4-4-4-12 hex form, as PostgreSQL's `uuid` type does, and
 * lower-cases it so scope lists compare equal whatever case the caller used.
 */
export function uuidField(name: string) {
  return z
    .guid({
      error: (issue) =>
        issue.input === undefined || issue.input === null
          ? `${name} is required.`
          : `${name} must be a UUID such as 123e4567-e89b-12d3-a456-426614174000.`,
    })
    .toLowerCase();
}

/** Error customiser for a required string field. */
export function requiredString(name: string) {
  return (issue: { input?: unknown }) =>
    issue.input === undefined || issue.input === null ? `${name} is required.` : `${name} must be a string.`;
}

/** JSON `null` on an optional field means "absent": some clients serialise unset values as null. */
export function nullAsAbsent<T extends z.ZodType>(schema: T) {
  return schema.nullish().transform((value) => value ?? undefined);
}

/** Counts Unicode code points, not UTF-16 units, so an emoji is one character of a limit. */
export function codePointLength(text: string): number {
  let count = 0;
  for (const _ of text) count++;
  return count;
}

export function hasNul(text: string): boolean {
  return text.includes("\u0000");
}

const RUN_ID_TYPE_ERROR = "run_id must be a string.";
const runIdNumber = z.number().int({ error: RUN_ID_TYPE_ERROR }).nonnegative({ error: RUN_ID_TYPE_ERROR });

/**
 * `run_id`: the CI run that groups operations. A number is accepted (curl users send
 * `GITHUB_RUN_ID` unquoted) and an empty string means "no run".
 */
export const runIdSchema = nullAsAbsent(
  z
    .union([z.string(), runIdNumber], { error: RUN_ID_TYPE_ERROR })
    .transform((value) => String(value))
    .refine((value) => codePointLength(value) <= RUN_ID_MAX_CHARS, {
      error: `run_id must be at most ${RUN_ID_MAX_CHARS} characters long.`,
    })
    // It is stored and searched as text, which cannot hold NUL.
    .refine((value) => !hasNul(value), { error: "run_id must not contain a NUL character." })
    .transform((value) => (value === "" ? undefined : value)),
).describe(
  "The CI run the operation belongs to (e.g. GITHUB_RUN_ID; a number is accepted); empty means none.",
);
