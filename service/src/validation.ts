import { zodIssuesToFields } from "@reoclo/protocol";
import { z } from "zod";
import { ServiceError } from "./errors";

/** Parses with a shared schema or throws a 422 `validation` error naming each field. */
export function parseOrThrow<S extends z.ZodType>(schema: S, value: unknown): z.output<S> {
  const parsed = schema.safeParse(value);
  if (parsed.success) return parsed.data;
  const fields = zodIssuesToFields(parsed.error);
  const [field, problems] = Object.entries(fields)[0] ?? ["input", ["check the values"]];
  const problem = (problems[0] ?? "check the value").replace(/\.$/, "");
  throw new ServiceError("validation", `Invalid ${field}: ${problem}.`, fields);
}

/** A `since` filter: an ISO 8601 time with its offset (`2025-01-31T12:00:00Z`), or a date (midnight UTC). */
export const sinceSchema = z.union([z.iso.datetime({ offset: true }), z.iso.date()], {
  error: "must be an ISO 8601 time such as 2025-01-31T12:00:00Z, or a date such as 2025-01-31",
});
