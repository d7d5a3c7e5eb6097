// `POST /registry-auth/login` and `/logout` (spec §3), as `reoclo/docker-auth@v1` calls them.
import { z } from "zod";
import { codePointLength, requestBody, requiredString, runIdSchema, uuidField } from "./common.js";
import { execFinishedResponseSchema, execRunningResponseSchema } from "./exec.js";
import { REGISTRY_URL_MAX_CHARS } from "./limits.js";
import { optionalRunContextSchema, registryTypeSchema, withOutcome } from "./operations.js";

/**
 * A registry host (`ghcr.io`, `registry.example.com:5000`, `https://index.docker.io/v1/`).
 * It reaches `docker logout` as an argument, so it may not look like an option or hold
 * whitespace or control characters.
 */
const registryUrlSchema = z.string({ error: requiredString("registry_url") }).superRefine((url, ctx) => {
  if (url.length === 0) ctx.addIssue({ code: "custom", message: "registry_url must not be empty." });
  if (codePointLength(url) > REGISTRY_URL_MAX_CHARS) {
    ctx.addIssue({
      code: "custom",
      message: `registry_url must be at most ${REGISTRY_URL_MAX_CHARS} characters long.`,
    });
  }
  if (url.startsWith("-")) ctx.addIssue({ code: "custom", message: 'registry_url must not start with "-".' });
  // eslint-disable-next-line no-control-regex -- refusing control characters is the point
  if (/[\s\u0000-\u001f\u007f]/.test(url)) {
    ctx.addIssue({
      code: "custom",
      message: "registry_url must not contain spaces or control characters.",
    });
  }
});

export const registryLoginRequestSchema = requestBody({
  server_id: uuidField("server_id").describe("The server to log in on."),
  credential_id: uuidField("credential_id").describe("The stored registry credential to log in with."),
  run_id: runIdSchema,
  run_context: optionalRunContextSchema,
});
export type RegistryLoginRequestInput = z.input<typeof registryLoginRequestSchema>;
/** The parsed body, as the service's verb takes it. */
export type RegistryLoginRequest = z.output<typeof registryLoginRequestSchema>;

/** Answered with HTTP 202; the `docker login` operation is then polled like any other. */
export const registryLoginResponseSchema = z.object({
  operation_id: z.string(),
  status: z.literal("running"),
  outcome: z.literal("running").default("running"),
  registry_url: z.string(),
  registry_type: registryTypeSchema,
});
export type RegistryLoginResponse = z.output<typeof registryLoginResponseSchema>;

export const registryLogoutRequestSchema = requestBody({
  server_id: uuidField("server_id").describe("The server to log out on."),
  registry_url: registryUrlSchema.describe("The registry to log out of: ghcr.io, registry.example.com:5000…"),
  run_id: runIdSchema,
  run_context: optionalRunContextSchema,
});
export type RegistryLogoutRequestInput = z.input<typeof registryLogoutRequestSchema>;
/** The parsed body, as the service's verb takes it. */
export type RegistryLogoutRequest = z.output<typeof registryLogoutRequestSchema>;

/**
 * Answered with exactly HTTP 200 (a 204 breaks the published post step), shaped like an
 * `/exec` answer plus the `registry_url` that was logged out.
 */
export const registryLogoutResponseSchema = z.preprocess(
  withOutcome,
  z.discriminatedUnion("status", [
    execFinishedResponseSchema.extend({ registry_url: z.string() }),
    execRunningResponseSchema.extend({ registry_url: z.string() }),
  ]),
);
export type RegistryLogoutResponse = z.output<typeof registryLogoutResponseSchema>;
