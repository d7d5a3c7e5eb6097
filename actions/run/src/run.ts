// The run action's orchestrator: settings → masks → exec with live output → outputs,
// summary and the step's outcome. Cancelling the workflow (SIGINT, then SIGTERM from the
// runner) cancels the remote command.
import * as core from "@actions/core";
import { isAbortError, ReocloApiError, ReocloClient, type ExecFinishedResponse } from "@reoclo/client";
import { InputError, readSettings, type RunSettings } from "./inputs.js";
import { LiveLog } from "./live-log.js";
import { failureOf, refusalMessage, summaryTable } from "./report.js";
import { STATE, USER_AGENT } from "./constants.js";

/** After a cancel request, how long to wait for the final status; the runner kills us 10 s after SIGINT. */
const CANCEL_WAIT_MS = 7_000;
/** Enough to ride out a service restart of about a minute (1, 2, 4, 8, 15, 15, 15 s ceilings, full jitter). */
export const RETRY = { attempts: 8, baseDelayMs: 1_000, maxDelayMs: 15_000 } as const;

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
  core.setSecret(settings.apiKey);
  for (const value of Object.values(settings.env)) if (value.trim() !== "") core.setSecret(value);

  const client = new ReocloClient({
    apiUrl: settings.apiUrl,
    apiKey: settings.apiKey,
    userAgent: USER_AGENT,
    retry: RETRY,
    log: (msg) => core.info(`[reoclo] ${msg}`),
  });
  const log = new LiveLog(process.stdout);
  const cancel = new CancelOnSignal(client);

  let result: ExecFinishedResponse;
  try {
    result = await client.exec(
      {
        server_id: settings.serverId,
        command: settings.command,
        ...(settings.workingDirectory !== undefined ? { working_directory: settings.workingDirectory } : {}),
        ...(Object.keys(settings.env).length > 0 ? { env: settings.env } : {}),
        timeout_seconds: settings.timeoutSeconds,
        ...(settings.runId !== undefined ? { run_id: settings.runId } : {}),
        run_context: settings.runContext,
      },
      {
        idempotencyKey: settings.idempotencyKey,
        onOperation: (id) => {
          core.saveState(STATE.operationId, id);
          core.setOutput("operation_id", id);
          core.info(`[reoclo] operation ${id} on server ${settings.serverId}`);
          cancel.operationKnown(id);
        },
        onOutput: (e) => log.write(e.stream, e.data),
        signal: cancel.signal,
      },
    );
  } catch (err) {
    log.close();
    cancel.dispose();
    if (isAbortError(err)) {
      core.setFailed(
        cancel.requested
          ? "The workflow was cancelled; the remote command was asked to stop (the post step makes sure)."
          : "Stopped waiting for the command.",
      );
      process.exitCode = 130;
      return;
    }
    if (err instanceof ReocloApiError) return core.setFailed(refusalMessage(err));
    const why = err instanceof Error ? err.message : String(err);
    return core.setFailed(
      `Could not reach the Reoclo API at ${settings.apiUrl} after ${RETRY.attempts} attempts: ${why}`,
    );
  }
  log.close();
  cancel.dispose();
  core.saveState(STATE.finished, "true");

  core.setOutput("exit_code", String(result.exit_code));
  core.setOutput("stdout", result.stdout);
  core.setOutput("stderr", result.stderr);
  core.setOutput("operation_id", result.operation_id);
  core.setOutput("duration_ms", String(result.duration_ms));
  core.info(
    `[reoclo] ${result.status}, exit code ${result.exit_code}, ${result.duration_ms} ms on the server` +
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
          status: r.status,
          exitCode: r.exit_code,
          durationMs: r.duration_ms,
        }),
      )
      .write();
  } catch (err) {
    core.warning(`Could not write the step summary: ${err instanceof Error ? err.message : String(err)}`);
  }
}

/**
 * SIGINT (the runner's cancel) asks the service to cancel the operation and keeps reading its
 * output until it ends (TERM, then KILL after 5 s on the host), at most CANCEL_WAIT_MS. A second
 * signal stops waiting at once. Before the id is known the cancel is sent as soon as it is.
 */
class CancelOnSignal {
  readonly #client: ReocloClient;
  readonly #waiting = new AbortController();
  readonly #onSignal = (sig: NodeJS.Signals) => this.#handle(sig);
  #operationId: string | undefined;
  #sent = false;
  #timer: NodeJS.Timeout | undefined;
  requested = false;

  constructor(client: ReocloClient) {
    this.#client = client;
    process.on("SIGINT", this.#onSignal);
    process.on("SIGTERM", this.#onSignal);
  }

  get signal(): AbortSignal {
    return this.#waiting.signal;
  }

  operationKnown(id: string) {
    this.#operationId = id;
    if (this.requested) this.#send();
  }

  dispose() {
    clearTimeout(this.#timer);
    process.off("SIGINT", this.#onSignal);
    process.off("SIGTERM", this.#onSignal);
  }

  #handle(sig: NodeJS.Signals) {
    if (this.requested) {
      core.info(`[reoclo] ${sig} again: no longer waiting for the command to stop`);
      this.#waiting.abort();
      return;
    }
    this.requested = true;
    core.info(`[reoclo] ${sig}: cancelling the remote command`);
    this.#timer = setTimeout(() => this.#waiting.abort(), CANCEL_WAIT_MS);
    if (this.#operationId !== undefined) this.#send();
  }

  #send() {
    if (this.#sent || this.#operationId === undefined) return;
    this.#sent = true;
    const id = this.#operationId;
    this.#client.cancel(id, AbortSignal.timeout(CANCEL_WAIT_MS)).then(
      (op) => core.info(`[reoclo] cancel of operation ${id} accepted (status ${op.status})`),
      (err: unknown) =>
        core.warning(`Could not cancel operation ${id}: ${err instanceof Error ? err.message : String(err)}`),
    );
  }
}
