import { createHash } from "node:crypto";
import type { RunContext } from "@reoclo/protocol";

// Input helpers every action shares. Each action builds its one settings object in its own
// inputs.ts; these keep the common inputs (api_url, api_key) read the same way everywhere.

export class InputError extends Error {}

export type GetInput = (name: string) => string;
export type Environment = Readonly<Record<string, string | undefined>>;

/** `api_url`, else the REOCLO_API_URL variable; an http(s) URL without a trailing slash. */
export function readApiUrl(getInput: GetInput, environment: Environment): string {
  const apiUrl = (getInput("api_url").trim() || environment.REOCLO_API_URL?.trim() || "").replace(/\/+$/, "");
  if (!apiUrl)
    throw new InputError(
      `Input "api_url" (or the REOCLO_API_URL environment variable) is required: the URL of your Reoclo service.`,
    );
  if (!/^https?:\/\/[^\s/]+/.test(apiUrl)) throw new InputError(`Input "api_url" must be an http(s) URL.`);
  return apiUrl;
}

/** What to do when a job has neither an api_key nor a way to prove who it is. */
export const NO_CREDENTIALS =
  "Set `api_key`, or let the job request an OIDC token: add `permissions: id-token: write` to the job (GitHub Actions) and create a trust policy for this repository on the service (reoclo-admin trust-policies add …).";

/**
 * How a step gets its automation key: the `api_key` input, or (spec §12, issue 18) an ID token of
 * the job for `audience`, exchanged with the service; see resolveApiKey.
 */
export type Authentication =
  | { readonly kind: "api_key"; readonly apiKey: string }
  | { readonly kind: "oidc"; readonly audience: string };

/**
 * `api_key` when given (as v1 always did); else OIDC when the runner lets this job request an ID
 * token (it sets both variables only under `permissions: id-token: write`). The audience is the
 * `audience` input, by default the origin of `apiUrl` (a trust policy's default audience).
 */
export function readAuthentication(
  getInput: GetInput,
  environment: Environment,
  apiUrl: string,
): Authentication {
  const apiKey = getInput("api_key").trim();
  if (apiKey) return { kind: "api_key", apiKey };
  if (!environment.ACTIONS_ID_TOKEN_REQUEST_URL || !environment.ACTIONS_ID_TOKEN_REQUEST_TOKEN)
    throw new InputError(`No "api_key" input, and this job may not request an OIDC token. ${NO_CREDENTIALS}`);
  return { kind: "oidc", audience: getInput("audience").trim() || new URL(apiUrl).origin };
}

/** What a post step needs: where the service is and how to get a key, read again from the inputs (never from state). */
export interface PostSettings {
  readonly apiUrl: string;
  readonly auth: Authentication;
}

export function readPostSettings(getInput: GetInput, environment: Environment): PostSettings {
  const apiUrl = readApiUrl(getInput, environment);
  return { apiUrl, auth: readAuthentication(getInput, environment, apiUrl) };
}

/** The CI run's context as the published actions send it (stored as claimed, spec §3). */
export function runContextFrom(environment: Environment): RunContext {
  const g = (name: string) => environment[name] ?? "";
  return {
    provider: "github_actions",
    repository: g("GITHUB_REPOSITORY"),
    workflow: g("GITHUB_WORKFLOW"),
    trigger: g("GITHUB_EVENT_NAME"),
    actor: g("GITHUB_ACTOR"),
    sha: g("GITHUB_SHA"),
    ref: g("GITHUB_REF"),
  };
}

/**
 * An Idempotency-Key for one step's request: the same for every retry of this step, different
 * for another step, attempt or run. Matrix legs share run, attempt, job and step ids; the
 * runner's per-step file-command path (…/_runner_file_commands/set_output_<uuid>) tells them
 * apart. `parts` adds what the request is about (server, credential…).
 */
export function stepIdempotencyKey(prefix: string, environment: Environment, ...parts: string[]): string {
  const g = (name: string) => environment[name] ?? "";
  const step = [
    g("GITHUB_RUN_ID"),
    g("GITHUB_RUN_ATTEMPT"),
    g("GITHUB_JOB"),
    g("GITHUB_ACTION"),
    g("GITHUB_OUTPUT"),
    ...parts,
  ].join("\0");
  return `${prefix}-${createHash("sha256").update(step).digest("hex").slice(0, 48)}`;
}
