import { zodIssuesToFields } from "@reoclo/protocol";
import type { z } from "zod";
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
