// One operation as a workflow step: start it once, show its output live, follow a cancelled
// workflow, and say how it ended. The actions wrap this with their own inputs and outputs.
import * as core from "@actions/core";
import {
  isAbortError,
  ReocloApiError,
  type ExecFinishedResponse,
  type ExecRequestInput,
  type ReocloClient,
} from "@reoclo/client";
import { CancelOnSignal } from "./cancel.js";
import { LiveLog, type LogSink } from "./live-log.js";
import { refusalMessage } from "./report.js";
import { STATE } from "./state.js";

type StepOutcome =
  /** The operation reached a final status (whatever its exit code). */
  | { kind: "finished"; result: ExecFinishedResponse }
  /** The workflow was cancelled, or we stopped waiting: exit 130. */
  | { kind: "stopped"; message: string }
  /** The service answered with an error (the envelope's code and detail in the message). */
  | { kind: "refused"; message: string; error: ReocloApiError }
  /** Every attempt failed to reach the service. */
  | { kind: "unreachable"; message: string };

export interface OperationStepOptions {
  client: ReocloClient;
  request: ExecRequestInput;
  idempotencyKey: string;
  apiUrl: string;
  /** How many attempts the client makes, for the message when all fail. */
  attempts: number;
  onOperation?: (id: string) => void;
  /** Where the command's lines go; default the job log (stdout). */
  sink?: LogSink;
}

const say = (msg: string) => core.info(`[reoclo] ${msg}`);

/**
 * Runs the operation as the step. Resolves with its result once final (whatever its exit code);
 * otherwise the step has already been failed with the reason (exit 130 when it was stopped by a
 * signal) and it resolves with undefined.
 */
export async function runOperationStep(
  opts: OperationStepOptions,
): Promise<ExecFinishedResponse | undefined> {
  const { client, idempotencyKey } = opts;
  // Before the first request: if the answer never arrives, the post step can still find it.
  core.saveState(STATE.idempotencyKey, idempotencyKey);
  const log = new LiveLog(opts.sink ?? process.stdout);
  const cancel = new CancelOnSignal(client, say);
  let operationId: string | undefined;
  let outcome: StepOutcome;
  try {
    const result = await client.exec(opts.request, {
      idempotencyKey,
      onOperation: (id) => {
        operationId = id;
        core.saveState(STATE.operationId, id);
        say(`operation ${id} on server ${opts.request.server_id}`);
        cancel.operationKnown(id);
        opts.onOperation?.(id);
      },
      onOutput: (e) => log.write(e.stream, e.data),
      signal: cancel.signal,
    });
    core.saveState(STATE.finished, "true");
    outcome = { kind: "finished", result };
  } catch (err) {
    if (isAbortError(err)) {
      outcome = { kind: "stopped", message: await stopped(client, cancel, idempotencyKey, operationId) };
    } else if (err instanceof ReocloApiError) {
      core.saveState(STATE.finished, "true"); // a definite answer: nothing was left running by us
      outcome = { kind: "refused", message: refusalMessage(err), error: err };
    } else {
      const why = err instanceof Error ? err.message : String(err);
      outcome = {
        kind: "unreachable",
        message: `Could not reach the Reoclo API at ${opts.apiUrl} after ${opts.attempts} attempts: ${why}`,
      };
    }
  } finally {
    log.close();
    cancel.dispose();
  }
  await cancel.settled();
  for (const w of cancel.warnings) core.warning(w);
  if (outcome.kind === "finished") return outcome.result;
  core.setFailed(outcome.message);
  if (outcome.kind === "stopped") process.exitCode = 130;
  return undefined;
}

/** After a signal: make sure whatever the request may have started is asked to stop. */
async function stopped(
  client: ReocloClient,
  cancel: CancelOnSignal,
  idempotencyKey: string,
  operationId: string | undefined,
): Promise<string> {
  if (!cancel.requested) return "Stopped waiting for the command.";
  if (operationId !== undefined) {
    return `The workflow was cancelled; operation ${operationId} was asked to stop (the post step makes sure).`;
  }
  // The request may have reached the service without its answer reaching us.
  try {
    const op = await client.findOperationByIdempotencyKey(idempotencyKey, AbortSignal.timeout(4_000));
    if (!op) return "The workflow was cancelled before the command started (the post step checks again).";
    core.saveState(STATE.operationId, op.operation_id);
    if (op.status !== "running")
      return `The workflow was cancelled; operation ${op.operation_id} had already ended (${op.outcome}).`;
    const now = await client.cancel(op.operation_id, AbortSignal.timeout(4_000));
    return `The workflow was cancelled; operation ${op.operation_id} was cancelled (${now.outcome}).`;
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    return `The workflow was cancelled before the operation was known, and the service could not be asked about it (${why}); the post step tries again.`;
  }
}
