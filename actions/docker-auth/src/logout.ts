// Post step: log the server out of the registry main logged in to, whether the job succeeded,
// failed or was cancelled. It only ever warns: a failed logout must not fail a finished job.
import * as core from "@actions/core";
import { authenticatedClient } from "@reoclo/action-kit";
import { STATE, USER_AGENT } from "./constants.js";
import { readSettings } from "./inputs.js";

export async function logout(): Promise<void> {
  const registryUrl = core.getState(STATE.registryUrl);
  try {
    const s = readSettings((name) => core.getInput(name), process.env);
    if (!s.cleanup) return core.info("[reoclo] cleanup is false: staying logged in");
    if (!registryUrl) return core.info("[reoclo] no login to undo");
    // With OIDC this is a new key: the login step's is never kept in the state.
    const client = await authenticatedClient(s, USER_AGENT, { pollIntervalMs: 500 });
    const signal = AbortSignal.timeout(60_000);
    const answer = await client.registryLogout(
      {
        server_id: s.serverId,
        registry_url: registryUrl,
        ...(s.runId !== undefined ? { run_id: s.runId } : {}),
        run_context: s.runContext,
      },
      { idempotencyKey: s.idempotencyKey("logout"), signal },
    );
    const op =
      answer.status === "running" ? await client.waitForOperation(answer.operation_id, signal) : undefined;
    const status = op?.outcome ?? answer.outcome;
    const exitCode = op?.result?.exit_code ?? ("exit_code" in answer ? answer.exit_code : undefined);
    if (status === "completed" && exitCode === 0) return core.info(`[reoclo] logged out of ${registryUrl}`);
    core.warning(
      `Logging out of ${registryUrl} did not succeed (${status}, exit code ${String(exitCode)}); operation ${answer.operation_id}.`,
    );
  } catch (err) {
    core.warning(
      `Could not log out of ${registryUrl || "the registry"}: ${err instanceof Error ? err.message : String(err)}`,
    );
  }
}
