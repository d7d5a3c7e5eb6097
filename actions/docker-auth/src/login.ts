// Main step: log the server in to the credential's registry; the post step logs it out.
import * as core from "@actions/core";
import {
  authenticatedClient,
  AuthenticationError,
  InputError,
  refusalMessage,
  tail,
} from "@reoclo/action-kit";
import { ReocloApiError, type ReocloClient } from "@reoclo/client";
import { STATE, USER_AGENT } from "./constants.js";
import { readSettings, type DockerAuthSettings } from "./inputs.js";

export async function login(): Promise<void> {
  try {
    await loginStep();
  } catch (err) {
    core.setFailed(
      `Unexpected error in the docker-auth action: ${err instanceof Error ? err.message : String(err)}`,
    );
  }
}

async function loginStep(): Promise<void> {
  let s: DockerAuthSettings;
  try {
    s = readSettings((name) => core.getInput(name), process.env);
  } catch (err) {
    if (err instanceof InputError) return core.setFailed(err.message);
    throw err;
  }
  let client: ReocloClient;
  try {
    client = await authenticatedClient(s, USER_AGENT, { pollIntervalMs: 500 });
  } catch (err) {
    if (err instanceof AuthenticationError) return core.setFailed(err.message);
    throw err;
  }
  let started;
  try {
    started = await client.registryLogin(
      {
        server_id: s.serverId,
        credential_id: s.credentialId,
        ...(s.runId !== undefined ? { run_id: s.runId } : {}),
        run_context: s.runContext,
      },
      { idempotencyKey: s.idempotencyKey("login") },
    );
  } catch (err) {
    if (err instanceof ReocloApiError) return core.setFailed(refusalMessage(err));
    throw err;
  }
  // From here the server may be logged in: the post step logs out whatever happens next.
  core.saveState(STATE.registryUrl, started.registry_url);
  core.setOutput("operation_id", started.operation_id);
  core.setOutput("registry_url", started.registry_url);
  core.setOutput("registry_type", started.registry_type);
  core.info(
    `[reoclo] logging server ${s.serverId} in to ${started.registry_url} (operation ${started.operation_id})`,
  );

  const op = await client.waitForOperation(started.operation_id);
  const result = op.result;
  if (op.outcome === "completed" && result?.exit_code === 0) {
    core.info(`[reoclo] logged in to ${started.registry_url}${s.cleanup ? "; the post step logs out" : ""}`);
    return;
  }
  core.error(tail(result?.stderr ?? "") || tail(result?.stdout ?? "") || "The login printed nothing.", {
    title: `Login to ${started.registry_url} failed (${op.outcome}, exit code ${result?.exit_code ?? "?"})`,
  });
  process.exitCode = result && result.exit_code >= 1 && result.exit_code <= 255 ? result.exit_code : 1;
}
