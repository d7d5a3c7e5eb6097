import {
  InputError,
  readApiUrl,
  readAuthentication,
  runContextFrom,
  stepIdempotencyKey,
  type Authentication,
  type Environment,
  type GetInput,
} from "@reoclo/action-kit";
import { UUID_PATTERN, type RunContext } from "@reoclo/protocol";

export { InputError };

// Every input read, validated and normalised here, once; nothing else reads inputs or the environment.

export interface DockerAuthSettings {
  readonly apiUrl: string;
  /** The api_key input, or the audience of an OIDC ID token to exchange for a key. */
  readonly auth: Authentication;
  readonly serverId: string;
  readonly credentialId: string;
  readonly cleanup: boolean;
  /** Derived from the run, attempt, job and step: a retried login never runs twice. */
  readonly idempotencyKey: (action: "login" | "logout") => string;
  readonly runId: string | undefined;
  readonly runContext: RunContext;
}

export function readSettings(getInput: GetInput, environment: Environment): DockerAuthSettings {
  const g = (name: string) => environment[name] ?? "";
  const uuid = (name: string) => {
    const v = getInput(name).trim();
    if (!v) throw new InputError(`Input "${name}" is required.`);
    if (!UUID_PATTERN.test(v)) throw new InputError(`Input "${name}" must be an id (a UUID).`);
    return v;
  };
  const serverId = uuid("server_id");
  const credentialId = uuid("credential_id");
  const apiUrl = readApiUrl(getInput, environment);
  const auth = readAuthentication(getInput, environment, apiUrl);
  const cleanupText = getInput("cleanup").trim().toLowerCase() || "true";
  if (cleanupText !== "true" && cleanupText !== "false")
    throw new InputError(`Input "cleanup" must be true or false.`);
  return {
    apiUrl,
    auth,
    serverId,
    credentialId,
    cleanup: cleanupText === "true",
    idempotencyKey: (action) => stepIdempotencyKey(`gha-da-${action}`, environment, serverId, credentialId),
    runId: g("GITHUB_RUN_ID") || undefined,
    runContext: runContextFrom(environment),
  };
}
