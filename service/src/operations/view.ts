import type { ExecResponse, Operation, OperationResult } from "@reoclo/protocol";
import type { OperationRow } from "./store";

// The wire answers of spec §3, built from an operation row.

const text = (b: Buffer | null) => (b ? b.toString("utf8") : "");
const iso = (d: Date | null) => (d ? d.toISOString() : null);

export function resultOf(row: OperationRow): OperationResult {
  return {
    exit_code: row.exitCode ?? 255,
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
  if (row.status === "running") return { operation_id: row.id, status: "running" };
  return {
    operation_id: row.id,
    status: row.status,
    ...resultOf(row),
  } as ExecResponse;
}

/** `GET /operations/{id}`: `result` nested, present once the operation is final. */
export function operationAnswer(row: OperationRow, serverName: string): Operation {
  return {
    operation_id: row.id,
    operation_type: row.operationType,
    server_id: row.serverId,
    server_name: serverName,
    status: row.status,
    ...(row.status === "running" ? {} : { result: resultOf(row) }),
    run_id: row.runId,
    run_context: (row.runContext as Operation["run_context"]) ?? null,
    started_at: iso(row.startedAt ?? row.createdAt),
    completed_at: iso(row.completedAt),
  } as Operation;
}
