import {
  EXIT_CODE_FAILED,
  isTerminalOutcome,
  statusOfOutcome,
  type ExecResponse,
  type Operation,
  type OperationOutcome,
  type OperationResult,
} from "@reoclo/protocol";
import type { OperationRow } from "./store";

// The wire answers of spec §3, built from an operation row. The row's `status` column holds the
// precise outcome; the answers say it twice (spec §4): `status` in the published vocabulary
// (running, completed, failed, timeout) and `outcome` as it is, with the `reason` it ended.

const text = (b: Buffer | null) => (b ? b.toString("utf8") : "");
const iso = (d: Date | null) => (d ? d.toISOString() : null);

/** The row's outcome; anything unknown to this version is read as `failed` rather than hanging a client. */
export function outcomeOf(row: Pick<OperationRow, "status">): OperationOutcome {
  if (row.status === "running") return "running";
  return isTerminalOutcome(row.status) ? row.status : "failed";
}

export function resultOf(row: OperationRow): OperationResult {
  const outcome = outcomeOf(row);
  return {
    outcome: outcome === "running" ? "failed" : outcome,
    reason: row.error,
    exit_code: row.exitCode ?? EXIT_CODE_FAILED,
    stdout: text(row.stdoutTail),
    stderr: text(row.stderrTail),
    duration_ms: row.durationMs ?? 0,
    stdout_truncated: row.stdoutTruncated,
    stderr_truncated: row.stderrTruncated,
    ...(row.downtimeMs !== null ? { downtime_ms: row.downtimeMs } : {}),
  };
}

/** `/exec` (and deploy, restart, reboot): the result flat, or just `running`. */
export function execAnswer(row: OperationRow): ExecResponse {
  const outcome = outcomeOf(row);
  if (outcome === "running") return { operation_id: row.id, status: "running", outcome: "running" };
  return { operation_id: row.id, status: statusOfOutcome(outcome), ...resultOf(row) };
}

/** `GET /operations/{id}`: `result` nested, present once the operation is final. */
export function operationAnswer(row: OperationRow, serverName: string): Operation {
  const outcome = outcomeOf(row);
  return {
    operation_id: row.id,
    operation_type: row.operationType,
    server_id: row.serverId,
    server_name: serverName,
    status: statusOfOutcome(outcome),
    outcome,
    reason: outcome === "running" ? null : row.error,
    ...(outcome === "running" ? {} : { result: resultOf(row) }),
    run_id: row.runId,
    run_context: row.runContext ?? null,
    started_at: iso(row.startedAt ?? row.createdAt) ?? new Date(0).toISOString(),
    completed_at: iso(row.completedAt),
  };
}

/** The SSE `status` event of a row. */
export function statusEventOf(row: Pick<OperationRow, "status">) {
  const outcome = outcomeOf(row);
  return { status: statusOfOutcome(outcome), outcome };
}

/**
 * An operation as the management API shows it (spec §11): the automation API's answer, plus who
 * started it (an automation key's id, or `user:<id>` / `integration_key:<id>`), its application,
 * its commit ref and when it was created.
 */
export function operationDetail(row: OperationRow, serverName: string) {
  return {
    ...operationAnswer(row, serverName),
    actor: row.actor,
    key_id: row.keyId,
    application_id: row.applicationId,
    commit_ref: row.commitRef,
    /** What ran, as stored: token-shaped strings and env values already redacted (spec §4). */
    command: row.command,
    created_at: row.createdAt.toISOString(),
  };
}
export type OperationDetail = ReturnType<typeof operationDetail>;
