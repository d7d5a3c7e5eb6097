// The run action: settings → masks → the operation as a step (live output, cancel on signal)
// → outputs, summary and the step's outcome.
import * as core from "@actions/core";
import {
  ACTION_RETRY,
  authenticatedClient,
  AuthenticationError,
  failureOf,
  InputError,
  runOperationStep,
  summaryTable,
} from "@reoclo/action-kit";
import type { ExecFinishedResponse, ReocloClient } from "@reoclo/client";
import { USER_AGENT } from "./constants.js";
import { readSettings, type RunSettings } from "./inputs.js";

export async function run(): Promise<void> {
  try {
    await runStep();
  } catch (err) {
    core.setFailed(`Unexpected error in the run action: ${err instanceof Error ? err.message : String(err)}`);
  }
}

async function runStep(): Promise<void> {
  let settings: RunSettings;
  try {
    settings = readSettings((name) => core.getInput(name), process.env);
  } catch (err) {
    if (err instanceof InputError) return core.setFailed(err.message);
    throw err;
  }
  for (const value of Object.values(settings.env)) if (value !== "") core.setSecret(value);

  let client: ReocloClient;
  try {
    client = await authenticatedClient(settings, USER_AGENT);
  } catch (err) {
    if (err instanceof AuthenticationError) return core.setFailed(err.message);
    throw err;
  }
  const result = await runOperationStep({
    client,
    apiUrl: settings.apiUrl,
    attempts: ACTION_RETRY.attempts,
    idempotencyKey: settings.idempotencyKey,
    request: {
      server_id: settings.serverId,
      command: settings.command,
      ...(settings.workingDirectory !== undefined ? { working_directory: settings.workingDirectory } : {}),
      ...(Object.keys(settings.env).length > 0 ? { env: settings.env } : {}),
      timeout_seconds: settings.timeoutSeconds,
      ...(settings.runId !== undefined ? { run_id: settings.runId } : {}),
      run_context: settings.runContext,
    },
    onOperation: (id) => core.setOutput("operation_id", id),
  });
  if (!result) return;

  core.setOutput("exit_code", String(result.exit_code));
  core.setOutput("stdout", result.stdout);
  core.setOutput("stderr", result.stderr);
  core.setOutput("operation_id", result.operation_id);
  core.setOutput("duration_ms", String(result.duration_ms));
  core.info(
    `[reoclo] ${result.outcome}, exit code ${result.exit_code}, ${result.duration_ms} ms on the server` +
      (result.stdout_truncated || result.stderr_truncated
        ? " (stored output was truncated at the service's cap)"
        : ""),
  );

  if (settings.stepSummary) await writeSummary(client, settings, result);

  const failure = failureOf(result, settings.timeoutSeconds);
  if (failure) {
    core.error(failure.message, { title: failure.title });
    process.exitCode = failure.exitCode;
  }
}

async function writeSummary(client: ReocloClient, s: RunSettings, r: ExecFinishedResponse) {
  let server = s.serverId;
  try {
    // The name reads better than the id; the summary is best effort.
    const op = await client.getOperation(r.operation_id, AbortSignal.timeout(5_000));
    server = `${op.server_name} (${s.serverId})`;
  } catch {
    // keep the id
  }
  try {
    await core.summary
      .addHeading("Reoclo run", 3)
      .addTable(
        summaryTable({
          server,
          operationId: r.operation_id,
          status: r.outcome,
          exitCode: r.exit_code,
          durationMs: r.duration_ms,
        }),
      )
      .write();
  } catch (err) {
    core.warning(`Could not write the step summary: ${err instanceof Error ? err.message : String(err)}`);
  }
}
