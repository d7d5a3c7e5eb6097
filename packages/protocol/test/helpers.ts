// Turns a failed parse into the `fields` a caller would see, so tests assert on what users read.
import type { z } from "zod";
import { zodIssuesToFields, type FieldErrors } from "@reoclo/protocol";

export function fieldsOf(result: z.ZodSafeParseResult<unknown>): FieldErrors {
  if (result.success) throw new Error(`expected a validation failure, got ${JSON.stringify(result.data)}`);
  return zodIssuesToFields(result.error);
}

export const SERVER_ID = "3f2b8c1e-9a4d-4e6f-8b1a-2c3d4e5f6a7b";
export const OTHER_ID = "0b9e7a6c-1d2e-4f30-9a8b-7c6d5e4f3a2b";
