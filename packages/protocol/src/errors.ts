// One list of error codes and one envelope for every error answer (spec §1).
import { z } from "zod";

/** Every error code the API may answer, with the HTTP status it always comes with. */
export const ERROR_CODES = {
  unauthorized: 401,
  // Only as the final `error` event of an event stream whose key was revoked or expired meanwhile.
  key_revoked: 401,
  key_expired: 401,
  ip_not_allowed: 403,
  operation_not_allowed: 403,
  server_not_in_scope: 403,
  credential_not_in_scope: 403,
  application_not_in_scope: 403,
  forbidden: 403,
  not_found: 404,
  // No such route (e.g. a wrong path prefix in front of the base path), apart from an unknown id.
  route_not_found: 404,
  method_not_allowed: 405,
  request_timeout: 408,
  idempotency_in_progress: 409,
  application_busy: 409,
  conflict: 409,
  payload_too_large: 413,
  unsupported_media_type: 415,
  malformed_json: 400,
  bad_request: 400,
  validation: 422,
  idempotency_key_mismatch: 422,
  rate_limited: 429,
  internal_error: 500,
  secrets_unavailable: 503,
  database_unavailable: 503,
  audit_unavailable: 503,
  service_unavailable: 503,
  // The OIDC exchange (spec §12): the token's issuer did not answer for its signing keys.
  oidc_issuer_unavailable: 503,
} as const satisfies Record<string, number>;

export type ErrorCode = keyof typeof ERROR_CODES;
type ErrorStatus = (typeof ERROR_CODES)[ErrorCode];

export const ERROR_CODE_LIST = Object.keys(ERROR_CODES) as ErrorCode[];

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === "string" && Object.hasOwn(ERROR_CODES, value);
}

export function errorStatus(code: ErrorCode): ErrorStatus {
  return ERROR_CODES[code];
}

/** Problems per request field, e.g. `{"env.PATH": ["…"]}`; root problems are under "body". */
const fieldErrorsSchema = z.record(z.string(), z.array(z.string()));
export type FieldErrors = z.infer<typeof fieldErrorsSchema>;

/**
 * The one error body. `error` is kept a plain string so a client built today still reads
 * the `detail` of a code added tomorrow; the service narrows it with {@link ErrorCode}.
 */
export const errorEnvelopeSchema = z.object({
  error: z.string().min(1).describe("What went wrong, as a snake_case code."),
  detail: z.string().describe("One sentence for a person; never a secret, a stack trace or SQL."),
  request_id: z.string().describe("The request's id, as in the X-Request-Id header."),
  fields: fieldErrorsSchema
    .optional()
    .describe('Validation errors: the problems of each field; those of the body as a whole under "body".'),
});
export type ErrorEnvelope = z.infer<typeof errorEnvelopeSchema>;
/** What the service builds: same shape, but only known codes. */
export type ServiceErrorEnvelope = ErrorEnvelope & { error: ErrorCode };

/** Key under which problems of the body as a whole are reported. */
const ROOT_FIELD = "body";

/**
 * Turns zod issues into the envelope's `fields`. The messages are the schemas' own
 * sentences (they name the field and the limit), so they can be shown to users as-is.
 */
export function zodIssuesToFields(error: z.ZodError): FieldErrors {
  const fields: FieldErrors = {};
  for (const issue of error.issues) {
    const key = issue.path.length === 0 ? ROOT_FIELD : issue.path.map(String).join(".");
    const problems = (fields[key] ??= []);
    if (!problems.includes(issue.message)) problems.push(issue.message);
  }
  return fields;
}

/**
 * One sentence for `detail` of a 422: the published clients print only the raw body, so
 * the first problem must be readable without `fields`.
 */
export function validationDetail(fields: FieldErrors): string {
  const problems = Object.values(fields).flat();
  const first = problems[0];
  if (first === undefined) return "The request body is invalid.";
  const rest = problems.length - 1;
  if (rest === 0) return first;
  return `${first.replace(/\.$/, "")} (and ${rest} more ${rest === 1 ? "problem" : "problems"}, see "fields").`;
}
