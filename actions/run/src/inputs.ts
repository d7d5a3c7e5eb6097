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
import {
  DEFAULT_MAX_TIMEOUT_SECONDS,
  DEFAULT_TIMEOUT_SECONDS,
  ENV_NAME_PATTERN,
  UUID_PATTERN,
  type RunContext,
} from "@reoclo/protocol";

export { InputError };

// Every input read, validated and normalised here, once; nothing else reads inputs or the environment.

export interface RunSettings {
  readonly apiUrl: string;
  /** The api_key input, or the audience of an OIDC ID token to exchange for a key. */
  readonly auth: Authentication;
  readonly serverId: string;
  readonly command: string;
  readonly workingDirectory: string | undefined;
  readonly env: Readonly<Record<string, string>>;
  readonly timeoutSeconds: number;
  /** Derived from the run, attempt, job and step: a retried request never runs the command twice. */
  readonly idempotencyKey: string;
  readonly runId: string | undefined;
  readonly runContext: RunContext;
  /** Whether the runner gave us a step summary file (GITHUB_STEP_SUMMARY). */
  readonly stepSummary: boolean;
}

/** KEY=VALUE lines; blank lines and # comments skipped. Errors name the line, never the value. */
export function parseEnvLines(text: string): Record<string, string> {
  const env: Record<string, string> = {};
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trimStart();
    if (line === "" || line.startsWith("#")) return;
    const eq = line.indexOf("=");
    const name = eq === -1 ? line.trim() : line.slice(0, eq).trim();
    if (eq === -1 || !ENV_NAME_PATTERN.test(name)) {
      throw new InputError(
        `env line ${i + 1}: expected NAME=value with NAME made of letters, digits and _ (not starting with a digit)`,
      );
    }
    // Trimmed like dotenv does: `TOKEN = abc` means "abc", which is what gets masked.
    env[name] = line.slice(eq + 1).trim();
  });
  return env;
}

export function readSettings(getInput: GetInput, environment: Environment): RunSettings {
  const required = (name: string) => {
    const v = getInput(name).trim();
    if (!v) throw new InputError(`Input "${name}" is required.`);
    return v;
  };
  const serverId = required("server_id");
  if (!UUID_PATTERN.test(serverId)) throw new InputError(`Input "server_id" must be a server id (a UUID).`);
  const command = getInput("command");
  if (!command.trim()) throw new InputError(`Input "command" is required.`);
  const timeoutText = getInput("timeout").trim() || String(DEFAULT_TIMEOUT_SECONDS);
  const timeoutSeconds = Number(timeoutText);
  if (!/^\d+$/.test(timeoutText) || timeoutSeconds < 1 || timeoutSeconds > DEFAULT_MAX_TIMEOUT_SECONDS) {
    throw new InputError(
      `Input "timeout" must be a whole number of seconds between 1 and ${DEFAULT_MAX_TIMEOUT_SECONDS}.`,
    );
  }
  const apiUrl = readApiUrl(getInput, environment);
  const auth = readAuthentication(getInput, environment, apiUrl);
  const workingDirectory = getInput("working_directory").trim() || undefined;
  const g = (name: string) => environment[name] ?? "";
  return {
    apiUrl,
    auth,
    serverId,
    command,
    workingDirectory,
    env: parseEnvLines(getInput("env")),
    timeoutSeconds,
    idempotencyKey: stepIdempotencyKey("gha", environment, serverId),
    runId: g("GITHUB_RUN_ID") || undefined,
    runContext: runContextFrom(environment),
    stepSummary: g("GITHUB_STEP_SUMMARY") !== "",
  };
}
