// Keyless CI (spec §12, issue 18): without an api_key, the step asks the runner for an ID token
// of this job, exchanges it with the service for a short-lived automation key, and goes on with
// that key as with any other. Neither the token nor the key is ever logged; both are masked.
import * as core from "@actions/core";
import { NOT_REOCLO_SERVICE, ReocloApiError, ReocloClient, ReocloUnreachableError } from "@reoclo/client";
import { ACTION_RETRY, actionClient, type ActionClientOptions } from "./client.js";
import { NO_CREDENTIALS, type Authentication } from "./inputs.js";

/** The step could not get an automation key; its message says why and what to change. */
export class AuthenticationError extends Error {}

const oneLine = (text: string) => text.replace(/\s+/g, " ").trim();

/**
 * The automation key the step uses: the api_key input, or a key the service issued for this
 * job's OIDC ID token. Rejects with an AuthenticationError that the step shows as its failure.
 */
export async function resolveApiKey(
  settings: { readonly apiUrl: string; readonly auth: Authentication },
  userAgent: string,
  signal?: AbortSignal,
): Promise<string> {
  const { apiUrl, auth } = settings;
  if (auth.kind === "api_key") return auth.apiKey;
  let idToken: string;
  try {
    idToken = await core.getIDToken(auth.audience);
  } catch (err) {
    const why = oneLine(err instanceof Error ? err.message : String(err));
    throw new AuthenticationError(
      `Could not get an OIDC ID token for audience ${auth.audience} from the runner (${why}). ${NO_CREDENTIALS}`,
    );
  }
  core.setSecret(idToken); // getIDToken masks it too; said here so it never depends on that
  const client = new ReocloClient({
    apiUrl,
    userAgent,
    retry: ACTION_RETRY,
    log: (msg) => core.info(`[reoclo] ${msg}`),
    ...(signal ? { signal } : {}),
  });
  let issued;
  try {
    issued = await client.exchangeOidcToken(idToken);
  } catch (err) {
    throw new AuthenticationError(exchangeFailure(err, apiUrl, auth.audience));
  }
  core.setSecret(issued.key);
  core.info(`[reoclo] Authenticated with OIDC: policy ${issued.policy_id}, key expires ${issued.expires_at}`);
  return issued.key;
}

/** What a failed exchange means for the user, and what to check. */
export function exchangeFailure(err: unknown, apiUrl: string, audience: string): string {
  if (err instanceof ReocloUnreachableError)
    return `Could not reach the Reoclo API at ${apiUrl} to exchange the OIDC token: ${err.message}`;
  if (!(err instanceof ReocloApiError)) {
    const why = err instanceof Error ? err.message : String(err);
    // The service may have seen (and spent) the token: it accepts each one once, so it is not sent again.
    return `The OIDC token exchange with ${apiUrl} failed (${why}); it is not sent twice, re-run the job.`;
  }
  const request = err.requestId ? ` (request ${err.requestId})` : "";
  if (err.code === NOT_REOCLO_SERVICE) return `The OIDC token exchange failed: ${err.detail}`;
  if (err.status === 404 && err.code === "route_not_found")
    return `The service at ${apiUrl} does not offer OIDC exchange (upgrade it, or set api_key).`;
  if (err.status === 401)
    return (
      `The service at ${apiUrl} refused the OIDC token: ${err.detail.replace(/\.$/, "")}${request}. ` +
      `Check the trust policy for this repository (its issuer, audience "${audience}" and claim conditions such as repository and ref) ` +
      `and the service's audit log, which says which check failed.`
    );
  if (err.status === 503)
    return `The service at ${apiUrl} could not reach the OIDC issuer to verify the token: ${err.detail.replace(/\.$/, "")}${request}. Re-run the job, or set api_key.`;
  return `The service at ${apiUrl} refused the OIDC token exchange: ${err.code} (HTTP ${err.status}): ${err.detail}${request}`;
}

/** actionClient with the key resolveApiKey gives (the api_key input, or one issued for the job's ID token). */
export async function authenticatedClient(
  settings: { readonly apiUrl: string; readonly auth: Authentication },
  userAgent: string,
  options: ActionClientOptions = {},
): Promise<ReocloClient> {
  const apiKey = await resolveApiKey(settings, userAgent);
  return actionClient({ apiUrl: settings.apiUrl, apiKey }, userAgent, options);
}
